"""The official ABAW per-frame metrics (numpy).

Every score is computed over **all valid frames of the whole set concatenated**: callers stitch
window predictions back to one prediction per frame, concatenate the videos, drop invalid frames
and call these functions once (never per window or per video, then averaged).
"""

from __future__ import annotations

import numpy as np

from featurestore.abaw import AU_NAMES, EXPR_CLASSES  # the official order (shared/AFFWILD2.md)

__all__ = ["ccc", "f1_binary", "va_score", "expr_score", "au_score", "NUM_EXPR", "NUM_AU", "EXPR_CLASSES", "AU_NAMES"]

NUM_EXPR = len(EXPR_CLASSES)
NUM_AU = len(AU_NAMES)


def ccc(x: np.ndarray, y: np.ndarray) -> float:
    """Lin's concordance correlation coefficient with POPULATION statistics (ddof=0).

    x, y: (n,). CCC = 2 cov(x, y) / (var(x) + var(y) + (mean(x) - mean(y))^2); 0 when the
    denominator is 0 (both constant and equal means).
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape or x.size == 0:
        raise ValueError(f"ccc needs two equal, non-empty sizes, got {x.shape} and {y.shape}")
    mx, my = x.mean(), y.mean()
    cov = np.mean((x - mx) * (y - my))
    den = x.var() + y.var() + (mx - my) ** 2
    return float(2.0 * cov / den) if den > 0 else 0.0


def f1_binary(pred: np.ndarray, true: np.ndarray) -> float:
    """Binary F1 of the positive class; 0 when there are no true and no predicted positives
    (sklearn's ``zero_division=0``). pred, true: (n,) 0/1."""
    pred = np.asarray(pred).astype(bool).ravel()
    true = np.asarray(true).astype(bool).ravel()
    tp = np.count_nonzero(pred & true)
    den = np.count_nonzero(pred) + np.count_nonzero(true)
    return float(2.0 * tp / den) if den > 0 else 0.0


def va_score(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """pred, true: (n, 2) valence, arousal. Returns {"score", "ccc_valence", "ccc_arousal"}."""
    cv = ccc(pred[:, 0], true[:, 0])
    ca = ccc(pred[:, 1], true[:, 1])
    return {"score": (cv + ca) / 2.0, "ccc_valence": cv, "ccc_arousal": ca}


def expr_score(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """Macro F1 over the 8 classes. pred, true: (n,) class indices 0..7.

    Same as ``sklearn.metrics.f1_score(true, pred, labels=range(8), average="macro",
    zero_division=0)``: a class absent from both truth and predictions counts as F1 = 0 and still
    weighs 1/8 of the score (the official figure averages over all 8 classes).
    Returns {"score", "f1_<class name>" for each class}.
    """
    pred = np.asarray(pred).ravel()
    true = np.asarray(true).ravel()
    per = [f1_binary(pred == c, true == c) for c in range(NUM_EXPR)]
    out = {"score": float(np.mean(per))}
    out.update({f"f1_{name}": f for name, f in zip(EXPR_CLASSES, per, strict=True)})
    return out


def au_score(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """Mean over the 12 AUs of the binary F1. pred: (n, 12) 0/1 (sigmoid >= 0.5 already
    applied, see ``tasks.to_submission``); true: (n, 12) 0/1.
    Returns {"score", "f1_<AU name>" for each AU}."""
    per = [f1_binary(pred[:, j], true[:, j]) for j in range(NUM_AU)]
    out = {"score": float(np.mean(per))}
    out.update({f"f1_{name}": f for name, f in zip(AU_NAMES, per, strict=True)})
    return out
