"""Per-frame linear probe: the baseline a sequence model must beat on the same features.

Each valid frame is one sample; inputs are standardised with the training frames' mean and std
(scikit-learn ``StandardScaler``). VA: ``Ridge`` (one model, two outputs). EXPR: multinomial
``LogisticRegression`` with balanced class weights. AU: one balanced ``LogisticRegression`` per
AU. Scores are the task's official per-frame metric on the validation frames, written as a
``metrics.json`` like a sequence run's (variant ``linear-probe``) so the report tables list it.
``video_norm`` gives the probe the sequence model's per-video normalisation
(:mod:`seqtrain.videonorm`), so both can be compared on the same inputs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.preprocessing import StandardScaler

from featurestore.atomic import atomic_write_json
from seqtrain.data import VideoSeq, normalize_videos
from seqtrain.tasks import get_task

__all__ = ["PROBE_VARIANT", "fit_probe", "probe_outputs", "run_probe"]

log = logging.getLogger(__name__)
PROBE_VARIANT = "linear-probe"
RIDGE_ALPHA = 10.0
LOGREG_C = 0.1
MAX_TRAIN_FRAMES = 60000  # a fixed, seeded subsample beyond this (probes are a baseline, not a race)


def _frames(videos: Sequence[VideoSeq]) -> tuple[np.ndarray, np.ndarray]:
    x = np.concatenate([v.feats[v.valid] for v in videos]).astype(np.float64)  # (M, D)
    y = np.concatenate([v.labels[v.valid] for v in videos])  # (M, ...)
    return x, y


def _logreg(seed: int) -> LogisticRegression:
    return LogisticRegression(C=LOGREG_C, class_weight="balanced", max_iter=500, random_state=seed)


def fit_probe(task: str, train: Sequence[VideoSeq], seed: int = 0):
    """Fitted (scaler, model or list of models) for ``task`` on the valid frames of ``train``."""
    x, y = _frames(train)
    if len(x) == 0:
        raise ValueError(f"no valid {task} labels in the {len(train)} training videos")
    if len(x) > MAX_TRAIN_FRAMES:
        keep = np.sort(np.random.default_rng(seed).choice(len(x), MAX_TRAIN_FRAMES, replace=False))
        x, y = x[keep], y[keep]
    scaler = StandardScaler().fit(x)
    z = scaler.transform(x)
    if task == "va":
        return scaler, Ridge(alpha=RIDGE_ALPHA).fit(z, y.astype(np.float64))
    if task == "expr":
        return scaler, _logreg(seed).fit(z, y.astype(np.int64))
    models = []
    for j in range(y.shape[1]):
        col = y[:, j].astype(np.int64)
        models.append(int(col[0]) if col.min() == col.max() else _logreg(seed).fit(z, col))
    return scaler, models


def probe_outputs(task: str, fitted, feats: np.ndarray) -> np.ndarray:
    """Raw per-frame outputs in the sequence model's convention (VA values, EXPR / AU logits):
    (n, out_dim), so ``Task.evaluate`` scores them the same way."""
    scaler, model = fitted
    z = scaler.transform(np.asarray(feats, dtype=np.float64))
    if task == "va":
        return model.predict(z)  # (n, 2)
    if task == "expr":
        logits = np.full((len(z), get_task("expr").out_dim), -1e9)
        logits[:, model.classes_] = model.decision_function(z).reshape(len(z), -1)
        return logits
    cols = [np.full(len(z), 1.0 if m else -1.0) if isinstance(m, int) else m.decision_function(z)
            for m in model]
    return np.stack(cols, axis=1)  # (n, 12) logits: >= 0 means "on"


def run_probe(task: str, train: Sequence[VideoSeq], val: Sequence[VideoSeq],
              out: str | os.PathLike | None = None, *, fold: int = 0, features: str = "",
              seed: int = 0, video_norm: str = "none") -> dict[str, Any]:
    """Fit on ``train``, score on ``val`` with the official metric, both normalised per video
    by ``video_norm``; write ``out/metrics.json``."""
    t = get_task(task)
    train, val = normalize_videos(train, video_norm), normalize_videos(val, video_norm)
    fitted = fit_probe(task, train, seed)
    outs = np.concatenate([probe_outputs(task, fitted, v.feats[v.valid]) for v in val])
    labels = np.concatenate([v.labels[v.valid] for v in val])
    if len(outs) == 0:
        raise ValueError(f"no valid {task} labels in the {len(val)} validation videos")
    scores = t.evaluate(outs, labels)
    result = {"task": task, "fold": fold, "features": features, "variant": PROBE_VARIANT,
              "video_norm": video_norm, "val": scores, "best_epoch": 0, "history": [], "finished": True,
              "config": {"ridge_alpha": RIDGE_ALPHA, "logreg_C": LOGREG_C, "seed": seed,
                         "max_train_frames": MAX_TRAIN_FRAMES, "video_norm": video_norm}}
    if out is not None:
        atomic_write_json(Path(out) / "metrics.json", result)
    log.info("probe %s fold %d %s: %s %.4f", task, fold, features, t.metric_name, scores["score"])
    return result
