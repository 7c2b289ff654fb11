"""Missing-face fill policies: pure numpy functions from present rows to every frame of a video.

The writer applies the policy once, at write time, so training and test read identical values.

- ``interp`` (default): linear interpolation between the nearest frames with a face; frames before
  the first / after the last face take the nearest face's features.
- ``nearest``: the features of the nearest frame with a face (ties go to the earlier frame).
- ``zero``: zeros.

A video without any face is all zeros under every policy.
"""

from __future__ import annotations

import numpy as np

POLICIES = ("interp", "nearest", "zero")


def fill_missing(rows: np.ndarray, present: np.ndarray, policy: str = "interp") -> np.ndarray:
    """Expand present rows to all frames.

    rows: (k, D) features of the frames where ``present`` is True, in frame order.
    present: (n,) bool with exactly k True entries.
    Returns (n, D) float32.
    """
    if policy not in POLICIES:
        raise ValueError(f"fill policy {policy!r} is not one of {POLICIES}")
    present = np.asarray(present, dtype=bool)
    rows = np.asarray(rows, dtype=np.float32)
    if rows.ndim != 2 or rows.shape[0] != int(present.sum()):
        raise ValueError(f"rows shape {rows.shape} does not match {int(present.sum())} present frames")
    n, dim = present.shape[0], rows.shape[1]
    out = np.zeros((n, dim), dtype=np.float32)  # (n, D)
    idx = np.flatnonzero(present)  # (k,)
    out[idx] = rows
    if len(idx) == 0 or len(idx) == n or policy == "zero":
        return out
    if policy == "nearest":
        return _fill_nearest(out, idx, rows)
    return _fill_interp(out, idx, rows)


def _fill_nearest(out: np.ndarray, idx: np.ndarray, rows: np.ndarray) -> np.ndarray:
    missing = np.flatnonzero(~np.isin(np.arange(out.shape[0]), idx))  # (m,)
    right = np.clip(np.searchsorted(idx, missing), 0, len(idx) - 1)  # (m,) first face >= frame
    left = np.clip(right - 1, 0, len(idx) - 1)
    use_left = np.abs(missing - idx[left]) <= np.abs(idx[right] - missing)
    src = np.where(use_left, left, right)  # (m,)
    out[missing] = rows[src]
    return out


def _fill_interp(out: np.ndarray, idx: np.ndarray, rows: np.ndarray) -> np.ndarray:
    missing = np.flatnonzero(~np.isin(np.arange(out.shape[0]), idx))  # (m,)
    right = np.searchsorted(idx, missing)  # (m,) index into idx of the first face after
    left = right - 1
    before = right == 0
    after = right == len(idx)
    inner = ~(before | after)
    out[missing[before]] = rows[0]
    out[missing[after]] = rows[-1]
    m, lo, hi = missing[inner], left[inner], right[inner]
    w = ((m - idx[lo]) / (idx[hi] - idx[lo]))[:, None].astype(np.float32)  # (m', 1)
    out[m] = rows[lo] * (1.0 - w) + rows[hi] * w  # (m', D)
    return out
