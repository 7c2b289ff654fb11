"""Per-task output sizes, masked losses, submission conversion and scores.

Masks: a frame takes part in a loss only when its label is valid AND it is not padding
(``mask = valid & ~pad``); masked frames are removed before any arithmetic, so their label
values (-5, -1 markers or garbage) cannot change the loss or its gradient.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from featurestore.abaw import VA_COLUMNS
from seqtrain import metrics

__all__ = ["Task", "TASKS", "get_task", "ccc_torch", "va_loss", "expr_loss", "au_loss"]


def ccc_torch(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """CCC with POPULATION statistics (same formula as ``metrics.ccc``). x, y: (M,) -> ()."""
    mx, my = x.mean(), y.mean()
    cov = ((x - mx) * (y - my)).mean()
    var_x = ((x - mx) ** 2).mean()  # population variance, not torch.var's sample variance
    var_y = ((y - my) ** 2).mean()
    return 2.0 * cov / (var_x + var_y + (mx - my) ** 2 + 1e-8)


def _empty(out: torch.Tensor) -> torch.Tensor:
    return out.sum() * 0.0  # keeps the graph when a batch holds no valid frame


def va_loss(out: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """1 - CCC averaged over valence and arousal, over the batch's unmasked frames.
    out, y: (B, T, 2); mask: (B, T) bool."""
    if not bool(mask.any()):
        return _empty(out)
    p, t = out[mask], y[mask].float()  # (M, 2)
    return 1.0 - 0.5 * (ccc_torch(p[:, 0], t[:, 0]) + ccc_torch(p[:, 1], t[:, 1]))


def expr_loss(out: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Cross-entropy. out: (B, T, 8) logits; y: (B, T) int64; mask: (B, T) bool."""
    if not bool(mask.any()):
        return _empty(out)
    return F.cross_entropy(out[mask], y[mask].long())  # (M, 8), (M,)


def au_loss(out: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """BCE with logits, positives weighted per AU by the batch's negative/positive ratio.

    out: (B, T, 12) logits; y: (B, T, 12) 0/1; mask: (B, T) bool. AUs are rare (5-30 % of frames)
    and the official metric is F1 at 0.5, so unweighted BCE learns to say "off"; ``pos_weight``
    (clamped to [1, 10], counted over the unmasked frames only) restores the balance.
    """
    if not bool(mask.any()):
        return _empty(out)
    target = y[mask].float()  # (M, 12)
    pos = target.sum(dim=0)  # (12,)
    pos_weight = ((target.shape[0] - pos) / pos.clamp(min=1.0)).clamp(1.0, 10.0)  # (12,)
    return F.binary_cross_entropy_with_logits(out[mask], target, pos_weight=pos_weight.detach())


def _va_sub(out: np.ndarray) -> np.ndarray:
    return np.clip(out, -1.0, 1.0).astype(np.float32)  # (n, 2)


def _expr_sub(out: np.ndarray) -> np.ndarray:
    return out.argmax(axis=-1).astype(np.int64)  # (n,)


def _au_sub(out: np.ndarray) -> np.ndarray:
    return (out >= 0.0).astype(np.int64)  # sigmoid(x) >= 0.5  <=>  x >= 0, (n, 12)


@dataclass(frozen=True)
class Task:
    """One ABAW task: output width, loss, submission conversion, official score, file header."""

    name: str
    out_dim: int
    loss: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
    to_submission: Callable[[np.ndarray], np.ndarray]  # (n, out_dim) raw outputs -> values
    score: Callable[[np.ndarray, np.ndarray], dict[str, float]]  # (submission, labels)
    columns: tuple[str, ...]  # submission header after image_location
    metric_name: str

    def evaluate(self, outputs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
        """outputs: (n, out_dim) raw per-frame outputs of valid frames; labels: their labels."""
        return self.score(self.to_submission(outputs), labels)


TASKS: dict[str, Task] = {
    "va": Task("va", 2, va_loss, _va_sub, metrics.va_score, VA_COLUMNS, "CCC"),
    "expr": Task("expr", metrics.NUM_EXPR, expr_loss, _expr_sub, metrics.expr_score,
                 metrics.EXPR_CLASSES, "F1"),
    "au": Task("au", metrics.NUM_AU, au_loss, _au_sub, metrics.au_score, metrics.AU_NAMES, "F1"),
}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ValueError(f"task must be one of {sorted(TASKS)}, got {name!r}")
    return TASKS[name]
