"""The optimizer step of every loop, as an ignite process function."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from ignite.engine import Engine


def train_step(loss_of: Callable[[Any], torch.Tensor], optimizer: torch.optim.Optimizer,
               scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
               ) -> Callable[[Engine, Any], float]:
    """``Engine(train_step(...))``: loss of the batch, backward, optimizer and scheduler step;
    the engine's output is the loss as a float. ``loss_of(batch)`` runs the forward (model mode,
    device moves and autocast are its business)."""

    def step(engine: Engine, batch: Any) -> float:
        loss = loss_of(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        return float(loss.detach())

    return step
