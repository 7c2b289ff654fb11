"""Bulk reads of whole videos: many committed videos into one contiguous array.

``load_features`` reads chunk-aligned blocks of each video straight into the destination (an
in-memory array or a ``.npy`` memmap), so its peak extra memory is one block, never a copy of
the store; ``load_labels`` puts the labels of several videos back to back. Both serve
:meth:`featurestore.store.FeatureStore.load` and ``load_labels``; every chunk is checked on
decode (crc32c) and a damaged one is a StoreError naming it (featurestore.chunkread).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from featurestore import layout as L
from featurestore.chunkread import read

__all__ = ["LOAD_BLOCK_CHUNKS", "LoadedFeatures", "LoadedLabels", "load_features", "load_labels"]

LOAD_BLOCK_CHUNKS = 16  # chunks per zarr call in bulk loads: bounds the extra memory of a load


@dataclass(frozen=True)
class LoadedFeatures:
    """One contiguous (rows, dim) array holding the loaded videos back to back."""

    array: np.ndarray
    spans: dict[str, tuple[int, int]]

    def __getitem__(self, video: str) -> np.ndarray:
        """(num_frames, dim) view of one video."""
        a, b = self.spans[video]
        return self.array[a:b]

    def videos(self) -> list[str]:
        return list(self.spans)


@dataclass(frozen=True)
class LoadedLabels:
    """Labels of several videos back to back: values (rows, ...) and valid (rows,)."""

    values: np.ndarray
    valid: np.ndarray
    spans: dict[str, tuple[int, int]]

    def __getitem__(self, video: str) -> tuple[np.ndarray, np.ndarray]:
        a, b = self.spans[video]
        return self.values[a:b], self.valid[a:b]


def load_labels(store, task: str, videos: list[str]) -> LoadedLabels:
    """Labels of several videos of ``store`` back to back, in the order given."""
    parts = [store.labels(task, v) for v in videos]
    spans, pos = {}, 0
    for v, (vals, _) in zip(videos, parts, strict=True):
        spans[v] = (pos, pos + len(vals))
        pos += len(vals)
    spec = L.LABEL_SPECS[task]
    values = (np.concatenate([p[0] for p in parts]) if parts
              else np.zeros((0, *spec.tail), spec.dtype))
    valid = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, bool)
    return LoadedLabels(values, valid, spans)


def load_features(store, name: str, videos: list[str], *,
                  memmap: str | os.PathLike | None = None, progress: bool = False) -> LoadedFeatures:
    """Whole committed ``videos`` of set ``name`` in one contiguous (rows, dim) array, rows = the
    sum of their frames; a .npy memmap created at ``memmap`` instead of RAM when given."""
    from zarr.core.buffer import default_buffer_prototype

    handle = store.set_arrays(name)
    for v in videos:  # UnknownKeyError naming the set and the first uncommitted video
        store._require_committed(name, v)
    offsets = [store.offset(v) for v in videos]
    counts = [store.num_frames(v) for v in videos]
    shape, dtype = (int(sum(counts)), handle.info.dim), np.dtype(handle.info.dtype)
    if memmap is not None:
        dest = np.lib.format.open_memmap(os.fspath(memmap), mode="w+", dtype=dtype, shape=shape)
    else:
        dest = np.empty(shape, dtype=dtype)  # (rows, dim)
    nd = default_buffer_prototype().nd_buffer
    spans, pos, block = {}, 0, LOAD_BLOCK_CHUNKS * L.CHUNK_FRAMES
    for v, off, n in tqdm(list(zip(videos, offsets, counts, strict=True)), desc=f"load {name}",
                          disable=not progress, unit="video"):
        for a in range(0, n, block):
            b = min(n, a + block)
            try:
                handle.data.get_basic_selection(
                    slice(off + a, off + b), out=nd.from_numpy_array(dest[pos + a:pos + b]))
            except Exception:  # name the damaged chunk (chunkread.read raises StoreError)
                read(handle.data, off + a, off + b, store.path)
                raise
        spans[v] = (pos, pos + n)
        pos += n
    if memmap is not None:
        dest.flush()
    return LoadedFeatures(dest, spans)
