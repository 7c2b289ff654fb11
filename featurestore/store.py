"""Read API of the feature store: :func:`open` and :class:`FeatureStore`.

The catalog (video names, offsets, frame counts, splits) is read once on open. Feature reads see
only committed videos; committed rows never change (exactly-once writes), which is what makes the
small LRU of decoded chunks safe.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import zarr

from featurestore import layout as L
from featurestore.bulk import LoadedFeatures, LoadedLabels, load_features, load_labels
from featurestore.chunkread import read
from featurestore.chunks import ChunkCache
from featurestore.errors import StoreError, UnknownKeyError
from featurestore.featureset import (
    FeatureSetArrays,
    FeatureSetInfo,
    create_set,
    open_set,
    set_names,
)
from featurestore.writer import FeatureSetWriter

__all__ = ["FeatureStore", "LoadedFeatures", "LoadedLabels", "check_layout_version",
           "check_version", "open"]

log = logging.getLogger(__name__)

MODES = ("r", "r+", "a")


def _path_str(path: str | os.PathLike) -> str:
    return os.fspath(path)


def open(path: str | os.PathLike, mode: str = "r", *, cache_bytes: int = 64 << 20,
         storage_options: dict | None = None, local_cache: str | os.PathLike | None = None,
         local_cache_bytes: int | None = None) -> FeatureStore:
    """Open a feature store (local path or fsspec URL such as ``memory://x``, ``s3://b/x``,
    ``http://host/x.zarr``).

    mode "r" is read-only; "r+" / "a" allow creating and writing feature sets. ``cache_bytes``
    bounds the in-memory LRU of decoded chunks. ``storage_options`` go to fsspec (for s3:
    ``endpoint_url``, ``key``, ``secret``, ...). ``local_cache``: a folder keeping the stored
    bytes of feature chunks read from a remote store, at most ``local_cache_bytes`` (default
    10 GiB; see featurestore.chunks.DiskCache). Without the arguments, the environment variables
    FEATURESTORE_CACHE and FEATURESTORE_CACHE_BYTES give them (used by the CLI).
    """
    from featurestore.remote import open_root

    if mode not in MODES:
        raise StoreError(f"mode {mode!r} is not one of {MODES}")
    where = _path_str(path)
    root, disk = open_root(where, mode, storage_options, local_cache, local_cache_bytes)
    return FeatureStore(root, where, mode, cache_bytes=cache_bytes, disk=disk)


def check_version(attrs: dict, where: str) -> None:
    """Raise StoreError unless the root attrs describe a complete store this library can read."""
    version = attrs.get(L.ATTR_VERSION)
    if version is None:
        raise StoreError(f"{where}: not a complete feature store (no {L.ATTR_VERSION}; "
                         "an interrupted ingest? rerun it)")
    check_layout_version(int(version), where)
    state = (attrs.get(L.ATTR_INGEST) or {}).get("state", "complete")
    if state != "complete":
        raise StoreError(f"{where}: an ingest into this store did not finish (state {state!r}); "
                         "rerun the ingest")


def check_layout_version(version: int, where: str) -> None:
    """Raise StoreError for a layout this library does not read: newer than it, or older than
    ``layout.MIN_READABLE_VERSION`` (then the message gives the command that migrates it)."""
    if version > L.LAYOUT_VERSION:
        raise StoreError(f"{where}: store layout_version {version} is newer than this library's "
                         f"layout_version {L.LAYOUT_VERSION}; upgrade featurestore")
    if version < L.MIN_READABLE_VERSION:
        raise StoreError(f"{where}: store layout_version {version} predates chunk checksums "
                         f"(this library reads layout_version {L.LAYOUT_VERSION}); run "
                         f"`featurestore migrate {where} NEW_STORE` to write a checksummed copy "
                         f"(the old store is not changed), then use NEW_STORE")


class FeatureStore:
    """A feature store opened by :func:`open`. See docs/STORE.md for the layout."""

    def __init__(self, root: zarr.Group, where: str, mode: str, *, cache_bytes: int = 64 << 20,
                 disk=None):
        attrs = root.attrs.asdict()
        check_version(attrs, where)
        self._root, self.path, self.mode = root, where, mode
        self._names: list[str] = list(attrs[L.ATTR_VIDEOS])
        for name in self._names:  # names feed paths and keys elsewhere: refuse unsafe ones
            try:
                L.check_video_name(name)
            except ValueError as err:
                raise StoreError(f"{where}: {err}") from None
        self._sources: list[str] = list(attrs[L.ATTR_SOURCES])
        self._index = {v: i for i, v in enumerate(self._names)}
        n = len(self._names)
        self._offset = read(root[L.OFFSET], 0, n, where) if n else np.zeros(0, np.int64)  # (V,)
        self._frames = read(root[L.NUM_FRAMES], 0, n, where) if n else np.zeros(0, np.int64)
        self._split = (read(root[L.SPLIT], 0, n, where) if n  # (V, T)
                       else np.zeros((0, len(L.TASKS)), np.int8))
        self._sets: dict[str, FeatureSetArrays] = {}
        self._cache = ChunkCache(cache_bytes)
        self._disk = disk  # featurestore.chunks.DiskCache of a remote store, or None

    def __repr__(self) -> str:
        return f"FeatureStore({self.path!r}, videos={len(self._names)}, mode={self.mode!r})"

    # catalog -----------------------------------------------------------------------------
    def video_index(self, video: str) -> int:
        """Position of ``video`` in store order (its row in per-video arrays)."""
        i = self._index.get(video)
        if i is None:
            raise UnknownKeyError(f"{self.path}: unknown video {video!r}")
        return i


    def videos(self, split: str | None = None, task: str | None = None) -> list[str]:
        """Videos in store order; with ``split`` and/or ``task``, those in that split / task."""
        keep = np.ones(len(self._names), dtype=bool)
        if task is not None:
            if task not in L.TASKS:
                raise UnknownKeyError(f"unknown task {task!r}; tasks are {L.TASKS}")
            cols = self._split[:, [L.TASKS.index(task)]]  # (V, 1)
        else:
            cols = self._split  # (V, T)
        if split is not None:
            keep &= (cols == L.split_code(split)).any(axis=1)
        elif task is not None:
            keep &= (cols != L.SPLIT_NONE).any(axis=1)
        return [v for v, k in zip(self._names, keep, strict=True) if k]

    def num_frames(self, video: str) -> int:
        return int(self._frames[self.video_index(video)])

    def offset(self, video: str) -> int:
        """First row of ``video`` on the store's frame axis (a multiple of CHUNK_FRAMES)."""
        return int(self._offset[self.video_index(video)])

    def source(self, video: str) -> str:
        return self._sources[self.video_index(video)]

    def split(self, video: str, task: str) -> str | None:
        if task not in L.TASKS:
            raise UnknownKeyError(f"unknown task {task!r}; tasks are {L.TASKS}")
        return L.split_name(self._split[self.video_index(video), L.TASKS.index(task)])

    def _rows(self, video: str) -> slice:
        i = self.video_index(video)
        return slice(int(self._offset[i]), int(self._offset[i] + self._frames[i]))

    def present(self, video: str) -> np.ndarray:
        """(num_frames,) bool: True where the frame has a face jpg."""
        rows = self._rows(video)
        return np.asarray(read(self._root[L.PRESENT], rows.start, rows.stop, self.path), dtype=bool)

    def labels(self, task: str, video: str) -> tuple[np.ndarray, np.ndarray]:
        """Labels of one video: values (n, ...) and valid (n,) bool, n = num_frames(video).

        va (n, 2) float32, expr (n,) int64, au (n, 12) int8. Rows without an annotation line
        (past the end of the file, unannotated tasks, test videos) are invalid and hold the
        task's invalid marker (-5 for va, -1 otherwise).
        """
        if task not in L.TASKS:
            raise UnknownKeyError(f"unknown task {task!r}; tasks are {L.TASKS}")
        rows = self._rows(video)
        values = read(self._root[L.label_path(task)], rows.start, rows.stop, self.path)
        valid = np.asarray(read(self._root[L.valid_path(task)], rows.start, rows.stop, self.path),
                           dtype=bool)
        return values, valid

    def load_labels(self, task: str, videos: list[str]) -> LoadedLabels:
        """Labels of several videos back to back, in the order given
        (:func:`featurestore.bulk.load_labels`)."""
        return load_labels(self, task, videos)

    # feature sets ------------------------------------------------------------------------
    def feature_sets(self) -> list[str]:
        """Names of the feature sets that are fully created."""
        return set_names(self._root)

    def set_arrays(self, name: str) -> FeatureSetArrays:
        """The open arrays of complete feature set ``name`` (UnknownKeyError if there is none)."""
        handle = self._sets.get(name)
        if handle is None:
            handle = open_set(self._root, name, len(self._names), self.path)
            self._sets[name] = handle
        return handle


    def feature_info(self, name: str) -> FeatureSetInfo:
        return self.set_arrays(name).info

    def committed(self, name: str) -> list[str]:
        """Videos of feature set ``name`` whose features are committed (readable)."""
        flags = self.set_arrays(name).refresh_committed()
        return [v for v, c in zip(self._names, flags, strict=True) if c]

    def _require_committed(self, name: str, video: str) -> int:
        i = self.video_index(video)
        if not self.set_arrays(name).is_committed(i):
            raise UnknownKeyError(f"{self.path}: feature set {name!r} has no committed video {video!r}")
        return i

    def features(self, name: str, video: str, start: int | None = None,
                 stop: int | None = None) -> np.ndarray:
        """Rows [start, stop) of one committed video (0-based frame index = jpg number - 1).

        Returns (stop - start, dim) in the stored dtype. Uses the chunk LRU; the chunks the
        window needs that are not cached are fetched in one request (featurestore.batch.read_rows).
        """
        i = self._require_committed(name, video)
        n = int(self._frames[i])
        start = 0 if start is None else int(start)
        stop = n if stop is None else int(stop)
        if not 0 <= start <= stop <= n:
            raise StoreError(f"window [{start}, {stop}) is outside video {video!r} of {n} frames")
        from featurestore.batch import read_rows

        lo, hi = int(self._offset[i]) + start, int(self._offset[i]) + stop
        return read_rows(self, name, lo, hi)

    def read_windows(self, sets, windows, length: int, *, task: str | None = None, dtype=None):
        """Many windows at once: see :func:`featurestore.batch.read_windows` (B, L, D) + pad."""
        from featurestore.batch import read_windows

        return read_windows(self, sets, windows, length, task=task, dtype=dtype)

    def read_frames(self, sets, video: str, start: int | None = None, stop: int | None = None):
        """Frames of one video with several sets concatenated per frame: (stop - start, D)."""
        from featurestore.batch import read_frames

        return read_frames(self, sets, video, start, stop)

    def load(self, name: str, videos: list[str], *, memmap: str | os.PathLike | None = None,
             progress: bool = False) -> LoadedFeatures:
        """Load whole committed videos into one contiguous (rows, dim) array, rows = sum of frames
        (:func:`featurestore.bulk.load_features`: chunk-aligned blocks read straight into the
        destination, an in-memory array or a .npy memmap created at ``memmap``)."""
        return load_features(self, name, videos, memmap=memmap, progress=progress)

    def uncached(self) -> FeatureStore:
        """This store again, with no chunk cache: every read comes from storage (verify)."""
        return FeatureStore(self._root, self.path, self.mode, cache_bytes=0)

    def array(self, key: str) -> zarr.Array:
        """The stored array at layout key ``key`` (``featurestore.layout``: OFFSET, PRESENT,
        label_path(task), ...) as written, for verification and plain-zarr tools."""
        return self._root[key]

    # writing -----------------------------------------------------------------------------
    def require_writable(self) -> None:
        if self.mode == "r":
            raise StoreError(f"{self.path}: opened read-only; open(path, mode='a') to write")

    def create_feature_set(self, name: str, dim: int, *, dtype: str = "float16",
                           provenance: dict | None = None,
                           fill: str = L.DEFAULT_FILL) -> FeatureSetWriter:
        """Create (single process), or reopen if it exists with the same dim and dtype, a feature
        set; returns its writer. Its attributes are written last, in one write."""
        self.require_writable()
        self._sets.pop(name, None)
        if create_set(self._root, name, dim, dtype=dtype, fill=fill, provenance=provenance,
                      n_videos=len(self._names)):
            log.info("created feature set %s in %s", name, self.path)
        return FeatureSetWriter(self, name)

    def writer(self, name: str) -> FeatureSetWriter:
        """The :class:`featurestore.writer.FeatureSetWriter` of an existing feature set."""
        self.require_writable()
        return FeatureSetWriter(self, name)
