"""Feature-set creation and the exactly-once, chunk-aligned per-video writer.

Order of one video's write: validate everything, fill missing faces, write the video's whole
chunk-aligned region of ``data``, then its ``checksum``, then its ``committed`` flag. Readers ignore
videos without the flag, so a writer killed mid-video leaves nothing visible, and a rerun
rewrites the video completely. Different videos own different chunks of every array, so writer
processes working on different videos never write one object.
"""

from __future__ import annotations

import datetime as _dt
import logging
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import zarr

from featurestore import layout as L
from featurestore.errors import FeatureValidationError, StoreError
from featurestore.fill import fill_missing

if TYPE_CHECKING:
    from featurestore.store import FeatureSetInfo, FeatureStore

log = logging.getLogger(__name__)


def checksum(stored: np.ndarray) -> int:
    """crc32 of the rows exactly as stored (C order bytes). stored: (n, dim)."""
    return zlib.crc32(np.ascontiguousarray(stored).tobytes()) & 0xFFFFFFFF


@dataclass
class _SetHandle:
    """Open arrays of one feature set plus a cache of positive commit flags (they never revert)."""

    info: FeatureSetInfo
    data: zarr.Array
    committed_arr: zarr.Array
    checksum_arr: zarr.Array
    known: set[int]
    n_videos: int

    def is_committed(self, i: int) -> bool:
        if i in self.known:
            return True
        if int(self.committed_arr[i]):
            self.known.add(i)
            return True
        return False

    def refresh_committed(self) -> np.ndarray:
        flags = np.asarray(self.committed_arr[:self.n_videos], dtype=bool)  # (V,)
        self.known.update(int(i) for i in np.flatnonzero(flags))
        return flags


def open_set_handle(store: FeatureStore, name: str) -> _SetHandle:
    from featurestore.store import FeatureSetInfo, UnknownKeyError

    key = L.feature_group(name)
    try:
        group = store._root[key]
    except KeyError:
        group = None
    if group is None or not L.set_complete(group.attrs):
        raise UnknownKeyError(f"{store.path}: unknown feature set {name!r}; "
                              f"sets are {store.feature_sets()}")
    a = group.attrs.asdict()
    info = FeatureSetInfo(name=name, dim=int(a["dim"]), dtype=str(a["dtype"]), fill=str(a["fill"]),
                          provenance=dict(a.get("provenance") or {}))
    n = len(store._names)
    committed = group["committed"]
    if committed.shape[0] < n:
        raise StoreError(f"{store.path}: feature set {name!r} has {committed.shape[0]} commit flags "
                         f"for {n} videos (interrupted ingest? rerun it)")
    return _SetHandle(info, group["data"], committed, group["checksum"], set(), n)


def create_feature_set(store: FeatureStore, name: str, dim: int, *, dtype: str = "float16",
                       provenance: dict[str, Any] | None = None,
                       fill: str = L.DEFAULT_FILL) -> FeatureSetWriter:
    """Create a feature set (single process), or return the writer of the existing one.

    The set's attrs (dim, ...) are written last: a set without them is incomplete and recreated.
    """
    try:
        L.check_set_name(name)
    except ValueError as err:
        raise FeatureValidationError(str(err)) from None
    if not isinstance(dim, int | np.integer) or int(dim) <= 0:
        raise FeatureValidationError(f"dim={dim!r} must be a positive integer")
    if dtype not in L.FEATURE_DTYPES:
        raise FeatureValidationError(f"dtype={dtype!r} must be one of {L.FEATURE_DTYPES}")
    if fill not in L.FILL_POLICIES:
        raise FeatureValidationError(f"fill={fill!r} must be one of {L.FILL_POLICIES}")
    features = store._root.require_group(L.FEATURES)
    if name in features and L.set_complete(features[name].attrs):
        attrs = features[name].attrs
        if int(attrs["dim"]) != int(dim) or attrs["dtype"] != dtype:
            raise FeatureValidationError(
                f"feature set {name!r} exists with dim={attrs['dim']} dtype={attrs['dtype']}; "
                f"asked for dim={dim} dtype={dtype}")
        return FeatureSetWriter(store, name)
    frames = store._root[L.PRESENT].shape[0]
    videos = len(store._names)
    group = features.create_group(name, overwrite=True)
    group.create_array("data", shape=(frames, int(dim)),
                       **L.frame_array_kwargs(dtype, (int(dim),), ("frame", "feature")))
    group.create_array("committed", shape=(videos,),
                       **L.video_array_kwargs("uint8", per_video_chunks=True))
    group.create_array("checksum", shape=(videos,),
                       **L.video_array_kwargs("uint32", per_video_chunks=True))
    prov = dict(provenance or {})
    prov.setdefault("created", _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"))
    # One metadata write (``attrs.update`` would write once per key): readers see the set
    # complete, with every attribute, or not at all.
    group.update_attributes({"dim": int(dim), "dtype": dtype, "fill": fill, "provenance": prov})
    log.info("created feature set %s (dim %d, %s) in %s", name, dim, dtype, store.path)
    return FeatureSetWriter(store, name)


class FeatureSetWriter:
    """Writes whole videos of one feature set, each exactly once."""

    def __init__(self, store: FeatureStore, name: str):
        store._require_writable()
        self.store, self.name = store, name
        self._handle = open_set_handle(store, name)
        self.info = self._handle.info

    def missing(self) -> list[str]:
        """Videos whose features are not committed yet, in store order."""
        flags = self._handle.refresh_committed()
        return [v for v, c in zip(self.store._names, flags, strict=True) if not c]

    def validate(self, video: str, features: np.ndarray) -> np.ndarray:
        """Check ``features`` (n_present, dim) for ``video``; return them cast to the set's dtype."""
        if video not in self.store._index:
            raise FeatureValidationError(f"feature set {self.name!r}: unknown video {video!r}")
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
        i = self.store._index[video]
        if self._handle.is_committed(i):
            log.info("%s/%s already committed; skipped", self.name, video)
            return False
        present = self.store.present(video)  # (n,)
        full = fill_missing(rows, present, self.info.fill).astype(self.info.dtype)  # (n, dim)
        off = int(self.store._offset[i])
        region = np.zeros((L.aligned_length(len(full)), self.info.dim), dtype=self.info.dtype)
        region[:len(full)] = full  # (aligned n, dim): the video's whole chunks
        self._handle.data[off:off + len(region)] = region
        self._handle.checksum_arr[i] = checksum(full)
        self._handle.committed_arr[i] = 1  # last: makes the video visible
        self._handle.known.add(i)
        return True


def _first_bad_row(arr: np.ndarray) -> int:
    bad = ~np.isfinite(arr.astype(np.float64, copy=False)).all(axis=1)
    hits = np.flatnonzero(bad)
    return int(hits[0]) if len(hits) else -1
