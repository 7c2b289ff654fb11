"""Trained models -> per-frame emotions: an encoder checkpoint (crops -> features) and the three
sequence heads (features -> valence/arousal, expression, action units), or one multi-task
(``seqtrain fit --task mtl``) checkpoint that has the three heads on one model.

The defaults are what ``make demo`` leaves in ``runs/demo``: the fine-tuned encoder
``encoders/finetune/best`` and the heads ``seqtrain/main/<task>/fold<K>``.

A head trained with a per-video normalisation (``seqtrain fit --video-norm``, in its FitConfig)
gets it here too, over the whole video given (offline: every frame of the video at once).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from featurestore.abaw import MTL, TASKS
from featurestore.fill import fill_missing

__all__ = ["DEFAULT_ENCODER", "DEFAULT_HEADS", "TASKS", "Heads", "load_heads", "predict_outputs",
           "video_features"]

log = logging.getLogger(__name__)

DEFAULT_ENCODER = Path("runs/demo/encoders/finetune/best")
DEFAULT_HEADS = Path("runs/demo/seqtrain/main")


@dataclass(frozen=True)
class Heads:
    """task -> (model, FitConfig) of the sequence heads, all reading features of ``in_dim`` (the
    width before any per-video normalisation of a head); or ``{"mtl": (model, FitConfig)}``, one
    model with the three heads."""

    models: dict
    in_dim: int
    features: str  # the feature set name the heads were trained on
    where: Path


def _feature_dim(model, fit_cfg) -> int:
    """Width of the features a head reads, before its per-video normalisation."""
    from seqtrain.videonorm import source_dim

    return source_dim(int(model.cfg.in_dim), fit_cfg.data.video_norm)


def load_heads(heads: str | os.PathLike = DEFAULT_HEADS, fold: int = 0,
               device: str = "cpu", *, mtl: str | os.PathLike | None = None) -> Heads:
    """Load ``<heads>/<task>/fold<fold>`` for the three tasks (a task folder may also be a
    checkpoint itself), or, given ``mtl``, that one multi-task checkpoint (a run folder or its
    ``best/``) instead. Raises FileNotFoundError / ValueError naming what is missing or mismatched."""
    from seqtrain.checkpoint import load_model

    if mtl is not None:
        mtl = Path(mtl)
        if not mtl.exists():
            raise FileNotFoundError(f"{mtl}: no multi-task checkpoint here (train one with "
                                    f"`seqtrain fit --task {MTL}`)")
        model, fit_cfg, _ = load_model(mtl, device)
        if fit_cfg.task != MTL:
            raise ValueError(f"{mtl}: checkpoint is for task {fit_cfg.task!r}, not {MTL!r} "
                             "(use --heads for single-task heads)")
        return Heads({MTL: (model, fit_cfg)}, _feature_dim(model, fit_cfg), fit_cfg.data.features, mtl)
    heads = Path(heads)
    models, dims, sets = {}, set(), set()
    for task in TASKS:
        folder = heads / task / f"fold{fold}"
        if not folder.exists():
            raise FileNotFoundError(f"{folder}: no {task} head here (train them with `seqtrain fit "
                                    f"--task all`, or run `make demo`)")
        model, fit_cfg, _ = load_model(folder, device)
        if fit_cfg.task != task:
            raise ValueError(f"{folder}: checkpoint is for task {fit_cfg.task!r}, not {task!r}")
        models[task] = (model, fit_cfg)
        dims.add(_feature_dim(model, fit_cfg))
        sets.add(fit_cfg.data.features)
    if len(dims) != 1:
        raise ValueError(f"{heads}: the heads read features of different widths {sorted(dims)}")
    return Heads(models, dims.pop(), sorted(sets)[0], heads)


def predict_outputs(heads: Heads, feats: np.ndarray, device: str = "cpu",
                    name: str = "video") -> dict[str, np.ndarray]:
    """feats: (n, D) features of every frame of one whole video -> ``{"va": (n, 2) in [-1, 1],
    "expr": (n, 8) probabilities, "au": (n, 12) probabilities}``; each head's per-video
    normalisation (its FitConfig's ``video_norm``) is applied over these n frames."""
    from seqtrain.data import from_arrays, normalize_videos
    from seqtrain.evaluate import predict_frames
    from seqtrain.tasks import MTL_TASK

    if feats.ndim != 2 or feats.shape[1] != heads.in_dim:
        raise ValueError(f"{name}: features of shape {feats.shape} do not fit heads reading "
                         f"{heads.in_dim} features ({heads.where})")

    seqs = from_arrays({name: feats.astype(np.float32)})
    raws = {}
    for task, (model, cfg) in heads.models.items():
        normed = normalize_videos(seqs, cfg.data.video_norm)  # as the head was trained
        raw = predict_frames(model, normed, cfg.data.window, cfg.data.stride, device=device)[name]  # (n, C)
        # one multi-task model: VA 2 | EXPR 8 | AU 12 outputs, split into its three heads
        raws.update({t: MTL_TASK.part(t, raw) for t in TASKS} if task == MTL else {task: raw})
    out = {}
    for task, raw in raws.items():
        if task == "va":
            out[task] = np.clip(raw, -1.0, 1.0)
        elif task == "expr":
            z = np.exp(raw - raw.max(axis=1, keepdims=True))
            out[task] = z / z.sum(axis=1, keepdims=True)
        else:
            out[task] = 1.0 / (1.0 + np.exp(-raw))
    return out


def video_features(encoder, crops_root: str | os.PathLike, video: str,
                   present: np.ndarray) -> np.ndarray:
    """Features of every frame of ``video``: its crops (``<crops_root>/cropped_aligned/<video>``)
    encoded by ``encoder`` (an ``encoders.encode.FrameEncoder``), frames without a face filled as
    the store fills them (``interp``), so predictions match what extraction + seqtrain give.
    present: (n,) bool. Returns (n, D) float32 (zeros for a video without any face)."""
    from featurestore.frames import AffWild2Frames

    n_faces = int(present.sum())
    if n_faces == 0:
        return np.zeros((len(present), encoder.dim), np.float32)
    frames = AffWild2Frames(crops_root)
    numbers = frames.frame_numbers(video)
    if len(numbers) != n_faces or not np.array_equal(numbers - 1, np.flatnonzero(present)):
        raise ValueError(f"{crops_root}: the crops of {video} do not match its face record")
    rows = encoder.encode_video(frames, video)  # (k, D)
    return fill_missing(rows, present, "interp")
