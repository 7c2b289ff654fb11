"""The store as a Ray Data ``Dataset`` of windows or of frames (for Ray Train on many nodes).

    from jobs.raydata import read_windows, read_frames

    ds = read_windows("s3://bucket/affwild2.zarr", ["mae-ft"], 300, 200, split="train",
                      task="va", seed=0, epoch=0)
    # rows: video (str), start (int64), x (300, D), pad (300,) bool, labels (300, 2), valid (300,)
    for batch in ds.iter_batches(batch_size=32, batch_format="numpy"):
        ...
    # Ray Train: pass datasets={"train": ds}; each worker reads its shard with
    # ray.train.get_dataset_shard("train").iter_torch_batches(batch_size=32)

The windows are the sampler's (:mod:`featurestore.sampler`: tail-aligned, every frame covered),
cut into blocks of ``windows_per_block`` consecutive windows (neighbouring windows share chunks,
so a read task fetches each chunk about once); with ``shuffle`` the block order is permuted from
(seed, epoch). Each window is in exactly one block, so one pass over the dataset reads every
window exactly once, whichever nodes run the read tasks. Read tasks open the store lazily
(:class:`featurestore.reader.StoreWindows`); every node needs the path to reach the same store
(a shared folder, S3, HTTP). For a finer shuffle use ``ds.random_shuffle()`` or a
``local_shuffle_buffer_size`` when iterating.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import ray.data
from ray.data import Datasource, ReadTask
from ray.data.block import BlockAccessor, BlockMetadata

from featurestore.reader import StoreWindows
from featurestore.sampler import WindowSampler

__all__ = ["read_windows", "read_frames", "WindowDatasource", "FrameDatasource"]


def _videos(src: StoreWindows, videos, split, task) -> list[str]:
    store = src.store
    if videos is None:
        videos = store.videos(split=split, task=task if split else None)
    committed = set.intersection(*[set(store.committed(s)) for s in src.sets])
    return [v for v in videos if v in committed]


def _tasks(blocks: list, read_block, row_bytes: int, parallelism: int) -> list[ReadTask]:
    groups = [g for g in np.array_split(np.arange(len(blocks)), max(1, min(parallelism, len(blocks))))
              if len(g)]
    tasks = []
    for g in groups:
        mine = [blocks[int(k)] for k in g]
        rows = sum(len(b) if isinstance(b, list) else b[2] - b[1] for b in mine)
        meta = BlockMetadata(num_rows=rows, size_bytes=rows * row_bytes, exec_stats=None,
                             input_files=None)
        tasks.append(ReadTask(lambda mine=mine: (read_block(b) for b in mine), meta))
    return tasks


class WindowDatasource(Datasource):
    """Ray Data source of the windows planned by a WindowSampler (see the module docstring)."""

    def __init__(self, src: StoreWindows, sampler: WindowSampler, windows_per_block: int):
        self.src, self.sampler = src, sampler
        items = sampler.epoch_items()  # this rank's windows in sampler order
        canon = sorted(items, key=lambda it: (sampler.names.index(it[0]), it[1]))
        self.blocks = [canon[i:i + windows_per_block]
                       for i in range(0, len(canon), windows_per_block)]
        if sampler.shuffle:
            rng = np.random.default_rng((sampler.seed, sampler.epoch, 2))
            self.blocks = [self.blocks[int(k)] for k in rng.permutation(len(self.blocks))]
        store = src.store
        dim = sum(store.feature_info(s).dim for s in src.sets)
        self.row_bytes = src.length * dim * 4

    def estimate_inmemory_data_size(self) -> int:
        return sum(len(b) for b in self.blocks) * self.row_bytes

    def get_read_tasks(self, parallelism: int, per_task_row_limit=None, data_context=None):
        src = self.src

        def read_block(windows):
            b = src.read(windows)
            cols = {"video": np.asarray(b.videos, dtype=object), "start": b.starts, "x": b.x,
                    "pad": b.pad}
            if b.labels is not None:
                cols.update(labels=b.labels, valid=b.valid)
            return BlockAccessor.batch_to_block(cols)

        return _tasks(self.blocks, read_block, self.row_bytes, parallelism)


def read_windows(path: str | os.PathLike, sets: str | Sequence[str], length: int,
                 stride: int | None = None, *, videos: Sequence[str] | None = None,
                 split: str | None = None, task: str | None = None, seed: int = 0,
                 epoch: int = 0, shuffle: bool = True, jitter: bool = False,
                 windows_per_block: int = 64, dtype="float32", storage_options: dict | None = None,
                 local_cache: str | os.PathLike | None = None, **read_args) -> ray.data.Dataset:
    """A Dataset of windows of ``length`` frames (stride ``stride``) of the committed ``videos``
    (default: those of ``split`` for ``task``, or all) with features of ``sets`` concatenated per
    frame, and ``task`` labels. ``read_args`` go to ``ray.data.read_datasource``
    (``override_num_blocks``, ``num_cpus``, ``concurrency``, ...)."""
    src = StoreWindows(path, sets, length, task=task, dtype=dtype, storage_options=storage_options,
                       local_cache=local_cache)
    names = _videos(src, videos, split, task)
    if not names:
        raise ValueError(f"{os.fspath(path)}: no committed videos of {src.sets} to read")
    sampler = WindowSampler.from_store(src.store, names, length, stride, seed=seed,
                                       shuffle=shuffle, jitter=jitter)
    sampler.set_epoch(epoch)
    source = WindowDatasource(src, sampler, int(windows_per_block))
    src._store = None  # the driver's open store is not shipped (nor kept) with the tasks
    return ray.data.read_datasource(source, **read_args)


class FrameDatasource(Datasource):
    """Ray Data source of single frames: rows (video, frame, x (D,), [label, valid])."""

    def __init__(self, src: StoreWindows, videos: list[str], frames_per_block: int):
        self.src = src
        store = src.store
        self.blocks = [(v, a, min(a + frames_per_block, store.num_frames(v))) for v in videos
                       for a in range(0, store.num_frames(v), frames_per_block)]
        self.row_bytes = sum(store.feature_info(s).dim for s in src.sets) * 4

    def estimate_inmemory_data_size(self) -> int:
        return sum(b - a for _, a, b in self.blocks) * self.row_bytes

    def get_read_tasks(self, parallelism: int, per_task_row_limit=None, data_context=None):
        src = self.src

        def read_block(block):
            video, a, b = block
            batch = src.store.read_windows(src.sets, [(video, a)], b - a, task=src.task,
                                           dtype=src.dtype)
            cols = {"video": np.full(b - a, video, dtype=object),
                    "frame": np.arange(a, b, dtype=np.int64), "x": batch.x[0]}
            if batch.labels is not None:
                cols.update(label=batch.labels[0], valid=batch.valid[0])
            return BlockAccessor.batch_to_block(cols)

        return _tasks(self.blocks, read_block, self.row_bytes, parallelism)


def read_frames(path: str | os.PathLike, sets: str | Sequence[str], *,
                videos: Sequence[str] | None = None, split: str | None = None,
                task: str | None = None, frames_per_block: int = 1024, dtype="float32",
                storage_options: dict | None = None, local_cache: str | os.PathLike | None = None,
                **read_args) -> ray.data.Dataset:
    """A Dataset with one row per frame of the committed ``videos`` (in store order)."""
    src = StoreWindows(path, sets, 1, task=task, dtype=dtype, storage_options=storage_options,
                       local_cache=local_cache)
    names = _videos(src, videos, split, task)
    if not names:
        raise ValueError(f"{os.fspath(path)}: no committed videos of {src.sets} to read")
    source = FrameDatasource(src, names, int(frames_per_block))
    src._store = None
    return ray.data.read_datasource(source, **read_args)
