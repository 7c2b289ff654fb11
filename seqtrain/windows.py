"""Windowing of per-frame sequences and its inverse (stitching), pure numpy.

A video of ``n`` frames is cut into windows of ``w`` frames with stride ``s`` (``s <= w``):
starts ``0, s, 2s, ...`` while ``start + w < n``, plus one last window aligned to the end
(start ``n - w``), so **no frame is ever dropped** (the public ABAW code drops the tail after the
last full window and videos shorter than one window). A video with ``n <= w`` gives exactly one
window starting at 0; when ``n < w`` it is padded to ``w`` frames (edge padding: the last frame is
repeated) and a padding mask marks the padded positions.

Relation to the paper's count ``floor(n / s) + 1``: for ``n > w`` we produce
``ceil((n - w) / s) + 1`` windows. Both cover every frame for ``s <= w``; the paper's count can
include windows that start past ``n - w`` (mostly padding, or starting past the end when ``s``
divides ``n``); ours never needs padding except for videos shorter than one window.
"""

from __future__ import annotations

import numpy as np

from featurestore.sampler import window_starts  # one definition, shared with other models

__all__ = ["window_starts", "window_index", "stitch"]


def window_index(n: int, start: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Frame indices read by one window and its padding mask.

    Returns: idx (w,) int64 in [0, n) (padded positions repeat the last frame) and
    pad (w,) bool, True where the position is padding (only when ``n < start + w``).
    """
    pos = start + np.arange(w, dtype=np.int64)  # (w,)
    pad = pos >= n  # (w,)
    return np.minimum(pos, n - 1), pad


def stitch(n: int, starts: np.ndarray, w: int, preds: np.ndarray) -> np.ndarray:
    """Average overlapping window predictions into one prediction per frame.

    starts: (k,) window starts; preds: (k, w, C) or (k, w) per-window outputs (padded positions
    are ignored). Returns: (n, C) or (n,) float64 with every frame the mean of the windows that
    cover it. Raises ValueError when a frame is covered by no window.
    """
    preds = np.asarray(preds)
    squeeze = preds.ndim == 2
    if squeeze:
        preds = preds[..., None]  # (k, w, 1)
    starts = np.asarray(starts, dtype=np.int64)
    if preds.shape[:2] != (len(starts), w):
        raise ValueError(f"preds shape {preds.shape} does not match {len(starts)} windows of {w}")
    total = np.zeros((n, preds.shape[2]), dtype=np.float64)  # (n, C)
    count = np.zeros(n, dtype=np.int64)  # (n,)
    for start, p in zip(starts, preds, strict=True):
        stop = min(start + w, n)
        total[start:stop] += p[: stop - start]
        count[start:stop] += 1
    if (count == 0).any():
        missing = int(np.flatnonzero(count == 0)[0])
        raise ValueError(f"frame {missing} of {n} is covered by no window")
    out = total / count[:, None]  # (n, C)
    return out[:, 0] if squeeze else out
