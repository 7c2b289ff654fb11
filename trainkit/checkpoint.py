"""The one checkpoint format of every model the project saves (MAE, Expr classifier, SeqModel).

A checkpoint is a folder::

    model.safetensors   the weights (a flat dict of tensors; never a pickle)
    config.json         {"format_version": 2, "kind": "mae" | "expr_classifier" | "seqmodel",
                         "config": {...what builds the model...},
                         "provenance": {...how it was trained: epoch, scores, run config...},
                         "weights": "model.safetensors", "weights_sha256": "<hex>"}

Both files are written atomically (``featurestore.atomic``), the weights first and the JSON
last, so a checkpoint exists once its ``config.json`` does; the JSON records the weights'
sha256 and :func:`load` checks it, so a torn pair or a truncated weights file is an error that
names the file. The typed wrappers (``encoders.checkpoint``, ``seqtrain.checkpoint``) build
the model of a kind from its config; this module knows no model.

Layouts written before this format are upgraded on read (:func:`read`): the encoders' version 1
(``stage`` + ``mae`` + ``meta``) and seqtrain's unversioned ``fit`` + ``model`` + ``meta``
(which recorded no sha256: its weights load unverified).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from featurestore.atomic import atomic_write, atomic_write_json

__all__ = ["CONFIG", "FORMAT_VERSION", "WEIGHTS", "Checkpoint", "CheckpointError", "file_sha256",
           "load", "load_weights", "read", "save", "weights_sha256"]

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
FORMAT_VERSION = 2
_ENCODER_STAGE_KINDS = {"pretrain": "mae", "finetune": "expr_classifier"}  # version 1 stages


class CheckpointError(RuntimeError):
    """A checkpoint folder is missing, torn, truncated or of an unknown format."""


@dataclass(frozen=True)
class Checkpoint:
    """What ``config.json`` says (upgraded to the current format). ``weights_sha256`` is None
    only for an old seqtrain checkpoint, which recorded none."""

    path: Path
    kind: str
    config: dict[str, Any]
    provenance: dict[str, Any] = field(default_factory=dict)
    weights_sha256: str | None = None
    format_version: int = FORMAT_VERSION  # as found on disk (before the upgrade)

    @property
    def weights_path(self) -> Path:
        return self.path / WEIGHTS


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save(directory: str | os.PathLike, kind: str, config: dict[str, Any],
         state_dict: dict[str, torch.Tensor], provenance: dict[str, Any] | None = None) -> Path:
    """Write a checkpoint folder (created if needed): the weights, then ``config.json``.

    ``config`` and ``provenance`` must be JSON-serialisable. Returns the folder.
    """
    directory = Path(directory)
    if not kind:
        raise ValueError("checkpoint kind must be a non-empty string")
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    digest: list[str] = []

    def write(tmp: str) -> None:
        save_file(tensors, tmp)
        digest.append(file_sha256(tmp))  # hash what is renamed, not a later reread

    atomic_write(directory / WEIGHTS, write)
    atomic_write_json(directory / CONFIG, {
        "format_version": FORMAT_VERSION, "kind": kind, "config": config,
        "provenance": dict(provenance or {}), "weights": WEIGHTS, "weights_sha256": digest[0]})
    return directory


def _upgrade(path: Path, doc: dict[str, Any]) -> Checkpoint:
    """A ``config.json`` document of any layout this project wrote -> :class:`Checkpoint`."""
    folder, version = path.parent, doc.get("format_version")
    if version == FORMAT_VERSION and isinstance(doc.get("kind"), str):
        return Checkpoint(folder, doc["kind"], dict(doc.get("config") or {}),
                          dict(doc.get("provenance") or {}), doc.get("weights_sha256"), version)
    if version == 1 and doc.get("stage") in _ENCODER_STAGE_KINDS and "mae" in doc:
        meta = dict(doc.get("meta") or {})
        config: dict[str, Any] = {"mae": doc["mae"]}
        if doc["stage"] == "finetune":
            config.update(num_classes=int(meta.pop("num_classes", 8)),
                          dropout=float(meta.pop("dropout", 0.0)))
        return Checkpoint(folder, _ENCODER_STAGE_KINDS[doc["stage"]], config, meta,
                          doc.get("weights_sha256"), 1)
    if version is None and isinstance(doc.get("model"), dict) and isinstance(doc.get("fit"), dict):
        return Checkpoint(folder, "seqmodel", doc["model"],
                          {**(doc.get("meta") or {}), "fit": doc["fit"]}, None, 0)
    raise CheckpointError(f"{path}: unknown checkpoint format "
                          f"(format_version {version!r}, kind {doc.get('kind', doc.get('stage'))!r})")


def read(directory: str | os.PathLike) -> Checkpoint:
    """The :class:`Checkpoint` of a folder, from its ``config.json`` alone (weights not read)."""
    path = Path(directory) / CONFIG
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint config (is {directory} a checkpoint?)")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}:{e.lineno}: invalid JSON (truncated?): {e.msg}") from e
    except UnicodeDecodeError as e:
        raise CheckpointError(f"{path}: not UTF-8 text: {e}") from e
    if not isinstance(doc, dict):
        raise CheckpointError(f"{path}: expected a JSON object, got {type(doc).__name__}")
    return _upgrade(path, doc)


def weights_sha256(directory: str | os.PathLike) -> str:
    """sha256 hex digest of a checkpoint's weights file (the feature store's provenance)."""
    weights = Path(directory) / WEIGHTS
    if not weights.is_file():
        raise CheckpointError(f"{weights}: weights file missing")
    return file_sha256(weights)


def load_weights(ckpt: Checkpoint, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """The weights of ``ckpt``, verified against the recorded sha256 (safetensors: no pickle)."""
    weights = ckpt.weights_path
    if ckpt.weights_sha256 is not None and weights_sha256(ckpt.path) != ckpt.weights_sha256:
        raise CheckpointError(f"{weights}: sha256 does not match {ckpt.path / CONFIG} "
                              "(checkpoint torn, truncated or being rewritten)")
    if not weights.is_file():
        raise CheckpointError(f"{weights}: weights file missing")
    try:
        return load_file(str(weights), device=str(device))
    except (SafetensorError, OSError, ValueError) as e:  # e.g. an old unhashed file, truncated
        raise CheckpointError(f"{weights}: unreadable weights ({e})") from e


def load(directory: str | os.PathLike, device: str | torch.device = "cpu"
         ) -> tuple[Checkpoint, dict[str, torch.Tensor]]:
    """(:func:`read`, :func:`load_weights`) of a checkpoint folder."""
    ckpt = read(directory)
    return ckpt, load_weights(ckpt, device)
