"""Batched window reads: many (video, start) windows of one length in one call.

``read_windows(store, sets, windows, length)`` returns features ``(B, L, D)`` with a pad mask
``(B, L)`` (and, with ``task``, labels ``(B, L, ...)`` and valid flags ``(B, L)``). Windows may run
past their video's end: the missing positions repeat the video's last frame and are marked in
``pad`` (as seqtrain pads), and their labels are invalid. Every chunk a call needs is fetched and
decoded once, however many windows share it (and not at all if the store's chunk LRU holds it).
Several feature sets are read concatenated per frame (``D`` = the sum of their dims). Only videos
committed in every asked set are readable: a read never returns partial or uncommitted rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from featurestore import layout as L
from featurestore.chunks import ChunkSource
from featurestore.errors import StoreError

__all__ = ["WindowBatch", "read_windows", "read_frames", "read_rows", "chunk_source"]


@dataclass(frozen=True)
class WindowBatch:
    """videos (B,) names, starts (B,) int64, x (B, L, D), pad (B, L) bool (True = padding);
    labels (B, L, ...) and valid (B, L) bool (False on padding) when a task was asked, else None."""

    videos: tuple[str, ...]
    starts: np.ndarray
    x: np.ndarray
    pad: np.ndarray
    labels: np.ndarray | None = None
    valid: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.videos)


def chunk_source(store, name: str) -> ChunkSource:
    """The (cached) ChunkSource of feature set ``name``'s data; uses the store's disk cache."""
    sources = store.__dict__.setdefault("_chunk_sources", {})
    src = sources.get(name)
    if src is None:
        data = store.set_arrays(name).data
        attrs = store._root[L.feature_group(name)].attrs.asdict()
        uid = attrs.get("uid") or f"{store.path}|{name}|{attrs.get('provenance', {}).get('created')}"
        src = ChunkSource(data, disk=getattr(store, "_disk", None), cache_key=f"set-{uid}")
        sources[name] = src
    return src


def _as_sets(sets: str | Sequence[str]) -> list[str]:
    names = [sets] if isinstance(sets, str) else list(sets)
    if not names:
        raise StoreError("no feature set asked: give at least one set name")
    return names


def _plan(store, sets: list[str], windows, length) -> tuple[list[str], np.ndarray, np.ndarray,
                                                           np.ndarray]:
    """Validate; return names, starts (B,), first row (B,) and valid rows (B,) of each window."""
    if isinstance(length, bool) or not isinstance(length, int | np.integer) or int(length) < 1:
        raise StoreError(f"window length must be a positive integer, got {length!r}")
    try:
        names, starts = zip(*windows, strict=True) if len(windows) else ((), ())
    except (TypeError, ValueError):
        names, starts = (), ()
        for k, item in enumerate(windows):  # find the bad one, to name it
            if not isinstance(item, tuple | list) or len(item) != 2:
                raise StoreError(f"window {k}: expected (video, start), got {item!r}") from None
    idx = [store._index.get(v) for v in names]
    if None in idx:
        store.video_index(names[idx.index(None)])  # UnknownKeyError naming the video
    st = np.asarray(starts)
    if len(st) and st.dtype.kind not in "iu":
        k = next(k for k, a in enumerate(starts)
                 if isinstance(a, bool) or not isinstance(a, int | np.integer))
        raise StoreError(f"window {k} of video {names[k]!r}: start {starts[k]!r} is not an integer")
    st = st.astype(np.int64)  # (B,)
    n = store._frames[idx] if idx else np.zeros(0, np.int64)  # (B,)
    bad = np.flatnonzero((st < 0) | (st >= n))
    if len(bad):
        k = int(bad[0])
        raise StoreError(f"window {k}: start {int(st[k])} is outside video {names[k]!r} "
                         f"of {int(n[k])} frames (valid starts 0..{int(n[k]) - 1})")
    for name in sets:
        handle, unique = store.set_arrays(name), dict.fromkeys(idx)
        if sum(i not in handle.known for i in unique) > 1:
            handle.refresh_committed()  # all flags in one concurrent read, not one per video
        for video in dict.fromkeys(names):
            store._require_committed(name, video)  # UnknownKeyError naming set and video
    lo = store._offset[idx] + st if idx else np.zeros(0, np.int64)
    return list(names), st, lo, np.minimum(int(length), n - st)


def _gather(get_chunks, out: np.ndarray, lo: np.ndarray, nrows: np.ndarray, C: int) -> None:
    """Fill out[b, :nrows[b]] with rows lo[b]...; pad positions repeat the last row."""
    need = set()
    for a, m in zip(lo.tolist(), nrows.tolist(), strict=True):
        need.update(range(a // C, (a + m - 1) // C + 1))
    chunks = get_chunks(sorted(need))
    length = out.shape[1]
    for b, (a, m) in enumerate(zip(lo.tolist(), nrows.tolist(), strict=True)):
        pos = 0
        while pos < m:
            r = a + pos
            c, off = divmod(r, C)
            take = min(m - pos, C - off)
            out[b, pos:pos + take] = chunks[c][off:off + take]
            pos += take
        if m < length:
            out[b, m:] = out[b, m - 1]


def _feature_chunks(store, name: str):
    def get(chunk_ids: list[int]) -> dict[int, np.ndarray]:
        got, todo = {}, []
        for c in chunk_ids:
            hit = store._cache.get((name, c))
            if hit is None:
                todo.append(c)
            else:
                got[c] = hit
        if todo:
            fresh = chunk_source(store, name).read(todo)
            for c in todo:
                store._cache.put((name, c), fresh[c])
            got.update(fresh)
        return got
    return get


def read_rows(store, name: str, lo: int, hi: int) -> np.ndarray:
    """Rows [lo, hi) of the frame axis of set ``name`` (committed videos only: the caller checks),
    from whole chunks through the store's chunk LRU: (hi - lo, dim)."""
    C = L.CHUNK_FRAMES
    data = store.set_arrays(name).data
    if hi <= lo:
        return np.zeros((0, data.shape[1]), dtype=data.dtype)
    first, last = lo // C, (hi - 1) // C
    got = _feature_chunks(store, name)(list(range(first, last + 1)))
    if first == last:
        return got[first][lo - first * C:hi - first * C].copy()
    block = np.concatenate([got[c] for c in range(first, last + 1)])  # (chunks * C, dim)
    return block[lo - first * C:hi - first * C]


def read_windows(store, sets: str | Sequence[str], windows: Sequence[tuple[str, int]],
                 length: int, *, task: str | None = None, dtype=None) -> WindowBatch:
    """Read ``windows`` [(video, start), ...] of ``length`` frames from the feature ``sets``.

    Returns a :class:`WindowBatch`; ``x`` has the sets' common dtype unless ``dtype`` is given
    (e.g. ``np.float32``: cast while copying, no extra array).
    """
    sets = _as_sets(sets)
    if task is not None:
        store.videos(task=task)  # UnknownKeyError naming an unknown task
    infos = [store.feature_info(s) for s in sets]  # UnknownKeyError naming the set
    names, starts, lo, nrows = _plan(store, sets, windows, length)
    B, Lw, C = len(names), int(length), L.CHUNK_FRAMES
    out_dtype = np.dtype(dtype) if dtype is not None else np.result_type(*[i.dtype for i in infos])
    x = np.empty((B, Lw, sum(i.dim for i in infos)), dtype=out_dtype)  # (B, L, D)
    d0 = 0
    for name, info in zip(sets, infos, strict=True):
        part = x[:, :, d0:d0 + info.dim] if len(sets) > 1 else x
        _gather(_feature_chunks(store, name), part, lo, nrows, C)
        d0 += info.dim
    pad = np.arange(Lw)[None, :] >= nrows[:, None]  # (B, L)
    labels = valid = None
    if task is not None:
        spec = L.LABEL_SPECS[task]
        labels = np.empty((B, Lw, *spec.tail), dtype=spec.dtype)  # (B, L, ...)
        valid = np.empty((B, Lw), dtype=bool)  # (B, L)
        for arr, path in ((labels, L.label_path(task)), (valid, L.valid_path(task))):
            src = ChunkSource(store._root[path])  # labels may be rewritten: never disk-cached
            _gather(src.read, arr, lo, nrows, C)
        valid &= ~pad
        labels[pad] = spec.invalid
    return WindowBatch(tuple(names), starts, x, pad, labels, valid)


def read_frames(store, sets: str | Sequence[str], video: str, start: int | None = None,
                stop: int | None = None, *, dtype=None) -> np.ndarray:
    """Frames [start, stop) of one committed video, several sets concatenated: (stop-start, D)."""
    n = store.num_frames(video)
    start = 0 if start is None else int(start)
    stop = n if stop is None else int(stop)
    if not 0 <= start < stop <= n:
        raise StoreError(f"frames [{start}, {stop}) are outside video {video!r} of {n} frames")
    return read_windows(store, sets, [(video, start)], stop - start, dtype=dtype).x[0]
