"""Per-frame prediction of whole videos (every window, in order, stitched) and the official
score over all valid frames of the set concatenated."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from seqtrain.data import VideoSeq, WindowDataset
from seqtrain.tasks import Task
from seqtrain.windows import stitch

__all__ = ["predict_frames", "evaluate_videos"]


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


def evaluate_videos(task: Task, model: torch.nn.Module, videos: Sequence[VideoSeq], window: int,
                    stride: int, batch_size: int = 32, device: str = "cpu"
                    ) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Official score over all valid frames of ``videos`` concatenated, plus the per-frame outputs."""
    frames = predict_frames(model, videos, window, stride, batch_size, device)
    out = np.concatenate([frames[v.name][v.valid] for v in videos])  # (M, C)
    lab = np.concatenate([v.labels[v.valid] for v in videos])  # (M, ...)
    if len(out) == 0:
        raise ValueError(f"no valid {task.name} labels in the {len(videos)} evaluation videos")
    return task.evaluate(out, lab), frames
