"""Model checkpoints as a folder: ``model.safetensors`` (weights) + ``config.json`` (architecture,
stage, metadata). Both are written atomically (temp file + ``os.replace``), the weights first and
the JSON last, and the JSON records the weights' sha256 so a torn pair is detected on load.
Loading never unpickles.

Stages: ``"pretrain"`` holds a :class:`MaskedAutoencoder`; ``"finetune"`` an
:class:`ExprClassifier` (meta carries ``num_classes`` and ``dropout``).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from encoders.mae import ExprClassifier, MaskedAutoencoder
from encoders.presets import MAEConfig
from featurestore.atomic import atomic_write

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint folder is missing, torn or of an unknown format."""


def _unwrap(model: nn.Module) -> nn.Module:
    return getattr(model, "module", model)  # DistributedDataParallel keeps the model in .module


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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

    ``meta`` must be JSON-serialisable; for an :class:`ExprClassifier` ``num_classes`` and
    ``dropout`` are filled in from the model.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model = _unwrap(model)
    stage = stage_of(model)
    meta = dict(meta or {})
    if stage == "finetune":
        meta.setdefault("num_classes", model.head[-1].out_features)
        meta.setdefault("dropout", getattr(model.head[0], "p", 0.0))
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write(directory / WEIGHTS, lambda tmp: save_file(state, tmp))
    doc = {"format_version": FORMAT_VERSION, "stage": stage, "mae": cfg.to_dict(), "meta": meta,
           "weights_sha256": _sha256(directory / WEIGHTS)}
    text = json.dumps(doc, indent=2, sort_keys=True)
    atomic_write(directory / CONFIG, lambda tmp: Path(tmp).write_text(text))
    return directory


def read_config(directory: str | os.PathLike) -> dict[str, Any]:
    """The parsed ``config.json`` of a checkpoint folder."""
    path = Path(directory) / CONFIG
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint config (is {directory} a checkpoint?)")
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}:{e.lineno}: invalid JSON: {e.msg}") from e
    if doc.get("format_version") != FORMAT_VERSION or doc.get("stage") not in ("pretrain",
                                                                               "finetune"):
        raise CheckpointError(f"{path}: unknown checkpoint format/stage "
                              f"{doc.get('format_version')!r}/{doc.get('stage')!r}")
    return doc


def build_model(stage: str, cfg: MAEConfig, meta: dict[str, Any]) -> nn.Module:
    if stage == "pretrain":
        return MaskedAutoencoder(cfg)
    return ExprClassifier(cfg, int(meta.get("num_classes", 8)), float(meta.get("dropout", 0.0)))


def load_checkpoint(directory: str | os.PathLike, device: str | torch.device = "cpu"
                    ) -> tuple[nn.Module, MAEConfig, dict[str, Any]]:
    """Load a checkpoint of either stage -> (model in eval mode, cfg, meta with ``stage``)."""
    directory = Path(directory)
    doc = read_config(directory)
    weights = directory / WEIGHTS
    if not weights.is_file():
        raise CheckpointError(f"{weights}: weights file missing")
    if _sha256(weights) != doc.get("weights_sha256"):
        raise CheckpointError(f"{weights}: sha256 does not match {directory / CONFIG} "
                              "(checkpoint torn or being rewritten)")
    cfg = MAEConfig.from_dict(doc["mae"])
    meta = dict(doc["meta"], stage=doc["stage"])
    model = build_model(doc["stage"], cfg, meta)
    model.load_state_dict(load_file(str(weights), device=str(device)), strict=True)
    return model.to(device).eval(), cfg, meta


def checkpoint_sha256(directory: str | os.PathLike) -> str:
    """sha256 hex digest of the checkpoint's weights file (for feature provenance)."""
    weights = Path(directory) / WEIGHTS
    if not weights.is_file():
        raise CheckpointError(f"{weights}: weights file missing")
    return _sha256(weights)


# Names used by docs/ARCHITECTURE.md.
save = save_checkpoint
load = load_checkpoint
