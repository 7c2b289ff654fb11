"""Label processes over time: valence/arousal, AUs and expression of one synthetic video.

Everything is a pure function of (seed, video index): valence and arousal are slow sinusoids plus
a smoothed random walk squashed into [-1, 1]; each AU is a smooth latent driven by VA and its own
slow noise, thresholded into on/off segments; the expression is a rule over VA and AUs, smoothed
into segments. Head pose, lighting, face detection gaps and invalid labels are processes too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from featurestore.synth.faces import (
    ANGER,
    AU1,
    AU2,
    AU4,
    AU10,
    AU12,
    AU15,
    AU25,
    AU26,
    DISGUST,
    FEAR,
    HAPPINESS,
    NEUTRAL,
    OTHER,
    SADNESS,
    SURPRISE,
)

# Per AU: weight of valence, weight of arousal, bias of the latent (AU_NAMES order).
AU_DRIVE = np.array([
    (-0.3, 0.8, -0.6), (0.0, 0.9, -0.8), (-1.0, 0.3, -0.7), (1.1, 0.2, -0.5),
    (-0.5, 0.4, -0.7), (-0.8, 0.1, -0.8), (1.4, 0.1, -0.5), (-1.0, -0.4, -0.8),
    (-0.6, 0.3, -0.9), (-0.4, -0.4, -0.9), (0.2, 1.1, -0.3), (0.0, 1.0, -0.7),
])
MIN_AU_RUN = 8
MIN_EXPR_RUN = 12


@dataclass(frozen=True)
class Timeline:
    """The intended state of every frame of one video (n = number of frames)."""

    valence: np.ndarray  # (n,) float64 in [-1, 1]
    arousal: np.ndarray  # (n,) float64 in [-1, 1]
    au: np.ndarray  # (n, 12) int8 0/1
    expr: np.ndarray  # (n,) int64 0..7
    pose: np.ndarray  # (n, 4) dx, dy, degrees, scale
    light: np.ndarray  # (n, 2) gradient strength x, y
    brightness: np.ndarray  # (n,) target grey mean
    contrast: np.ndarray  # (n,) target grey std


def smooth(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing along axis 0 with reflected edges: same shape as ``x``."""
    r = max(1, int(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    pad = [(r, r)] + [(0, 0)] * (x.ndim - 1)
    xp = np.pad(x, pad, mode="reflect") if x.shape[0] > r else np.pad(x, pad, mode="edge")
    flat = xp.reshape(xp.shape[0], -1)  # (n + 2r, m)
    out = np.stack([np.convolve(flat[:, j], k, mode="valid") for j in range(flat.shape[1])], 1)
    return out.reshape(x.shape)


def walk(rng: np.random.Generator, n: int, sigma: float, dims: int) -> np.ndarray:
    """Smoothed white noise scaled to unit variance in expectation (stable for short n): (n, dims)."""
    r = max(1, int(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    gain = np.sqrt(((k / k.sum()) ** 2).sum())
    return smooth(rng.standard_normal((n, dims)), sigma) / gain


def slow_signal(rng: np.random.Generator, n: int, sigma: float = 20.0, dims: int = 1) -> np.ndarray:
    """Unit-scale smooth signal: sinusoids of periods 80..400 frames plus a smoothed walk: (n, dims)."""
    t = np.arange(n, dtype=np.float64)[:, None]  # (n, 1)
    periods = rng.uniform(80, 400, size=(3, dims))
    phases = rng.uniform(0, 2 * np.pi, size=(3, dims))
    amps = rng.uniform(0.3, 1.0, size=(3, dims))
    sines = sum(amps[j] * np.sin(2 * np.pi * t / periods[j] + phases[j]) for j in range(3))
    return (sines / np.sqrt((amps**2).sum(0) / 2) + walk(rng, n, sigma, dims)) / np.sqrt(2)


def min_runs(x: np.ndarray, length: int) -> np.ndarray:
    """Replace runs shorter than ``length`` (except a lone whole-array run) by the previous run."""
    x = x.copy()
    starts = np.flatnonzero(np.r_[True, x[1:] != x[:-1]])
    ends = np.r_[starts[1:], len(x)]
    for s, e in zip(starts, ends, strict=True):
        if e - s < length:
            x[s:e] = x[s - 1] if s > 0 else x[min(e, len(x) - 1)]
    return x


def expr_rule(v: np.ndarray, a: np.ndarray, au: np.ndarray) -> np.ndarray:
    """The frame-wise expression that VA and AUs imply: (n,) int64 in EXPR_CLASSES order."""
    on = au.astype(bool)  # (n, 12)
    conds = [
        (np.abs(v) < 0.4) & (np.abs(a) < 0.5) & ~(on[:, AU12] | on[:, AU4] | on[:, AU26]),
        on[:, AU12] & (v > 0.35),
        (a > 0.35) & (v > -0.3) & (on[:, AU1] | on[:, AU2]) & (on[:, AU25] | on[:, AU26]),
        (v < -0.15) & (a > 0.25) & on[:, AU1],
        (v < -0.2) & (a > 0.2) & on[:, AU4],
        (v < -0.2) & on[:, AU10],
        (v < -0.15) & (a < 0.2) & (on[:, AU15] | on[:, AU1] | on[:, AU4]),
    ]
    classes = [NEUTRAL, HAPPINESS, SURPRISE, FEAR, ANGER, DISGUST, SADNESS]
    return np.select(conds, classes, default=OTHER).astype(np.int64)


def au_process(rng: np.random.Generator, v: np.ndarray, a: np.ndarray) -> np.ndarray:
    """AU on/off segments correlated with VA: (n, 12) int8."""
    n = len(v)
    noise = walk(rng, n, 10.0, 12)  # (n, 12)
    latent = AU_DRIVE[:, 0] * v[:, None] + AU_DRIVE[:, 1] * a[:, None] + AU_DRIVE[:, 2] + 0.6 * noise
    on = latent > 0  # (n, 12)
    return np.stack([min_runs(on[:, k], MIN_AU_RUN) for k in range(12)], 1).astype(np.int8)


def static_state(rng: np.random.Generator) -> tuple[float, float, np.ndarray, int]:
    """One still face: (valence, arousal, au (12,) int8, expr) drawn with the video's rules."""
    v, a = rng.uniform(-1, 1, size=2)
    latent = AU_DRIVE[:, 0] * v + AU_DRIVE[:, 1] * a + AU_DRIVE[:, 2] + 0.6 * rng.standard_normal(12)
    au = (latent > 0).astype(np.int8)  # (12,)
    expr = int(expr_rule(np.array([v]), np.array([a]), au[None])[0])
    return float(v), float(a), au, expr


def label_timeline(rng: np.random.Generator, n: int) -> Timeline:
    """Draw the whole intended timeline of one video of ``n`` frames."""
    bias = rng.normal(0.0, 0.3, size=2)
    va = np.tanh(0.75 * slow_signal(rng, n, 20.0, 2) + bias)  # (n, 2)
    v, a = va[:, 0], va[:, 1]
    au = au_process(rng, v, a)
    raw = expr_rule(v, a, au)
    # smooth the class sequence: majority over +-7 frames, then merge short segments
    onehot = np.eye(8)[raw]  # (n, 8)
    k = np.ones(15)
    votes = np.stack([np.convolve(onehot[:, c], k, mode="same") for c in range(8)], 1)
    expr = min_runs(votes.argmax(1).astype(np.int64), MIN_EXPR_RUN)
    pose_slow = walk(rng, n, 15.0, 4)  # (n, 4) slow head motion
    jitter = rng.standard_normal((n, 4)) * 0.3
    pose = np.clip(pose_slow + jitter, -2.5, 2.5) * np.array([2.0, 2.0, 4.0, 0.03]) + [0, 0, 0, 1.0]
    light = rng.normal(0, 0.25, size=2) + 0.1 * slow_signal(rng, n, 30.0, 2)  # (n, 2)
    brightness = np.clip(rng.uniform(95, 145) + 8 * slow_signal(rng, n, 30.0, 1)[:, 0], 80, 160)
    contrast = np.clip(rng.uniform(40, 58) + 3 * slow_signal(rng, n, 30.0, 1)[:, 0], 35, 62)
    light = np.clip(light, -0.6, 0.6)
    return Timeline(v, a, au, expr, pose, light, brightness, contrast)


def gap_runs(rng: np.random.Generator, n: int, rate: float, max_len: int = 5) -> np.ndarray:
    """A (n,) bool mask of short runs (1..max_len frames) covering about ``rate`` of frames."""
    mask = np.zeros(n, dtype=bool)
    if rate <= 0 or n == 0:
        return mask
    count = rng.poisson(rate * n / ((1 + max_len) / 2))
    for start in rng.integers(0, n, size=count):
        mask[start:start + int(rng.integers(1, max_len + 1))] = True
    return mask
