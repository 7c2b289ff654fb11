"""Training figures (matplotlib Agg), each written atomically (temp file + os.replace)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from featurestore.atomic import atomic_write  # noqa: E402


def _save(fig, path: str | os.PathLike) -> Path:
    try:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100,
                                                          bbox_inches="tight"))
    finally:
        plt.close(fig)


def save_curves(path: str | os.PathLike, history: Sequence[dict], keys: Sequence[str],
                title: str = "") -> Path:
    """One panel per key of ``history`` (a list of per-epoch dicts with an ``epoch`` entry)."""
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3), squeeze=False)
    epochs = [h["epoch"] for h in history]
    for ax, key in zip(axes[0], keys, strict=True):
        ax.plot(epochs, [h.get(key, float("nan")) for h in history], marker="o")
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def save_reconstruction(path: str | os.PathLike, rows: Sequence[torch.Tensor],
                        labels: Sequence[str] = ("original", "masked", "reconstructed")) -> Path:
    """rows: tensors (N, 3, H, W) in [0, 1], one figure row each, N images per row."""
    n = rows[0].shape[0]
    fig, axes = plt.subplots(len(rows), n, figsize=(1.6 * n, 1.6 * len(rows)), squeeze=False)
    for r, (imgs, label) in enumerate(zip(rows, labels, strict=True)):
        for c in range(n):
            ax = axes[r][c]
            ax.imshow(imgs[c].permute(1, 2, 0).float().cpu().numpy())
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(label)
    return _save(fig, path)
