"""Training curves and per-frame prediction-vs-truth figures (matplotlib, Agg backend)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from featurestore.atomic import atomic_write  # noqa: E402

__all__ = ["plot_curve", "plot_frames"]


def _save(fig, path: str | os.PathLike) -> None:
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=80), suffix=".png")
    plt.close(fig)


def plot_curve(history: Sequence[dict[str, Any]], path: str | os.PathLike, title: str = "") -> None:
    """Train loss and validation score per epoch. history: [{"epoch", "loss", "score"}, ...]."""
    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(epochs, [h["loss"] for h in history], "o-", color="tab:blue", label="train loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("train loss", color="tab:blue")
    ax2 = ax.twinx()
    ax2.plot(epochs, [h["score"] for h in history], "s-", color="tab:red", label="val score")
    ax2.set_ylabel("val score", color="tab:red")
    ax.set_title(title)
    fig.tight_layout()
    _save(fig, path)


def plot_frames(task: str, pred: np.ndarray, true: np.ndarray, valid: np.ndarray,
                path: str | os.PathLike, title: str = "") -> None:
    """One video over time. pred/true: va (n, 2) | expr (n,) | au (n, 12); invalid frames hidden."""
    t = np.arange(len(pred))
    if task == "va":
        fig, axes = plt.subplots(2, 1, figsize=(8, 4), sharex=True)
        for j, (ax, name) in enumerate(zip(axes, ("valence", "arousal"), strict=True)):
            ax.plot(t, np.where(valid, true[:, j], np.nan), color="k", lw=1, label="truth")
            ax.plot(t, pred[:, j], color="tab:red", lw=1, label="prediction")
            ax.set_ylim(-1.05, 1.05)
            ax.set_ylabel(name)
        axes[0].legend(loc="upper right", fontsize=7)
    elif task == "expr":
        fig, axes = plt.subplots(1, 1, figsize=(8, 3))
        axes.step(t, np.where(valid, true, np.nan), where="mid", color="k", lw=1, label="truth")
        axes.step(t, pred, where="mid", color="tab:red", lw=1, label="prediction", alpha=0.7)
        axes.set_yticks(range(8))
        axes.set_ylabel("class")
        axes.legend(loc="upper right", fontsize=7)
    else:
        fig, axes = plt.subplots(2, 1, figsize=(8, 4), sharex=True)
        for ax, data, name in ((axes[0], np.where(valid[:, None], true, np.nan), "truth"),
                               (axes[1], pred, "prediction")):
            ax.imshow(np.asarray(data, dtype=float).T, aspect="auto", interpolation="nearest",
                      cmap="Greys", vmin=0, vmax=1)
            ax.set_ylabel(f"{name}\nAU index")
    fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path)
