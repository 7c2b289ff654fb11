"""Pieces shared by the pretraining and fine-tuning loops: the runtime (plain or data-parallel),
devices, autocast and AdamW parameter groups (the loop kit itself is :mod:`trainkit`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


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


def adamw(model: nn.Module, lr: float, weight_decay: float,
          betas: tuple[float, float] = (0.9, 0.999),
          lr_scale: Callable[[str], float] | None = None) -> torch.optim.AdamW:
    """AdamW without weight decay on biases, norms and tokens (1-D parameters).

    ``lr_scale`` (parameter name -> factor) gives parameters their own LR (``lr * factor``), one
    group per (factor, decay) pair, e.g. :func:`vit_layer_decay`; None: two groups at ``lr``.
    """
    groups: dict[tuple[float, bool], list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            no_decay = p.ndim <= 1 or p.shape[:2] == (1, 1)
            scale = 1.0 if lr_scale is None else float(lr_scale(name))
            groups.setdefault((scale, no_decay), []).append(p)
    if lr_scale is None:  # the historical layout: [decay, no_decay] (resume states keep it)
        groups = {k: groups.get(k, []) for k in ((1.0, False), (1.0, True))}
    return torch.optim.AdamW([{"params": params, "lr": lr * scale,
                               "weight_decay": 0.0 if no_decay else weight_decay}
                              for (scale, no_decay), params in groups.items()], lr=lr, betas=betas)


def vit_layer_decay(depth: int, decay: float) -> Callable[[str], float]:
    """Layer-wise LR decay of ViT fine-tuning (BEiT, MAE): the head and the last norm at the full
    LR, block ``i`` of ``depth`` at ``decay ** (depth - i)``, the patch embedding and the cls token
    at ``decay ** (depth + 1)``. Names are those of an ``encoders.mae.ExprClassifier``."""

    def scale(name: str) -> float:
        parts = name.split(".")
        if parts[0] != "encoder":
            return 1.0  # the head
        if parts[1] == "blocks":
            return decay ** (depth - int(parts[2]))
        if parts[1] in ("patch_embed", "cls_token", "pos_embed"):
            return decay ** (depth + 1)
        return 1.0  # the encoder's final norm

    return scale


def unwrap(model: nn.Module) -> nn.Module:
    return getattr(model, "module", model)


class DataWait:
    """Time an ignite trainer spends waiting for batches, as a share of its step time.

    ``attach(trainer)`` times every ``next(loader)`` (GET_BATCH_STARTED -> COMPLETED) and every
    iteration; :meth:`epoch` gives the data wait over the wall time of the epoch's iterations
    (wait + step), read and reset at EPOCH_COMPLETED. On CUDA the step's time includes the
    ``loss.item()`` synchronisation, so it is the GPU's time too.
    """

    def __init__(self, clock: Callable[[], float] | None = None):
        import time

        self.clock = clock or time.perf_counter
        self.wait = self.total = 0.0
        self.steps = 0
        self._t_get = self._t_iter = None

    def attach(self, trainer) -> DataWait:
        from ignite.engine import Events

        trainer.add_event_handler(Events.GET_BATCH_STARTED, self._get_started)
        trainer.add_event_handler(Events.GET_BATCH_COMPLETED, self._get_completed)
        trainer.add_event_handler(Events.ITERATION_COMPLETED, self._iteration_completed)
        return self

    def _get_started(self, _engine) -> None:
        self._t_get = self.clock()
        if self._t_iter is None:
            self._t_iter = self._t_get

    def _get_completed(self, _engine) -> None:
        self.wait += self.clock() - self._t_get

    def _iteration_completed(self, _engine) -> None:
        now = self.clock()
        self.total += now - self._t_iter
        self.steps += 1
        self._t_iter = None

    def epoch(self) -> dict[str, float]:
        """{"data_wait": wait / (wait + step), "step_s": mean iteration seconds} since the last
        call (zeros when nothing ran); resets."""
        out = {"data_wait": self.wait / self.total if self.total > 0 else 0.0,
               "step_s": self.total / self.steps if self.steps else 0.0}
        self.wait = self.total = 0.0
        self.steps = 0
        return out
