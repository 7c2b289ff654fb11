"""Temporal structure that real Aff-Wild2 has and one frame cannot show (seeded, switchable).

Four phenomena, each a setting of ``SynthConfig`` whose value is its strength (0 switches it off;
with all four at 0 the dataset is byte-identical to the generator without them, because every
draw below uses its own random stream ``(seed, 7, video, k)`` and never touches the others):

- ``lag`` (annotation lag): continuous VA labels trail the face by ``lag * U(0.5, 1.5)`` seconds
  per video, as joystick raters do (Aff-Wild2 annotators react 1-2 s late; Mariooryad & Busso
  2015). The face shows the state at t, the label file says the state at t - L.
- ``bursts`` (occlusion / blur / turned away): about this fraction of frames lies in bursts of
  0.3-1.5 s in which a hand-coloured occluder covers half the face, the image is strongly
  blurred, or the head is turned away (only hair and an ear show). Labels go on unchanged.
- ``motion_arousal``: this share of arousal leaves the face (the drawer sees a mix of arousal
  and an unrelated slow signal) and is shown as the speed of head and face movement instead
  (excited people move more); a single frame cannot measure speed.
- ``expr_ramp``: an expression episode has an onset, an apex and an offset (``expr_ramp *
  U(0.2, 0.6)`` s each, at most a third of the episode) instead of switching in one frame. The
  annotated class covers the whole episode, as in Aff-Wild2, so onset/offset frames show a weak
  face under a full label.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from featurestore.synth.timeline import slow_signal

FPS = 30  # the synthetic videos are 30 frames per second
BURST_KINDS = ("none", "occluder", "blur", "turned_away")


@dataclass(frozen=True)
class Temporal:
    """The temporal effects of one video (n frames)."""

    lag: int  # frames the VA labels trail the face
    burst: np.ndarray  # (n,) int8 index into BURST_KINDS
    drawn_arousal: np.ndarray  # (n,) float64 arousal the face shows
    pose: np.ndarray  # (n, 4) head pose with arousal-driven motion added
    expr_strength: np.ndarray  # (n,) float64 in [0, 1], expression intensity


def _rng(seed: int, index: int, k: int) -> np.random.Generator:
    return np.random.default_rng([seed, 7, index, k])


def lag_frames(seed: int, index: int, strength: float) -> int:
    """Per-video annotation lag in frames (0 when ``strength`` is 0)."""
    if strength <= 0:
        return 0
    return int(round(strength * _rng(seed, index, 0).uniform(0.5, 1.5) * FPS))


def lag_labels(values: np.ndarray, lag: int) -> np.ndarray:
    """Label at t = state at t - lag (the first ``lag`` frames hold the first state)."""
    if lag <= 0:
        return values
    idx = np.maximum(np.arange(len(values)) - lag, 0)
    return values[idx]


def burst_mask(seed: int, index: int, n: int, rate: float) -> np.ndarray:
    """(n,) int8: 0 outside bursts, else the burst kind (1 occluder, 2 blur, 3 turned away)."""
    out = np.zeros(n, dtype=np.int8)
    if rate <= 0:
        return out
    rng = _rng(seed, index, 1)
    mean_len = 0.9 * FPS
    for _ in range(rng.poisson(rate * n / mean_len)):
        length = int(rng.uniform(0.3, 1.5) * FPS)
        start = int(rng.integers(0, max(1, n - length)))
        out[start:start + length] = int(rng.integers(1, len(BURST_KINDS)))
    return out


def arousal_motion(seed: int, index: int, arousal: np.ndarray, pose: np.ndarray,
                   share: float) -> tuple[np.ndarray, np.ndarray]:
    """(drawn arousal (n,), pose (n, 4)): ``share`` of arousal moved from the face into speed.

    The face shows ``(1 - share) * a + share * z`` (z: an unrelated slow signal of the same
    range); the head gets an extra random-walk motion whose per-frame step grows with arousal
    (steps of about 0.1 px when a = -1, 2 px when a = +1 at share 1).
    """
    if share <= 0:
        return arousal, pose
    rng = _rng(seed, index, 2)
    n = len(arousal)
    z = np.tanh(0.75 * slow_signal(rng, n, 20.0, 1)[:, 0])
    drawn = (1.0 - share) * arousal + share * z
    speed = share * 1.0 * np.exp(1.5 * arousal)  # (n,) step size in px per frame, ~0.22..4.5
    steps = rng.standard_normal((n, 4)) * speed[:, None] * np.array([0.5, 0.5, 1.0, 0.004])
    # a leaky random walk: wanders with the step size, drawn back to the slow pose
    moved = np.zeros((n, 4))
    for t in range(1, n):
        moved[t] = 0.85 * moved[t - 1] + steps[t]
    moved = np.clip(moved, [-8, -8, -15, -0.08], [8, 8, 15, 0.08])
    return drawn, pose + moved


def expr_envelope(seed: int, index: int, expr: np.ndarray, ramp: float) -> np.ndarray:
    """(n,) expression intensity in [0, 1]: rises over the onset, 1 at the apex, falls over the
    offset of every episode (a run of one class; Neutral episodes stay at 1)."""
    n = len(expr)
    out = np.ones(n)
    if ramp <= 0 or n == 0:
        return out
    rng = _rng(seed, index, 3)
    starts = np.flatnonzero(np.r_[True, expr[1:] != expr[:-1]])
    ends = np.r_[starts[1:], n]
    for s, e in zip(starts, ends, strict=True):
        onset = min(int(ramp * rng.uniform(0.2, 0.6) * FPS), (e - s) // 3)
        offset = min(int(ramp * rng.uniform(0.2, 0.6) * FPS), (e - s) // 3)
        if s > 0 and onset > 0:
            out[s:s + onset] = (np.arange(onset) + 1) / (onset + 1)
        if e < n and offset > 0:
            out[e - offset:e] = (offset - np.arange(offset)) / (offset + 1)
    return out


def temporal_effects(cfg, index: int, arousal: np.ndarray, expr: np.ndarray,
                     pose: np.ndarray) -> Temporal:
    """All four effects of video ``index`` under ``cfg`` (a SynthConfig)."""
    n = len(arousal)
    drawn, moved = arousal_motion(cfg.seed, index, arousal, pose, cfg.motion_arousal)
    return Temporal(lag=lag_frames(cfg.seed, index, cfg.lag),
                    burst=burst_mask(cfg.seed, index, n, cfg.bursts),
                    drawn_arousal=drawn, pose=moved,
                    expr_strength=expr_envelope(cfg.seed, index, expr, cfg.expr_ramp))
