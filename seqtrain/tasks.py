"""Per-task output sizes, masked losses, submission conversion and scores, and the multi-task
``mtl`` (the three heads on one model: 2 + 8 + 12 outputs per frame, each loss masked by its own
task's validity, scored by the three official scores and their sum, the challenge's score).

Masks: a frame takes part in a loss only when its label is valid AND it is not padding
(``mask = valid & ~pad``); masked frames are removed before any arithmetic, so their label
values (-5, -1 markers or garbage) cannot change the loss or its gradient.

How ``mtl`` is trained and selected, and why (measured on the demo store, mae-ft, tiny preset,
demo flags, 5 seeds, folds 0 and 1; issue 12 item 5):

- Selection: the three heads peak at different epochs (in 10 runs, VA's best epoch was not the
  best sum's in 7, Expr's in 6, AU's in 10), so the one checkpoint with the best SUM gives each
  head a compromise epoch, while each single-task model keeps its own best epoch. The trainer therefore also keeps every head's own
  best epoch (``best-<task>/``, what ``predict --task <task>`` uses; early stopping counts the
  epochs in which no head improved). The sum of the heads' bests: fold 0 0.711 +- 0.039 vs 0.697 for the one checkpoint
  (single-task models: 0.713 +- 0.018), fold 1 1.145 +- 0.035 vs 1.117 (single-task 1.151 +-
  0.029). ``best/`` (the best sum, one model) stays the challenge score.
- Loss: the plain sum by default. At initialisation the AU loss pulls the shared layers 5-8x less
  than VA's (gradient norms on the shared weights 0.28 / 1.44 / 2.26 for AU / Expr / VA; loss
  values are alike: 1.06 / 2.04 / 1.02). ``--mtl-loss balanced`` (:meth:`MultiTask.balanced`)
  weights each loss inversely to that norm (mean weight 1; a static, one-measurement form of the
  GradNorm idea, Chen et al. 2018). It raised AU on both folds (0.347 -> 0.354, 0.403 -> 0.412,
  above the single-task 0.351 / 0.406) but took VA and Expr down on fold 1 (sum 1.145 -> 1.124
  while fold 0 rose 0.711 -> 0.749), so it is not the default. Uncertainty weighting (Kendall et
  al. 2018) did not help (fold 0, 3 seeds: 0.706 vs 0.711): the losses are of one size, the gradients not.
- Data: on the demo store every task has the same training frames in mtl as alone (the union
  adds no imbalance), and this model trained on one task's loss only reaches about that task's
  single-task score (1 seed), so the shared trunk is not short of capacity here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from featurestore.abaw import MTL, VA_COLUMNS
from featurestore.abaw import TASKS as TASK_NAMES
from seqtrain import metrics
from seqtrain.smoothing import smooth_outputs

__all__ = ["Task", "MultiTask", "TASKS", "MTL_TASK", "get_task", "ccc_torch", "va_loss",
           "expr_loss", "au_loss"]


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
    activation: str  # what the raw outputs are logits of: "identity" | "softmax" | "sigmoid"

    def evaluate(self, outputs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
        """outputs: (n, out_dim) raw per-frame outputs of valid frames; labels: their labels."""
        return self.score(self.to_submission(outputs), labels)

    def score_frames(self, outputs: np.ndarray, labels: np.ndarray, valid: np.ndarray
                     ) -> dict[str, float]:
        """Official score over the valid frames. outputs (M, C), labels (M, ...), valid (M,)."""
        if not valid.any():
            raise ValueError(f"no valid {self.name} labels in the evaluation frames")
        return self.evaluate(outputs[valid], labels[valid])

    def smooth(self, outputs: np.ndarray, k: int) -> np.ndarray:
        """Raw outputs (n, C) of one video smoothed over ``k`` frames (see seqtrain.smoothing)."""
        return smooth_outputs(outputs, k, self.activation)

    def read_labels(self, store, video: str) -> tuple[np.ndarray, np.ndarray]:
        """(values (n, ...), valid (n,)) of ``video`` from a FeatureStore."""
        return store.labels(self.name, video)


TASKS: dict[str, Task] = {
    "va": Task("va", 2, va_loss, _va_sub, metrics.va_score, VA_COLUMNS, "CCC", "identity"),
    "expr": Task("expr", metrics.NUM_EXPR, expr_loss, _expr_sub, metrics.expr_score,
                 metrics.EXPR_CLASSES, "F1", "softmax"),
    "au": Task("au", metrics.NUM_AU, au_loss, _au_sub, metrics.au_score, metrics.AU_NAMES, "F1",
               "sigmoid"),
}


class MultiTask:
    """The three tasks on one model. Outputs (..., 22) = VA 2 | EXPR 8 logits | AU 12 logits;
    labels (..., 15) float = VA 2 | EXPR class index | AU 12; valid (..., 3) bool, one column per
    task, so a frame (or a whole video) annotated for AU only adds nothing to the VA or EXPR loss.
    """

    name = MTL
    metric_name = "sum"

    def __init__(self, parts: tuple[Task, ...], weights: tuple[float, ...] | None = None):
        self.parts = parts
        self.weights = tuple(float(w) for w in weights) if weights else (1.0,) * len(parts)
        if len(self.weights) != len(parts) or not all(w > 0 for w in self.weights):
            raise ValueError(f"need one positive loss weight per task {[t.name for t in parts]}, "
                             f"got {weights}")
        ends = np.cumsum([t.out_dim for t in parts])
        self.out_slices = {t.name: slice(int(e - t.out_dim), int(e)) for t, e in zip(parts, ends, strict=True)}
        widths = [1 if t.name == "expr" else t.out_dim for t in parts]  # expr: one class index
        lends = np.cumsum(widths)
        self.label_slices = {t.name: slice(int(e - w), int(e)) for t, w, e in zip(parts, widths, lends, strict=True)}
        self.out_dim = int(ends[-1])
        self.label_dim = int(lends[-1])

    def _label(self, name: str, labels):
        y = labels[..., self.label_slices[name]]
        return y[..., 0] if name == "expr" else y  # (..., 2) | (...,) | (..., 12)

    def part_losses(self, out: torch.Tensor, y: torch.Tensor, mask: torch.Tensor
                    ) -> list[torch.Tensor]:
        """Each task's own masked loss. out (B, T, 22), y (B, T, 15), mask (B, T, 3) bool."""
        return [t.loss(out[..., self.out_slices[t.name]], self._label(t.name, y), mask[..., i])
                for i, t in enumerate(self.parts)]

    def loss(self, out: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Weighted sum of the tasks' losses (``weights``; all 1: the plain sum)."""
        return sum(w * loss for w, loss in zip(self.weights, self.part_losses(out, y, mask),
                                               strict=True))

    def balanced(self, grad_norms: Sequence[float]) -> MultiTask:
        """This task with loss weights inversely proportional to ``grad_norms`` (one per task:
        the norm of each task's loss gradient on the shared weights at initialisation),
        normalised to mean 1, so every task pulls the shared trunk equally hard at the start."""
        norms = np.asarray(grad_norms, dtype=np.float64)
        if norms.shape != (len(self.parts),) or not np.all(norms > 0):
            raise ValueError(f"need one positive gradient norm per task, got {list(norms)}")
        inv = 1.0 / norms
        return MultiTask(self.parts, tuple(float(w) for w in inv * len(inv) / inv.sum()))

    def part(self, name: str, outputs: np.ndarray) -> np.ndarray:
        """The raw outputs (n, C_task) of one task's head."""
        return outputs[..., self.out_slices[name]]

    def to_submission(self, outputs: np.ndarray) -> np.ndarray:
        """(n, 22) raw -> (n, 15) float: VA clipped | EXPR class | AU 0/1 (the label layout)."""
        return np.concatenate([np.asarray(t.to_submission(self.part(t.name, outputs)),
                                          dtype=np.float32).reshape(len(outputs), -1)
                               for t in self.parts], axis=1)

    def score_frames(self, outputs: np.ndarray, labels: np.ndarray, valid: np.ndarray
                     ) -> dict[str, float]:
        """Each task's official score over its own valid frames; "score" = their sum (a task
        without any valid frame counts 0). Keys: score, va, expr, au, <task>_frames (how many
        frames scored it), <task>_<detail>."""
        if not valid.any():
            raise ValueError("no valid va, expr or au labels in the evaluation frames")
        out: dict[str, float] = {}
        for i, t in enumerate(self.parts):
            m = valid[:, i]
            lab = self._label(t.name, labels)
            lab = lab.astype(np.int64) if t.name != "va" else lab
            got = t.evaluate(self.part(t.name, outputs)[m], lab[m]) if m.any() else {"score": 0.0}
            out[t.name], out[f"{t.name}_frames"] = got["score"], int(m.sum())
            out.update({f"{t.name}_{k}": v for k, v in got.items() if k != "score"})
        out["score"] = float(sum(out[t.name] for t in self.parts))
        return out

    def smooth(self, outputs: np.ndarray, k: int) -> np.ndarray:
        return np.concatenate([t.smooth(self.part(t.name, outputs), k) for t in self.parts], axis=1)

    def read_labels(self, store, video: str) -> tuple[np.ndarray, np.ndarray]:
        """(values (n, 15) float32, valid (n, 3) bool) of ``video``: every task's labels."""
        values, valid = [], []
        for t in self.parts:
            y, m = store.labels(t.name, video)
            values.append(np.asarray(y, dtype=np.float32).reshape(len(m), -1))
            valid.append(np.asarray(m, dtype=bool))
        return np.concatenate(values, axis=1), np.stack(valid, axis=1)


MTL_TASK = MultiTask(tuple(TASKS[n] for n in TASK_NAMES))


def get_task(name: str) -> Task | MultiTask:
    """The task named ``name``: one of va, expr, au, or mtl (the three at once)."""
    if name == MTL:
        return MTL_TASK
    if name not in TASKS:
        raise ValueError(f"task must be one of {sorted(TASKS)} or {MTL!r}, got {name!r}")
    return TASKS[name]
