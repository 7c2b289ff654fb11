"""Pieces shared by the pretraining and fine-tuning loops: the runtime (plain or data-parallel),
devices, the warm-up + cosine schedule, AdamW parameter groups and resumable train state."""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from featurestore.atomic import atomic_write


def _identity(x):
    return x


@dataclass(frozen=True)
class Runtime:
    """How a loop runs. The default is one plain process; a launcher (Ray Train in
    ``jobs/``) passes its ``prepare_model`` / ``prepare_loader`` (DDP + distributed sampler),
    this worker's rank and device, and a ``report`` callback for per-epoch metrics."""

    prepare_model: Callable[[nn.Module], nn.Module] = _identity
    prepare_loader: Callable[[Any], Any] = _identity
    rank: int = 0
    world_size: int = 1
    device: str | None = None  # None: the config's device
    report: Callable[[dict], None] | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"Runtime.rank={self.rank} must be in [0, world_size="
                             f"{self.world_size})")

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(name: str) -> torch.device:
    """"auto" -> cuda when available, else cpu; anything else is passed to torch.device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def autocast(device: torch.device):
    """bf16 autocast on CUDA; a disabled context elsewhere."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def warmup_cosine(step: int, warmup_steps: int, total_steps: int) -> float:
    """LR factor: linear warm-up from 1/warmup to 1, then half-cosine down to 0 at total_steps."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def make_scheduler(optimizer: torch.optim.Optimizer, warmup_steps: int,
                   total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-iteration LambdaLR (not cyclic: no LR jump at the end, see PLATFORM.md)."""
    fn = functools.partial(warmup_cosine, warmup_steps=warmup_steps, total_steps=total_steps)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, fn)


def adamw(model: nn.Module, lr: float, weight_decay: float,
          betas: tuple[float, float] = (0.9, 0.999)) -> torch.optim.AdamW:
    """AdamW without weight decay on biases, norms and tokens (1-D parameters)."""
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 or p.shape[:2] == (1, 1) else decay).append(p)
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=lr, betas=betas)


def unwrap(model: nn.Module) -> nn.Module:
    return getattr(model, "module", model)


def save_train_state(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """torch.save of plain state dicts (tensors, numbers, lists), atomically."""
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_train_state(path: str | os.PathLike) -> dict[str, Any]:
    """Read :func:`save_train_state` output; never unpickles arbitrary objects."""
    return torch.load(path, map_location="cpu", weights_only=True)


def engine_state_for_resume(saved: dict[str, Any], max_epochs: int) -> dict[str, Any]:
    """The saved ignite Engine state with ``max_epochs`` raised to the new target, so a finished
    run is extended instead of restarted (ignite restarts an Engine whose state is done)."""
    if "epoch" in saved:
        done = int(saved["epoch"])
    else:
        done = int(saved["iteration"]) // int(saved["epoch_length"])
    return dict(saved, max_epochs=max(max_epochs, done))
