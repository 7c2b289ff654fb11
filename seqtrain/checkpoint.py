"""Best-model checkpoints (safetensors weights + JSON config) and resume state.

Resume state goes through ``torch.save`` and is read back by torch's loader with
``weights_only=True`` only: tensors, numbers, strings, lists and dicts, never arbitrary pickles.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file

from featurestore.atomic import atomic_write, atomic_write_json
from featurestore.safeio import read_json
from seqtrain.config import FitConfig, ModelConfig
from seqtrain.model import SeqModel

__all__ = ["save_best", "load_model"]

WEIGHTS = "model.safetensors"
CONFIG = "config.json"


def save_best(ckpt_dir: str | os.PathLike, model: SeqModel, fit_cfg: FitConfig,
              meta: dict[str, Any]) -> None:
    """Write the weights, then the JSON config last (a checkpoint is complete once it exists)."""
    ckpt_dir = Path(ckpt_dir)
    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write(ckpt_dir / WEIGHTS, lambda tmp: save_file(weights, tmp))
    atomic_write_json(ckpt_dir / CONFIG, {"fit": fit_cfg.to_dict(), "model": model.cfg.to_dict(),
                                          "meta": meta})


def load_model(ckpt_dir: str | os.PathLike, device: str = "cpu"
               ) -> tuple[SeqModel, FitConfig, dict[str, Any]]:
    """(model in eval mode, its FitConfig, meta) from a checkpoint folder."""
    ckpt_dir = Path(ckpt_dir)
    if not (ckpt_dir / CONFIG).is_file() and (ckpt_dir / "best" / CONFIG).is_file():
        ckpt_dir = ckpt_dir / "best"  # a run folder: use its best checkpoint
    if not (ckpt_dir / CONFIG).is_file() or not (ckpt_dir / WEIGHTS).is_file():
        raise FileNotFoundError(f"{ckpt_dir}: no checkpoint ({CONFIG} + {WEIGHTS}) here")
    info = read_json(ckpt_dir / CONFIG)
    mcfg = ModelConfig.from_dict(info["model"])
    model = SeqModel(mcfg)
    model.load_state_dict(load_file(str(ckpt_dir / WEIGHTS), device=device))
    return model.to(device).eval(), FitConfig.from_dict(info["fit"]), info.get("meta", {})



