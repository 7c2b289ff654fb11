"""Verify the parts of a store that are not feature sets: the catalog, the face masks and the
labels. Every problem names the array, and the video (and chunk) where it lies.

Checked: catalog arrays readable and consistent (chunk-aligned, non-overlapping offsets inside
the frame axis; frame counts >= 0; split codes known); every chunk of every video's rows exists
(arrays are written dense, so a missing chunk is lost data) and decodes; masks and valid flags
are False past a video's last frame; label values lie in their task's domain where valid.
"""

from __future__ import annotations

import numpy as np
from tqdm import tqdm

from featurestore import layout as L
from featurestore.abaw import EXPR_CLASSES
from featurestore.chunkread import damaged_chunk, missing_chunks
from featurestore.store import FeatureStore

__all__ = ["verify_catalog"]

_DOMAIN = {  # values a valid label may hold
    "va": lambda v: (v >= -1) & (v <= 1),
    "expr": lambda v: (v >= 0) & (v < len(EXPR_CLASSES)),
    "au": lambda v: (v == 0) | (v == 1),
}


def _catalog(store: FeatureStore, frames: int) -> list[str]:
    problems = []
    codes = np.asarray(store.array(L.SPLIT)[:len(store.videos())])  # (V, T)
    for i in np.flatnonzero(((codes < L.SPLIT_NONE) | (codes >= len(L.SPLITS))).any(axis=1)):
        problems.append(f"{L.SPLIT}/{store.videos()[i]}: unknown split code(s) {codes[i].tolist()}")
    end = 0
    for v in store.videos():
        off, n = store.offset(v), store.num_frames(v)
        if n < 0 or off % L.CHUNK_FRAMES or off < end or off + L.aligned_length(n) > frames:
            problems.append(f"{L.OFFSET}/{v}: offset {off}, {n} frames: not chunk-aligned, "
                            f"overlapping the previous video or past the frame axis ({frames})")
        end = max(end, off + L.aligned_length(max(n, 0)))
    return problems


def _rows_ok(name: str, video: str, values: np.ndarray, valid: np.ndarray | None, n: int,
             task: str | None) -> list[str]:
    """Domain checks of one video's rows of one array (aligned length, n real frames)."""
    out = []
    if valid is None:  # the face mask
        if values[n:].any():
            out.append(f"{name}/{video}: face flags set past the last frame ({n})")
        return out
    if valid[n:].any():
        out.append(f"{L.valid_path(task)}/{video}: valid flags set past the last frame ({n})")
    rows = values.reshape(len(values), -1)  # (aligned n, columns)
    ok = _DOMAIN[task](rows).all(axis=1)
    bad = np.flatnonzero(valid & ~ok)
    if bad.size:
        out.append(f"{name}/{video}: {bad.size} valid row(s) out of range (first frame "
                   f"{int(bad[0]) + 1})")
    return out


def verify_catalog(store: FeatureStore, progress: bool = True) -> list[str]:
    """Problems of the catalog, masks and labels of ``store`` (an empty list when sound)."""
    store = store.uncached()  # no chunk cache: the bytes on storage are what gets checked
    frames = store.array(L.PRESENT).shape[0]
    problems = _catalog(store, frames)
    arrays = {L.PRESENT: (None, None)}
    for t in L.TASKS:
        arrays[L.label_path(t)] = (t, L.valid_path(t))
    opened = {k: store.array(k) for k in [*arrays, *(v for _, v in arrays.values() if v)]}
    for video in tqdm(store.videos(), desc="verify catalog", unit="video", disable=not progress):
        off, n = store.offset(video), store.num_frames(video)
        lo, hi = off, min(off + L.aligned_length(n), frames)
        read: dict[str, np.ndarray] = {}
        for key, arr in opened.items():
            gone = missing_chunks(arr, lo, hi)
            if gone:
                problems.append(f"{key}/{video}: chunk(s) {gone} missing (lost data)")
                continue
            try:
                read[key] = arr[lo:hi]
            except Exception:  # noqa: BLE001  (named below, chunk by chunk)
                c, why = damaged_chunk(arr, lo, hi) or (lo // L.CHUNK_FRAMES, "unreadable")
                problems.append(f"{key}/{video}: chunk {c} cannot be read: {why}")
        for key, (task, valid_key) in arrays.items():
            if key not in read or (valid_key and valid_key not in read):
                continue
            valid = np.asarray(read[valid_key], bool) if valid_key else None
            problems += _rows_ok(key, video, np.asarray(read[key]), valid, n, task)
    return problems
