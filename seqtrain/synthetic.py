"""Synthetic per-frame features that encode VA / EXPR / AU labels plus temporal noise.

For tests, benchmarks and quick checks: a smooth latent signal per video drives the labels of
all three tasks, the features are a fixed random projection of that latent plus per-frame noise,
so a temporal model can recover the labels. ``build_store`` writes them through the real
featurestore writer (catalog via ``featurestore.ingest.create_store``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from featurestore.abaw import TASKS

__all__ = ["SynthVideo", "synth_videos", "build_store"]

LATENT = 12


@dataclass(frozen=True)
class SynthVideo:
    name: str
    source: str
    feats: np.ndarray  # (n, dim) float32
    present: np.ndarray  # (n,) bool
    labels: dict  # task -> (values (n, ...), valid (n,))


def _latent(rng: np.random.Generator, n: int) -> np.ndarray:
    z = rng.normal(size=(n + 16, LATENT))
    kernel = np.ones(9) / 9.0
    z = np.stack([np.convolve(z[:, j], kernel, mode="same") for j in range(LATENT)], 1)[8:8 + n]
    return (z - z.mean(0)) / (z.std(0) + 1e-6)  # (n, 12) smooth, unit variance


def _labels(z: np.ndarray, rng: np.random.Generator) -> dict:
    n = len(z)
    va = np.tanh(0.8 * z[:, :2]).astype(np.float32)  # (n, 2)
    va_valid = rng.random(n) > 0.05
    va[~va_valid] = -5.0
    expr = z[:, :8].argmax(1).astype(np.int64)  # (n,)
    expr_valid = rng.random(n) > 0.05
    expr[~expr_valid] = -1
    au = (z > 0.8).astype(np.int8)  # (n, 12), about 20% active
    au_valid = rng.random(n) > 0.05
    au[~au_valid] = -1
    return {"va": (va, va_valid), "expr": (expr, expr_valid), "au": (au, au_valid)}


def synth_videos(num_videos: int, *, dim: int = 16, min_frames: int = 40, max_frames: int = 200,
                 noise: float = 0.7, seed: int = 0, prefix: str = "vid") -> list[SynthVideo]:
    """``num_videos`` videos; every 4th one is split into ``_left`` / ``_right`` halves."""
    rng = np.random.default_rng(seed)
    proj = np.random.default_rng(12345).normal(size=(LATENT, dim)) / np.sqrt(LATENT)
    out = []
    for i in range(num_videos):
        names = [f"{prefix}{i:03d}_left", f"{prefix}{i:03d}_right"] if i % 4 == 3 else [f"{prefix}{i:03d}"]
        for name in names:
            n = int(rng.integers(min_frames, max_frames + 1))
            z = _latent(rng, n)
            feats = (z @ proj + noise * rng.normal(size=(n, dim)) * np.sqrt(1.0 / dim) * 3)
            present = rng.random(n) > 0.03
            present[0] = True
            out.append(SynthVideo(name, f"{prefix}{i:03d}", feats.astype(np.float32), present,
                                  _labels(z, rng)))
    return out


def build_store(path: str | os.PathLike, videos: list[SynthVideo], splits: dict[str, str],
                features: str = "synth", tasks: tuple[str, ...] = TASKS) -> None:
    """Create a store at ``path`` holding ``videos`` (split by ``splits``: video -> "train" |
    "val" | "test") and feature set ``features``; test videos get no labels."""
    import featurestore
    from featurestore.ingest import VideoRecord, create_store

    records = []
    for v in videos:
        split = splits[v.name]
        labels = {} if split == "test" else {t: v.labels[t] for t in tasks}
        records.append(VideoRecord(v.name, v.source, len(v.feats), v.present,
                                   {t: split for t in tasks}, labels))
    create_store(path, records)
    store = featurestore.open(path, mode="a")
    writer = store.create_feature_set(features, videos[0].feats.shape[1], dtype="float16")
    for v in videos:
        writer.write_video(v.name, v.feats[v.present])
