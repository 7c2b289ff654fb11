"""Per-frame prediction of whole videos (every window, in order, stitched), optionally smoothed
per video, and the official score over all valid frames of the set concatenated."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from seqtrain.data import VideoSeq, WindowDataset
from seqtrain.tasks import MultiTask, Task
from seqtrain.windows import stitch

__all__ = ["predict_frames", "score_videos", "smoothing_scores", "evaluate_videos"]


@torch.no_grad()
def predict_frames(model: torch.nn.Module, videos: Sequence[VideoSeq], window: int, stride: int,
                   batch_size: int = 32, device: str = "cpu") -> dict[str, np.ndarray]:
    """Raw model outputs per frame: video -> (n, out_dim) float64, overlapping windows averaged.

    Every window of every video is predicted (no drop_last), so no frame is lost.
    """
    ds = WindowDataset(videos, window, stride)
    loader = DataLoader(ds, batch_size=batch_size, shuffle=False, drop_last=False)
    model.eval()
    outs = []
    for feats, _, _, pad in loader:
        outs.append(model(feats.to(device), pad.to(device)).float().cpu().numpy())  # (B, w, C)
    preds = np.concatenate(outs)  # (num_windows, w, C)
    vidx = np.array([vi for vi, _ in ds.windows])
    starts = np.array([s for _, s in ds.windows])
    return {v.name: stitch(v.num_frames, starts[vidx == i], window, preds[vidx == i])
            for i, v in enumerate(videos)}


def score_videos(task: Task | MultiTask, frames: dict[str, np.ndarray],
                 videos: Sequence[VideoSeq], smooth: int = 0) -> dict[str, float]:
    """Official score of raw per-frame outputs ``frames`` (video -> (n, C)), each video smoothed
    over ``smooth`` frames first (0: as they are)."""
    out = np.concatenate([task.smooth(frames[v.name], smooth) for v in videos])  # (N, C)
    lab = np.concatenate([v.labels for v in videos])  # (N, ...)
    valid = np.concatenate([v.valid for v in videos])  # (N,) or (N, tasks)
    if not valid.any():
        raise ValueError(f"no valid {task.name} labels in the {len(videos)} evaluation videos")
    return task.score_frames(out, lab, valid)


def smoothing_scores(task: Task | MultiTask, frames: dict[str, np.ndarray],
                     videos: Sequence[VideoSeq], ks: Sequence[int]) -> dict[str, float]:
    """{"0": unsmoothed score, "<k>": score smoothed over k frames, ...} (JSON keys)."""
    return {str(k): score_videos(task, frames, videos, k)["score"] for k in (0, *ks)}


def evaluate_videos(task: Task | MultiTask, model: torch.nn.Module, videos: Sequence[VideoSeq],
                    window: int, stride: int, batch_size: int = 32, device: str = "cpu",
                    smooth: int = 0) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Official score over all valid frames of ``videos`` concatenated (smoothed over ``smooth``
    frames per video), plus the raw per-frame outputs."""
    frames = predict_frames(model, videos, window, stride, batch_size, device)
    return score_videos(task, frames, videos, smooth), frames
