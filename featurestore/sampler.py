"""A deterministic, resumable, rank-split window sampler (numpy only, no torch).

Windows of ``length`` frames with ``stride`` over a list of videos: starts ``0, S, 2S, ...``
while ``start + L < n`` plus one last window aligned to the video's end (start ``n - L``), so no
frame is ever left out; a video shorter than ``L`` gives one window at 0 (read it with
``read_windows``: padded and masked). Each epoch the windows are shuffled from ``(seed, epoch)``
alone, and rank ``r`` of ``world_size`` takes positions ``r, r + W, r + 2W, ...`` of that order:
the ranks together cover every window exactly once per epoch (their counts differ by at most one;
``even=True`` instead gives every rank the same count by repeating the first windows of the
order, for frameworks that need equal steps per rank).

Resuming: ``state_dict()`` is ``{"epoch", "position"}`` (position = windows of this rank already
consumed in the epoch); save it with the checkpoint and ``load_state_dict`` it to continue with
exactly the windows not yet seen. The sampler holds only names, lengths and integers, so it
pickles into DataLoader workers and Ray tasks.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["window_starts", "jittered_starts", "WindowSampler", "SamplerState"]


def window_starts(n: int, w: int, s: int) -> np.ndarray:
    """Start frames (0-based) of the windows covering a video of ``n`` frames: (k,) int64,
    strictly increasing, the last one ``n - w`` (tail-aligned); ``k = 1`` when ``n <= w``."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if w < 1:
        raise ValueError(f"window w must be >= 1, got {w}")
    if not 1 <= s <= w:
        raise ValueError(f"stride s must satisfy 1 <= s <= w={w}, got {s}")
    if n <= w:
        return np.zeros(1, dtype=np.int64)
    starts = np.arange(0, n - w, s, dtype=np.int64)  # every start with start + w < n
    if starts[-1] != n - w:
        starts = np.append(starts, np.int64(n - w))
    return starts


def jittered_starts(n: int, w: int, s: int, offset: int) -> np.ndarray:
    """Training window starts shifted by ``offset`` in [0, s) that still cover every frame.

    The grid ``offset - s + j*s`` (j = 0..k, k = ``len(window_starts(n, w, s))``) is clipped to
    [0, n - w]: the first window starts at 0, the last ends on the last frame, neighbours are at
    most ``s <= w`` apart, so every frame is in a window in every epoch, and the count (k + 1) does
    not depend on the offset (fixed epoch length). Requires n > w. Returns (k + 1,) int64.
    """
    k = len(window_starts(n, w, s))
    grid = offset - s + s * np.arange(k + 1, dtype=np.int64)
    return np.clip(grid, 0, n - w)


@dataclass(frozen=True)
class SamplerState:
    epoch: int = 0
    position: int = 0


class WindowSampler:
    """Iterate (video, start) windows of one rank; see the module docstring.

    videos: {name: num_frames} or [(name, num_frames), ...] (e.g. from
    ``WindowSampler.from_store(store, names, ...)``). ``jitter``: each epoch, shift a video's
    window grid by one random offset in [0, stride) (:func:`jittered_starts`: one window more
    than without jitter, every frame still covered); ``shuffle=False`` keeps store order.
    """

    def __init__(self, videos: Mapping[str, int] | Sequence[tuple[str, int]], length: int,
                 stride: int | None = None, *, seed: int = 0, rank: int = 0, world_size: int = 1,
                 shuffle: bool = True, jitter: bool = False, even: bool = False):
        items = list(videos.items()) if isinstance(videos, Mapping) else [tuple(v) for v in videos]
        if not items:
            raise ValueError("the sampler needs at least one video")
        stride = length if stride is None else stride
        for name, n in items:
            if int(n) < 1:
                raise ValueError(f"video {name!r} has {n} frames; every video needs >= 1")
        if isinstance(length, bool) or int(length) < 1:
            raise ValueError(f"window length must be >= 1, got {length!r}")
        if not 1 <= int(stride) <= int(length):
            raise ValueError(f"stride must satisfy 1 <= stride <= length={length}, got {stride}")
        if int(world_size) < 1:
            raise ValueError(f"world_size must be >= 1, got {world_size}")
        if not 0 <= int(rank) < int(world_size):
            raise ValueError(f"rank {rank} is outside 0..{int(world_size) - 1} "
                             f"(world_size {world_size})")
        self.names = [str(n) for n, _ in items]
        self.frames = np.asarray([int(n) for _, n in items], dtype=np.int64)  # (V,)
        self.length, self.stride, self.seed = int(length), int(stride), int(seed)
        self.rank, self.world_size = int(rank), int(world_size)
        self.shuffle, self.jitter, self.even = shuffle, jitter, even
        self.epoch, self.position = 0, 0

    @classmethod
    def from_store(cls, store, videos: Sequence[str], length: int, stride: int | None = None,
                   **kwargs) -> WindowSampler:
        return cls([(v, store.num_frames(v)) for v in videos], length, stride, **kwargs)

    # the plan of one epoch -------------------------------------------------------------
    def windows(self, epoch: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """All windows of ``epoch`` in canonical (store) order: video index (N,), start (N,)."""
        epoch = self.epoch if epoch is None else int(epoch)
        rng = np.random.default_rng((self.seed, epoch))
        vids, starts = [], []
        for i, n in enumerate(self.frames.tolist()):
            st = window_starts(n, self.length, self.stride)  # (k,)
            if self.jitter and n > self.length:
                st = jittered_starts(n, self.length, self.stride, int(rng.integers(0, self.stride)))
            vids.append(np.full(len(st), i, dtype=np.int64))
            starts.append(st)
        return np.concatenate(vids), np.concatenate(starts)

    def order(self, epoch: int | None = None) -> np.ndarray:
        """Indices into ``windows(epoch)`` that this rank reads, in reading order: (k,) int64."""
        epoch = self.epoch if epoch is None else int(epoch)
        total = len(self.windows(epoch)[0])
        perm = (np.random.default_rng((self.seed, epoch, 1)).permutation(total) if self.shuffle
                else np.arange(total, dtype=np.int64))
        if self.even and total % self.world_size:
            extra = self.world_size - total % self.world_size
            perm = np.concatenate([perm, perm[:extra]])
        return perm[self.rank::self.world_size]

    def epoch_items(self, epoch: int | None = None) -> list[tuple[str, int]]:
        """This rank's (video, start) windows of ``epoch`` in reading order."""
        vids, starts = self.windows(epoch)
        idx = self.order(epoch)
        return [(self.names[int(vids[k])], int(starts[k])) for k in idx]

    def __len__(self) -> int:
        """Windows of this rank in the current epoch."""
        return len(self.order())

    # iteration and resuming -------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        if int(epoch) != self.epoch:
            self.epoch, self.position = int(epoch), 0

    def __iter__(self) -> Iterator[tuple[str, int]]:
        """This rank's windows of the current epoch from ``position`` on; each one yielded counts
        as consumed. At the end the sampler moves to the next epoch."""
        items = self.epoch_items()
        while self.position < len(items):
            item = items[self.position]
            self.position += 1
            yield item
        self.epoch, self.position = self.epoch + 1, 0

    def batches(self, batch_size: int) -> Iterator[list[tuple[str, int]]]:
        """Like iteration, ``batch_size`` windows at a time (the last batch may be smaller)."""
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        items = self.epoch_items()
        while self.position < len(items):
            batch = items[self.position:self.position + int(batch_size)]
            self.position += len(batch)
            yield batch
        self.epoch, self.position = self.epoch + 1, 0

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: Mapping[str, int]) -> None:
        try:
            epoch, position = int(state["epoch"]), int(state["position"])
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"sampler state {state!r} is not {{'epoch': int, 'position': int}}") from None
        if epoch < 0 or not 0 <= position <= len(self.order(epoch)):
            raise ValueError(f"sampler state {state!r} is outside epoch {epoch}'s "
                             f"{len(self.order(max(epoch, 0)))} windows of rank {self.rank}")
        self.epoch, self.position = epoch, position
