"""Sequence-model checkpoints in the project's one format (:mod:`trainkit.checkpoint`), kind
``"seqmodel"``: config is the :class:`ModelConfig`, provenance the run's :class:`FitConfig`
(``"fit"``) plus the caller's meta (epoch, validation scores). Folders written before the shared
format (``fit`` + ``model`` + ``meta``, no sha256) load unchanged.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from seqtrain.config import FitConfig, ModelConfig
from seqtrain.model import SeqModel
from trainkit import checkpoint as ckpt
from trainkit.checkpoint import CONFIG, WEIGHTS, CheckpointError

__all__ = ["KIND", "load_model", "save_best"]

KIND = "seqmodel"


def save_best(ckpt_dir: str | os.PathLike, model: SeqModel, fit_cfg: FitConfig,
              meta: dict[str, Any]) -> None:
    """Write the weights, then the JSON config last (a checkpoint is complete once it exists)."""
    if "fit" in meta:
        raise ValueError("save_best: meta must not have a 'fit' key (the run config goes there)")
    ckpt.save(ckpt_dir, KIND, model.cfg.to_dict(), model.state_dict(),
              {"fit": fit_cfg.to_dict(), **meta})


def load_model(ckpt_dir: str | os.PathLike, device: str = "cpu"
               ) -> tuple[SeqModel, FitConfig, dict[str, Any]]:
    """(model in eval mode, its FitConfig, meta) from a checkpoint folder or a run folder (its
    ``best/``)."""
    ckpt_dir = Path(ckpt_dir)
    if not (ckpt_dir / CONFIG).is_file() and (ckpt_dir / "best" / CONFIG).is_file():
        ckpt_dir = ckpt_dir / "best"  # a run folder: use its best checkpoint
    if not (ckpt_dir / CONFIG).is_file() or not (ckpt_dir / WEIGHTS).is_file():
        raise FileNotFoundError(f"{ckpt_dir}: no checkpoint ({CONFIG} + {WEIGHTS}) here")
    found, weights = ckpt.load(ckpt_dir, device)
    if found.kind != KIND:
        raise CheckpointError(f"{ckpt_dir / CONFIG}: a {found.kind!r} checkpoint, not a {KIND!r}")
    model = SeqModel(ModelConfig.from_dict(found.config))
    model.load_state_dict(weights)
    meta = dict(found.provenance)
    fit = FitConfig.from_dict(meta.pop("fit"))
    return model.to(device).eval(), fit, meta
