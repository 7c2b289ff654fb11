"""A picklable window reader that opens the store lazily in whichever process uses it.

Hand a :class:`StoreWindows` to DataLoader worker processes, Ray tasks or multiprocessing pools:
it pickles as its path and options only, and each process opens its own store (zarr handles, the
chunk LRU, fsspec sessions) on first use, never before a fork.

    from featurestore.reader import StoreWindows
    from featurestore.sampler import WindowSampler

    src = StoreWindows("s3://bucket/affwild2.zarr", ["mae-ft"], 300, task="va")
    sampler = WindowSampler.from_store(src.store, src.store.videos("train", "va"), 300, 200,
                                       seed=0, rank=rank, world_size=world)
    for windows in sampler.batches(32):
        batch = src.read(windows)     # x (32, 300, 768), pad, labels, valid

A torch map-style Dataset is three lines on top (``__getitem__`` returns ``src.window(item)``,
with a sampler yielding (video, start) items); see docs/STORE.md.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from featurestore.batch import WindowBatch, read_windows

__all__ = ["StoreWindows"]


class StoreWindows:
    """Windows of ``length`` frames of feature ``sets`` (+ ``task`` labels) of the store at ``path``."""

    def __init__(self, path: str | os.PathLike, sets: str | Sequence[str], length: int, *,
                 task: str | None = None, dtype=None, storage_options: dict | None = None,
                 local_cache: str | os.PathLike | None = None, local_cache_bytes: int | None = None,
                 cache_bytes: int = 64 << 20):
        self.path = os.fspath(path)
        self.sets = [sets] if isinstance(sets, str) else list(sets)
        self.length, self.task = int(length), task
        self.dtype = None if dtype is None else np.dtype(dtype).str
        self.open_kwargs = {"storage_options": storage_options, "cache_bytes": cache_bytes,
                            "local_cache": None if local_cache is None else os.fspath(local_cache),
                            "local_cache_bytes": local_cache_bytes}
        self._store, self._pid = None, None

    @property
    def store(self):
        """The store, opened on first use in this process (and again after a fork)."""
        if self._store is None or self._pid != os.getpid():
            from featurestore.store import open as open_store

            self._store, self._pid = open_store(self.path, **self.open_kwargs), os.getpid()
        return self._store

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_store"], state["_pid"] = None, None
        return state

    def read(self, windows: Sequence[tuple[str, int]]) -> WindowBatch:
        """A batch of windows [(video, start), ...]; see featurestore.batch.read_windows."""
        return read_windows(self.store, self.sets, windows, self.length, task=self.task,
                            dtype=self.dtype)

    def window(self, item: tuple[str, int]) -> tuple[np.ndarray, ...]:
        """One window: (x (L, D), pad (L,)) or, with a task, (x, labels, valid, pad)."""
        b = self.read([item])
        if self.task is None:
            return b.x[0], b.pad[0]
        return b.x[0], b.labels[0], b.valid[0], b.pad[0]

    def __repr__(self) -> str:
        return f"StoreWindows({self.path!r}, sets={self.sets}, length={self.length}, task={self.task!r})"
