"""The per-frame emotion table (CSV) of a video, and its timeline picture (PNG).

One row for every frame of the video, frames without a face included (``face`` = 0; their
predictions come from the filled features, as in the official evaluation, which scores every
frame). Columns, in order:

    frame          1-based frame number (= the %05d.jpg number in cropped_aligned/<video>/)
    time_s         (frame - 1) / fps, seconds from the start of the video
    face           1 if a face crop exists for the frame, else 0
    face_score     the detector's score of the tracked face (empty without a face or a record)
    valence, arousal           in [-1, 1]
    expression     the most probable of the 8 Aff-Wild2 classes (name)
    p_Neutral ... p_Other      the 8 expression probabilities (sum to 1)
    p_AU1 ... p_AU26           the 12 action-unit probabilities (independent; > 0.5 = active)

Read it with ``read_table(path)`` (a pandas DataFrame) or any CSV reader.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np

from featurestore.abaw import AU_NAMES, EXPR_CLASSES
from featurestore.atomic import atomic_write, atomic_write_text

__all__ = ["COLUMNS", "table_rows", "write_table", "read_table", "plot_timeline"]

COLUMNS = ("frame", "time_s", "face", "face_score", "valence", "arousal", "expression",
           *(f"p_{c}" for c in EXPR_CLASSES), *(f"p_{a}" for a in AU_NAMES))


def table_rows(fps: float, present: np.ndarray, score: np.ndarray | None,
               outputs: dict[str, np.ndarray]) -> list[list[str]]:
    """present (n,) bool, score (n,) or None, outputs from ``predict_outputs`` -> n CSV rows."""
    n = len(present)
    va, ex, au = outputs["va"], outputs["expr"], outputs["au"]
    if not len(va) == len(ex) == len(au) == n:
        raise ValueError(f"{n} frames but {len(va)}/{len(ex)}/{len(au)} predictions")
    cls = ex.argmax(axis=1)
    rows = []
    for k in range(n):
        s = "" if score is None or not np.isfinite(score[k]) else f"{score[k]:.4f}"
        rows.append([str(k + 1), f"{k / fps:.3f}", str(int(present[k])), s,
                     f"{va[k, 0]:.4f}", f"{va[k, 1]:.4f}", EXPR_CLASSES[cls[k]],
                     *(f"{p:.4f}" for p in ex[k]), *(f"{p:.4f}" for p in au[k])])
    return rows


def write_table(path: str | os.PathLike, rows: list[list[str]]) -> Path:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    w.writerows(rows)
    return atomic_write_text(path, buf.getvalue())


def read_table(path: str | os.PathLike):
    """The table as a pandas DataFrame (``face`` int, ``face_score`` NaN where empty)."""
    import pandas as pd

    return pd.read_csv(path, dtype={"expression": str})


def plot_timeline(path: str | os.PathLike, title: str, fps: float, present: np.ndarray,
                  score: np.ndarray | None, outputs: dict[str, np.ndarray]) -> Path:
    """Four aligned panels over time: face found (and score), valence/arousal curves,
    expression probabilities with the predicted class, AU probabilities as a heat map."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(present)
    t = np.arange(n) / fps
    ext = (0, n / fps)
    fig, ax = plt.subplots(4, 1, figsize=(12, 8), sharex=True,
                           gridspec_kw={"height_ratios": [0.6, 1.6, 1.4, 2.0]})
    ax[0].imshow(present[None].astype(float), aspect="auto", cmap="Greens", vmin=0, vmax=1.4,
                 extent=(*ext, 0, 1.1))
    if score is not None:  # the detector's score, black, on the same 0..1 scale
        ax[0].plot(t, np.where(present, score, np.nan), color="k", lw=0.8)
    ax[0].set_ylim(0, 1.1), ax[0].set_yticks([0, 1])
    ax[0].set_ylabel("face\nscore", rotation=0, ha="right", va="center")
    ax[0].set_title(f"{title}: {int(present.sum())} of {n} frames with a face (green)", fontsize=10)
    ax[1].plot(t, outputs["va"][:, 0], label="valence", color="tab:blue")
    ax[1].plot(t, outputs["va"][:, 1], label="arousal", color="tab:red")
    ax[1].axhline(0, color="grey", lw=0.5)
    ax[1].set_ylim(-1.05, 1.05), ax[1].legend(loc="upper right", fontsize=8)
    ax[2].imshow(outputs["expr"].T, aspect="auto", cmap="magma", vmin=0, vmax=1,
                 extent=(*ext, len(EXPR_CLASSES) - 0.5, -0.5), interpolation="nearest")
    ax[2].plot(t, outputs["expr"].argmax(axis=1), ".", ms=2, color="cyan")
    ax[2].set_yticks(range(len(EXPR_CLASSES)), EXPR_CLASSES, fontsize=7)
    im = ax[3].imshow(outputs["au"].T, aspect="auto", cmap="viridis", vmin=0, vmax=1,
                      extent=(*ext, len(AU_NAMES) - 0.5, -0.5), interpolation="nearest")
    ax[3].set_yticks(range(len(AU_NAMES)), AU_NAMES, fontsize=7)
    ax[3].set_xlabel("time (s)")
    fig.colorbar(im, ax=list(ax), fraction=0.02, pad=0.01, label="probability")  # all panels
    out = atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=90, format="png"), suffix=".png")
    plt.close(fig)
    return out
