"""Per-video (person-specific) input normalisation of frame features.

Most of the variance of frame features is between videos (identity, background: one person per
video), while expressions are small changes within a video. Subtracting each video's mean
feature removes the person and keeps the changes, as OpenFace's AU models subtract a person's
neutral face. It needs the whole video (offline): the mean is over every frame of the video
(the store fills frames without a face, so every frame has a feature; labelled or not), the same
at training, evaluation and prediction.

Modes (:data:`VIDEO_NORMS`):

- ``none``: the features unchanged (the same array).
- ``center``: ``f - mean_video(f)``, width D.
- ``both``: ``[f, f - mean_video(f)]``, width 2D: keeps the between-video signal (a video's mean
  valence is part of its label) beside the centred one.
"""

from __future__ import annotations

import numpy as np

__all__ = ["VIDEO_NORMS", "check_video_norm", "normalize_video", "normalized_dim", "source_dim"]

VIDEO_NORMS = ("none", "center", "both")


def check_video_norm(mode: str) -> str:
    """``mode`` when it is one of :data:`VIDEO_NORMS`; ValueError naming it otherwise."""
    if mode not in VIDEO_NORMS:
        raise ValueError(f"video_norm must be one of {VIDEO_NORMS}, got {mode!r}")
    return mode


def normalized_dim(dim: int, mode: str) -> int:
    """Width of the normalised features of width ``dim``."""
    return 2 * dim if check_video_norm(mode) == "both" else dim


def source_dim(dim: int, mode: str) -> int:
    """Width of the features a model reading ``dim`` normalised inputs needs (inverse of
    :func:`normalized_dim`)."""
    return dim // 2 if check_video_norm(mode) == "both" else dim


def normalize_video(feats: np.ndarray, mode: str) -> np.ndarray:
    """feats: (n, D) every frame of one video -> (n, D) or (n, 2D) (``both``); float32 unless
    ``none`` (returned as given). The mean is taken in float64 once per video."""
    if check_video_norm(mode) == "none":
        return feats
    x = np.asarray(feats, dtype=np.float32)  # (n, D)
    centred = x - x.mean(axis=0, dtype=np.float64).astype(np.float32)  # (n, D)
    return centred if mode == "center" else np.concatenate([x, centred], axis=1)  # (n, 2D)
