"""Encoder checkpoints in the project's one format (:mod:`trainkit.checkpoint`): this module
only maps the two encoder models to a checkpoint ``kind`` + ``config`` and back.

Kinds: ``"mae"`` holds a :class:`MaskedAutoencoder` (stage ``"pretrain"``), config
``{"mae": MAEConfig}``; ``"expr_classifier"`` an :class:`ExprClassifier` (stage ``"finetune"``),
config ``{"mae": MAEConfig, "num_classes", "dropout"}``. Version 1 folders written before the
shared format load unchanged (upgraded on read), with the same weights sha256.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from encoders.mae import ExprClassifier, MaskedAutoencoder
from encoders.presets import MAEConfig
from trainkit import checkpoint as ckpt
from trainkit.checkpoint import CONFIG, WEIGHTS, CheckpointError

__all__ = ["CONFIG", "STAGES", "WEIGHTS", "CheckpointError", "build_model", "checkpoint_sha256",
           "load_checkpoint", "read_checkpoint", "save_checkpoint", "stage_of"]

STAGES = {"mae": "pretrain", "expr_classifier": "finetune"}  # checkpoint kind -> training stage


def _unwrap(model: nn.Module) -> nn.Module:
    return getattr(model, "module", model)  # DistributedDataParallel keeps the model in .module


def stage_of(model: nn.Module) -> str:
    model = _unwrap(model)
    if isinstance(model, MaskedAutoencoder):
        return "pretrain"
    if isinstance(model, ExprClassifier):
        return "finetune"
    raise CheckpointError(f"cannot checkpoint a {type(model).__name__}")


def save_checkpoint(directory: str | os.PathLike, model: nn.Module, cfg: MAEConfig,
                    meta: dict[str, Any] | None = None) -> Path:
    """Write ``model`` into ``directory`` (created if needed); returns the folder.

    ``meta`` (JSON-serialisable: epoch, scores, the run's config) is the checkpoint's provenance.
    """
    model = _unwrap(model)
    config: dict[str, Any] = {"mae": cfg.to_dict()}
    if stage_of(model) == "finetune":
        config.update(num_classes=model.head[-1].out_features,
                      dropout=float(getattr(model.head[0], "p", 0.0)))
        kind = "expr_classifier"
    else:
        kind = "mae"
    return ckpt.save(directory, kind, config, model.state_dict(), meta)


def read_checkpoint(directory: str | os.PathLike) -> ckpt.Checkpoint:
    """The checkpoint's config and provenance (no weights read); refuses a non-encoder kind."""
    found = ckpt.read(directory)
    if found.kind not in STAGES:
        raise CheckpointError(f"{found.path / CONFIG}: a {found.kind!r} checkpoint, not an "
                              f"encoder ({' or '.join(STAGES)})")
    return found


def build_model(found: ckpt.Checkpoint) -> nn.Module:
    """The (untrained) model a checkpoint's kind and config describe."""
    cfg = MAEConfig.from_dict(found.config["mae"])
    if found.kind == "mae":
        return MaskedAutoencoder(cfg)
    return ExprClassifier(cfg, int(found.config["num_classes"]), float(found.config["dropout"]))


def load_checkpoint(directory: str | os.PathLike, device: str | torch.device = "cpu"
                    ) -> tuple[nn.Module, MAEConfig, dict[str, Any]]:
    """Load a checkpoint of either stage -> (model in eval mode, cfg, meta).

    meta is the provenance plus ``stage`` (and ``num_classes`` / ``dropout`` for a classifier).
    """
    found = read_checkpoint(directory)
    weights = ckpt.load_weights(found, device)  # sha256 verified
    model = build_model(found)
    model.load_state_dict(weights, strict=True)
    meta = dict(found.provenance, stage=STAGES[found.kind])
    meta.update({k: v for k, v in found.config.items() if k != "mae"})
    return model.to(device).eval(), MAEConfig.from_dict(found.config["mae"]), meta


def checkpoint_sha256(directory: str | os.PathLike) -> str:
    """sha256 hex digest of the checkpoint's weights file (for feature provenance)."""
    return ckpt.weights_sha256(directory)
