"""The exactly-once, chunk-aligned per-video writer of a feature set (creation: featureset.py).

Order of one video's write: validate everything, fill missing faces, write the video's whole
chunk-aligned region of ``data``, then its ``checksum``, then its ``committed`` flag. Readers ignore
videos without the flag, so a writer killed mid-video leaves nothing visible, and a rerun
rewrites the video completely. Different videos own different chunks of every array, so writer
processes working on different videos never write one object.
"""

from __future__ import annotations

import logging
import zlib
from typing import Protocol

import numpy as np

from featurestore import layout as L
from featurestore.diskfull import disk_full
from featurestore.errors import FeatureValidationError, StoreError, UnknownKeyError
from featurestore.featureset import FeatureSetArrays
from featurestore.fill import fill_missing

log = logging.getLogger(__name__)


def checksum(stored: np.ndarray) -> int:
    """crc32 of the rows exactly as stored (C order bytes). stored: (n, dim)."""
    return zlib.crc32(np.ascontiguousarray(stored).tobytes()) & 0xFFFFFFFF


class WritableStore(Protocol):
    """What a writer needs of a store (:class:`featurestore.store.FeatureStore` is one)."""

    path: str

    def videos(self) -> list[str]: ...
    def video_index(self, video: str) -> int: ...
    def offset(self, video: str) -> int: ...
    def present(self, video: str) -> np.ndarray: ...
    def require_writable(self) -> None: ...
    def set_arrays(self, name: str) -> FeatureSetArrays: ...


class FeatureSetWriter:
    """Writes whole videos of one feature set, each exactly once."""

    def __init__(self, store: WritableStore, name: str):
        store.require_writable()
        self.store, self.name = store, name
        self._handle = store.set_arrays(name)
        self.info = self._handle.info

    def missing(self) -> list[str]:
        """Videos whose features are not committed yet, in store order."""
        flags = self._handle.refresh_committed()
        return [v for v, c in zip(self.store.videos(), flags, strict=True) if not c]

    def validate(self, video: str, features: np.ndarray) -> np.ndarray:
        """Check ``features`` (n_present, dim) for ``video``; return them cast to the set's dtype."""
        try:
            self.store.video_index(video)
        except UnknownKeyError:
            raise FeatureValidationError(f"feature set {self.name!r}: unknown video {video!r}") from None
        arr = np.asarray(features)
        if arr.ndim != 2 or arr.shape[1] != self.info.dim:
            raise FeatureValidationError(
                f"{self.name}/{video}: features have shape {arr.shape}, expected (n, {self.info.dim})")
        want = int(self.store.present(video).sum())
        if arr.shape[0] != want:
            raise FeatureValidationError(
                f"{self.name}/{video}: {arr.shape[0]} feature rows for {want} frames with a face")
        if not np.issubdtype(arr.dtype, np.number) or not np.isfinite(arr).all():
            raise FeatureValidationError(f"{self.name}/{video}: features contain NaN or inf "
                                         f"(first bad row {_first_bad_row(arr)})")
        with np.errstate(over="ignore"):
            cast = arr.astype(self.info.dtype)  # (n_present, dim)
        if not np.isfinite(cast).all():
            raise FeatureValidationError(
                f"{self.name}/{video}: features overflow {self.info.dtype} "
                f"(|x| > {float(np.finfo(self.info.dtype).max)}; first bad row {_first_bad_row(cast)})")
        return cast

    def write_video(self, video: str, features: np.ndarray) -> bool:
        """Validate, fill, write and commit one video. features: (n_present, dim).

        Returns False (writing nothing) if the video is already committed.
        """
        rows = self.validate(video, features)  # (k, dim)
        i = self.store.video_index(video)
        if self._handle.is_committed(i):
            log.info("%s/%s already committed; skipped", self.name, video)
            return False
        present = self.store.present(video)  # (n,)
        full = fill_missing(rows, present, self.info.fill).astype(self.info.dtype)  # (n, dim)
        off = self.store.offset(video)
        region = np.zeros((L.aligned_length(len(full)), self.info.dim), dtype=self.info.dtype)
        region[:len(full)] = full  # (aligned n, dim): the video's whole chunks
        try:
            self._handle.data[off:off + len(region)] = region
            self._handle.checksum_arr[i] = checksum(full)
            self._handle.committed_arr[i] = 1  # last: makes the video visible
        except Exception as err:
            if "://" in self.store.path:  # a remote store: the server failed or went away
                from featurestore.remote import describe

                raise StoreError(f"{self.store.path}: {describe(err)} while writing video "
                                 f"{video!r} of feature set {self.name!r}; the video is not "
                                 f"committed (unless only the answer to its commit was lost): "
                                 f"rerun when the store is reachable") from err
            if not disk_full(err, self.store.path):
                raise
            raise StoreError(f"{self.store.path}: no space left on device while writing video "
                             f"{video!r} of feature set {self.name!r}; the video is not "
                             f"committed: free space and rerun to write it") from err
        self._handle.known.add(i)
        return True


def _first_bad_row(arr: np.ndarray) -> int:
    bad = ~np.isfinite(arr.astype(np.float64, copy=False)).all(axis=1)
    hits = np.flatnonzero(bad)
    return int(hits[0]) if len(hits) else -1
