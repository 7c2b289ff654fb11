"""Resumable train state: one dict for every loop, saved atomically with ``torch.save`` and read
back with ``weights_only=True`` (never unpickling arbitrary objects).

:func:`train_state` builds it at an epoch end and :func:`restore_train_state` puts it back, so a
resumed run continues exactly where the saved one was: the model weights, optimizer, LR
scheduler, ignite engine state, the history of epoch records, the global RNG states (torch CPU
and CUDA, numpy, Python: dropout, masking, augmentation) and the loop's own bookkeeping under
``"extra"`` (best epoch, patience counter, run config, ...).

A DataLoader's own generator is not in it: a sampler that shuffles with one draws the next
epoch's order only when the engine asks for its next batch, after the state was saved. A loop
whose data order must survive a resume bit for bit sets it from (seed, epoch), as seqtrain's
``featurestore.sampler.WindowSampler`` and the encoder loops' ``trainkit.order.EpochShuffle`` do.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine

from featurestore.atomic import atomic_write

__all__ = ["engine_state_for_resume", "load_train_state", "restore_train_state",
           "save_train_state", "state_extra", "train_state"]

STATE_VERSION = 2
_CORE = ("version", "model", "optimizer", "scheduler", "engine", "history", "rng", "extra")


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


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return getattr(model, "module", model)  # DistributedDataParallel keeps the model in .module


def rng_states() -> dict[str, Any]:
    """The global RNGs, as tensors and plain numbers (``weights_only`` loadable)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"kind": kind, "keys": torch.from_numpy(np.asarray(keys, np.int64)),
                  "pos": int(pos), "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
    }


def set_rng_states(saved: Mapping[str, Any]) -> None:
    torch.set_rng_state(saved["torch"])
    if saved["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(saved["cuda"])
    n = saved["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["gauss"]))
    p = saved["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss_next"]))


def train_state(*, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                scheduler: torch.optim.lr_scheduler.LRScheduler | None, engine: Engine,
                history: list[dict[str, Any]], extra: Mapping[str, Any] | None = None
                ) -> dict[str, Any]:
    """The one resume dict of every loop (build it at an epoch end, then save_train_state)."""
    return {
        "version": STATE_VERSION,
        "model": _unwrap(model).state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else {},
        "engine": dict(engine.state_dict()),
        "history": list(history),
        "rng": rng_states(),
        "extra": dict(extra or {}),
    }


def state_extra(state: Mapping[str, Any]) -> dict[str, Any]:
    """The loop's own entries of a saved state (a state written before version 2 kept them at
    the top level)."""
    if "extra" in state:
        return dict(state["extra"])
    return {k: v for k, v in state.items() if k not in _CORE}


def restore_train_state(state: Mapping[str, Any], *, model: torch.nn.Module,
                        optimizer: torch.optim.Optimizer,
                        scheduler: torch.optim.lr_scheduler.LRScheduler | None, engine: Engine,
                        max_epochs: int,
                        weights: Callable[[], Mapping[str, torch.Tensor]] | None = None,
                        ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Put a :func:`train_state` dict back into the loop's objects; returns (history, extra).

    ``weights()`` gives the model weights of a state saved before they were part of it (the
    encoder loops kept them only in their checkpoint folder). ``max_epochs`` is the run's
    target: a finished run asked for more epochs continues instead of restarting.
    """
    if "model" in state:
        _unwrap(model).load_state_dict(state["model"])
    elif weights is not None:
        _unwrap(model).load_state_dict(weights())
    else:
        raise ValueError("train state holds no model weights and no fallback was given")
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(state["scheduler"])
    engine.load_state_dict(engine_state_for_resume(state["engine"], max_epochs))
    if "rng" in state:
        set_rng_states(state["rng"])
    return list(state["history"]), state_extra(state)
