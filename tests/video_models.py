"""Small real (untrained) encoder + sequence-head checkpoints in the demo's run-folder layout, so
the video -> emotions path runs in tests without the 10-minute demo; and one multi-task (mtl)
checkpoint, the three heads on one model."""

from __future__ import annotations

from pathlib import Path

import torch

from encoders.checkpoint import save_checkpoint
from encoders.mae import ExprClassifier
from encoders.presets import get_preset
from seqtrain.checkpoint import save_best
from seqtrain.config import FitConfig
from seqtrain.model import SeqModel
from seqtrain.tasks import get_task


def tiny_run(root: Path) -> tuple[Path, Path]:
    """(encoder checkpoint, heads folder) under ``root`` as runs/demo lays them out."""
    torch.manual_seed(0)
    cfg = get_preset("tiny", img_size=32)
    enc = save_checkpoint(root / "encoders" / "finetune" / "best", ExprClassifier(cfg), cfg)
    heads = root / "seqtrain" / "main"
    for task in ("va", "expr", "au"):
        fit = FitConfig.from_flat(task=task, preset="tiny", window=32, stride=16,
                                  out=str(heads / task / "fold0"))
        model = SeqModel(fit.model_config(cfg.embed_dim, get_task(task).out_dim))
        save_best(heads / task / "fold0", model, fit, {"test": True})
    return enc, heads


def tiny_mtl(root: Path, embed_dim: int | None = None) -> Path:
    """A multi-task (``--task mtl``) run folder under ``root`` reading ``embed_dim`` features (the
    tiny encoder's width by default)."""
    torch.manual_seed(1)
    dim = embed_dim or get_preset("tiny", img_size=32).embed_dim
    fit = FitConfig.from_flat(task="mtl", preset="tiny", window=32, stride=16,
                              out=str(root / "mtl" / "fold0"))
    model = SeqModel(fit.model_config(dim, get_task("mtl").out_dim))
    save_best(root / "mtl" / "fold0", model, fit, {"test": True})
    return root / "mtl" / "fold0"
