"""Window datasets over per-video feature arrays held in memory.

Features come from one bulk ``store.load`` (whole fold in memory) or from plain numpy arrays
(``from_arrays``), so the dataset is testable without a store. The windows and their order are
planned by ``featurestore.sampler.WindowSampler`` (the sampler other models use) once per epoch;
training may shift each video's starts by a random offset (``jitter``, see
``jittered_starts``: every frame is still in a window every epoch), evaluation iterates every
window of every video in order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from featurestore.sampler import WindowSampler, jittered_starts
from seqtrain.tasks import get_task
from seqtrain.videonorm import normalize_video
from seqtrain.windows import window_index

__all__ = ["VideoSeq", "from_arrays", "join_sets", "load_videos", "normalize_videos", "WindowDataset",
           "PlanOrder", "jittered_starts"]


@dataclass(frozen=True)
class VideoSeq:
    """One video: features (n, D), labels (n, ...) or None, valid (n,) bool (all False if no
    labels), or (n, 3) for the multi-task labels (one column per task)."""

    name: str
    feats: np.ndarray
    labels: np.ndarray | None
    valid: np.ndarray

    @property
    def num_frames(self) -> int:
        return int(self.feats.shape[0])


def from_arrays(feats: Mapping[str, np.ndarray],
                labels: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None) -> list[VideoSeq]:
    """Videos from plain arrays. feats: video -> (n, D); labels: video -> ((n, ...), (n,) bool)."""
    out = []
    for name in feats:
        f = np.asarray(feats[name])
        if f.ndim != 2 or f.shape[0] == 0:
            raise ValueError(f"features of video {name!r} must be (n>0, D), got {f.shape}")
        if labels is None or name not in labels:
            out.append(VideoSeq(name, f, None, np.zeros(len(f), dtype=bool)))
            continue
        values, valid = labels[name]  # valid: (n,) or (n, tasks)
        if len(values) != len(f) or len(valid) != len(f):
            raise ValueError(f"video {name!r}: {len(f)} feature rows but {len(values)} labels "
                             f"and {len(valid)} valid flags")
        out.append(VideoSeq(name, f, np.asarray(values), np.asarray(valid, dtype=bool)))
    return out


def join_sets(video: str, parts: Mapping[str, np.ndarray]) -> np.ndarray:
    """Features of several sets of one video concatenated per frame: set -> (n, D_i) -> (n, sum D_i).

    Raises ValueError naming the sets when their frame axes differ (they must share it)."""
    lengths = {name: int(a.shape[0]) for name, a in parts.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"feature sets {sorted(parts)} do not share the frame axis of video "
                         f"{video!r}: frames per set {lengths}")
    arrays = list(parts.values())
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays, axis=1)


def load_videos(store, features: str | Sequence[str], videos: Sequence[str],
                task: str | None) -> list[VideoSeq]:
    """Bulk-load ``videos`` of feature set ``features`` (one ``store.load`` per set; several sets,
    given as a list or joined by commas, are concatenated per frame) with ``task`` labels (va,
    expr, au or mtl; None: no labels, e.g. test videos). Raises ValueError naming videos a set
    has not committed, or sets whose frame axes differ."""
    sets = features.split(",") if isinstance(features, str) else list(features)
    loaded = {}
    for name in sets:
        missing = sorted(set(videos) - set(store.committed(name)))
        if missing:
            raise ValueError(f"feature set {name!r} has no committed features for "
                             f"{len(missing)} video(s): {missing[:5]}")
        loaded[name] = store.load(name, list(videos))
    feats = {v: join_sets(v, {name: loaded[name][v] for name in sets}) for v in videos}
    spec = None if task is None else get_task(task)
    labels = None if spec is None else {v: spec.read_labels(store, v) for v in videos}
    return from_arrays(feats, labels)


def normalize_videos(videos: Sequence[VideoSeq], video_norm: str) -> list[VideoSeq]:
    """``videos`` with their features normalised per whole video
    (:func:`seqtrain.videonorm.normalize_video`: ``none`` keeps them as they are); labels kept."""
    return [replace(v, feats=normalize_video(v.feats, video_norm)) for v in videos]


class WindowDataset(Dataset):
    """Windows of ``window`` frames over ``videos``.

    Item: (feats (w, D) float32, labels (w, ...) float32|int64, valid (w,) bool, pad (w,) bool).
    ``windows`` lists (video index, start) in item order. Call ``set_epoch`` before each epoch
    when ``jitter`` is on (the offsets derive from ``seed`` and the epoch: deterministic).
    """

    def __init__(self, videos: Sequence[VideoSeq], window: int, stride: int, *,
                 jitter: bool = False, seed: int = 0):
        if not videos:
            raise ValueError("WindowDataset needs at least one video")
        self.videos = list(videos)
        self.window, self.stride, self.jitter, self.seed = window, stride, jitter, seed
        # the store's sampler plans the windows (and their order): the trainer and other models
        # read the store the same way
        self.plan = WindowSampler([(str(i), v.num_frames) for i, v in enumerate(self.videos)],
                                  window, stride, seed=seed, jitter=jitter)
        self.windows: list[tuple[int, int]] = []
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.plan.set_epoch(epoch)
        vids, starts = self.plan.windows(epoch)  # (N,), (N,)
        self.windows = list(zip(vids.tolist(), starts.tolist(), strict=True))

    def loader_sampler(self) -> PlanOrder:
        """A torch Sampler over this dataset's items in the plan's (seed, epoch) order."""
        return PlanOrder(self.plan)

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int):
        vi, start = self.windows[i]
        v = self.videos[vi]
        idx, pad = window_index(v.num_frames, start, self.window)  # (w,), (w,)
        feats = torch.from_numpy(np.asarray(v.feats[idx], dtype=np.float32))  # (w, D)
        if v.labels is None:
            labels = torch.zeros(self.window)
        else:
            lab = v.labels[idx]
            labels = torch.from_numpy(lab.astype(np.int64 if lab.dtype == np.int64 else np.float32))
        keep = ~pad.reshape(pad.shape + (1,) * (v.valid.ndim - 1))  # (w,) or (w, 1)
        valid = torch.from_numpy(v.valid[idx] & keep)  # (w,) or (w, tasks)
        return feats, labels, valid, torch.from_numpy(pad)


class PlanOrder(Sampler):
    """Dataset indices in the order of a featurestore WindowSampler (deterministic from
    (seed, epoch), split by rank); set ``epoch`` before each epoch."""

    def __init__(self, plan: WindowSampler):
        self.plan = plan

    @property
    def epoch(self) -> int:
        return self.plan.epoch

    @epoch.setter
    def epoch(self, epoch: int) -> None:
        self.plan.set_epoch(epoch)

    def __iter__(self):
        return iter(self.plan.order().tolist())

    def __len__(self) -> int:
        return len(self.plan)
