"""Resumable train state: one dict of plain state dicts (optimizer, scheduler, engine, history,
...) saved atomically with ``torch.save`` and read back with ``weights_only=True`` (never
unpickling arbitrary objects)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from featurestore.atomic import atomic_write


def save_train_state(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """torch.save of plain state dicts (tensors, numbers, strings, lists), atomically."""
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_train_state(path: str | os.PathLike) -> dict[str, Any] | None:
    """The dict :func:`save_train_state` wrote, on the CPU; None when there is none."""
    path = Path(path)
    if not path.is_file():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)


def engine_state_for_resume(saved: dict[str, Any], max_epochs: int) -> dict[str, Any]:
    """The saved ignite Engine state with ``max_epochs`` raised to the new target, so a finished
    run is extended instead of restarted (ignite restarts an Engine whose state is done)."""
    if "epoch" in saved:
        done = int(saved["epoch"])
    else:
        done = int(saved["iteration"]) // int(saved["epoch_length"])
    return dict(saved, max_epochs=max(max_epochs, done))
