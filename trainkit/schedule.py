"""The LR schedule of every loop: linear warm-up, then one half-cosine down to 0.

A per-iteration ``LambdaLR`` rather than ignite's ``CosineAnnealingScheduler``: that one is
cyclic and jumps back to the start value at the end of its cycle (shared/PLATFORM.md), and a
``LambdaLR`` keeps its state in the optimizer-side ``state_dict`` that resume restores.
"""

from __future__ import annotations

import functools
import math

import torch


def warmup_cosine(step: int, warmup_steps: int, total_steps: int) -> float:
    """LR factor: linear warm-up from 1/warmup to 1, then half-cosine down to 0 at total_steps."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def warmup_cosine_scheduler(optimizer: torch.optim.Optimizer, warmup_steps: int,
                            total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-iteration scheduler of :func:`warmup_cosine` (step it after every optimizer step)."""
    fn = functools.partial(warmup_cosine, warmup_steps=warmup_steps, total_steps=total_steps)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, fn)
