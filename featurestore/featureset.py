"""One feature set inside a store's Zarr root: its attributes (`FeatureSetInfo`), its open arrays
(`FeatureSetArrays`) and its creation. `featurestore.store` and `featurestore.writer` both use
this module; neither reaches into the other.

A set is complete only when its group has every attribute of ``layout.SET_ATTRS``; they are
written last, in one metadata write, after the arrays exist. Readers treat an incomplete set as
absent and creating it again replaces it.
"""

from __future__ import annotations

import datetime as _dt
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import zarr

from featurestore import layout as L
from featurestore.chunkread import read
from featurestore.errors import FeatureValidationError, StoreError, UnknownKeyError
from featurestore.provenance import check_same_origin

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeatureSetInfo:
    name: str
    dim: int
    dtype: str
    fill: str
    provenance: dict[str, Any] = field(default_factory=dict)


@dataclass
class FeatureSetArrays:
    """The open arrays of one feature set plus a cache of positive commit flags (they never
    revert, so caching them is safe)."""

    info: FeatureSetInfo
    data: zarr.Array  # (frame, dim)
    committed_arr: zarr.Array  # (video,) uint8
    checksum_arr: zarr.Array  # (video,) uint32
    n_videos: int
    known: set[int] = field(default_factory=set)

    def is_committed(self, i: int) -> bool:
        if i in self.known:
            return True
        if int(read(self.committed_arr, i, i + 1, _where(self.committed_arr))[0]):
            self.known.add(i)
            return True
        return False

    def refresh_committed(self) -> np.ndarray:
        """(V,) bool commit flags, read from storage."""
        flags = np.asarray(read(self.committed_arr, 0, self.n_videos, _where(self.committed_arr)),
                           dtype=bool)  # (V,)
        self.known.update(int(i) for i in np.flatnonzero(flags))
        return flags

    def checksums(self) -> np.ndarray:
        """(V,) uint32 stored checksums (0 for uncommitted videos)."""
        return np.asarray(read(self.checksum_arr, 0, self.n_videos, _where(self.checksum_arr)),
                          dtype=np.uint32)


def _where(arr: zarr.Array) -> str:
    """The store an array lives in, for error messages."""
    return str(arr.store_path.store)


def set_names(root: zarr.Group) -> list[str]:
    """Names of the complete feature sets under ``root``, sorted."""
    if L.FEATURES not in root:
        return []
    group = root[L.FEATURES]
    return sorted(k for k in group.group_keys() if L.set_complete(group[k].attrs))


def open_set(root: zarr.Group, name: str, n_videos: int, where: str) -> FeatureSetArrays:
    """Open complete set ``name``; UnknownKeyError when there is none (or it is incomplete)."""
    try:
        group = root[L.feature_group(name)]
    except KeyError:
        group = None
    if group is None or not L.set_complete(group.attrs):
        raise UnknownKeyError(f"{where}: unknown feature set {name!r}; sets are {set_names(root)}")
    a = group.attrs.asdict()
    info = FeatureSetInfo(name=name, dim=int(a["dim"]), dtype=str(a["dtype"]), fill=str(a["fill"]),
                          provenance=dict(a.get("provenance") or {}))
    committed = group["committed"]
    if committed.shape[0] < n_videos:
        raise StoreError(f"{where}: feature set {name!r} has {committed.shape[0]} commit flags "
                         f"for {n_videos} videos (interrupted ingest? rerun it)")
    dense = {"write_empty_chunks": True}  # not kept in zarr 3.1 metadata: needed on every reopen
    return FeatureSetArrays(info, group["data"].with_config(dense), committed.with_config(dense),
                            group["checksum"].with_config(dense), n_videos)


def create_set(root: zarr.Group, name: str, dim: int, *, dtype: str, fill: str,
               provenance: dict[str, Any] | None, n_videos: int) -> bool:
    """Create feature set ``name`` (single process); False when a complete one exists already
    with the same dim, dtype, fill and origin (FeatureValidationError naming each difference
    otherwise: featurestore.provenance)."""
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
    features = root.require_group(L.FEATURES)
    if name in features and L.set_complete(features[name].attrs):
        check_same_origin(name, features[name].attrs.asdict(), int(dim), dtype, fill, provenance)
        return False
    frames = root[L.PRESENT].shape[0]
    group = features.create_group(name, overwrite=True)
    group.create_array("data", shape=(frames, int(dim)),
                       **L.frame_array_kwargs(dtype, (int(dim),), ("frame", "feature")))
    group.create_array("committed", shape=(n_videos,),
                       **L.video_array_kwargs("uint8", per_video_chunks=True))
    group.create_array("checksum", shape=(n_videos,),
                       **L.video_array_kwargs("uint32", per_video_chunks=True))
    prov = dict(provenance or {})
    prov.setdefault("created", _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"))
    # One metadata write (``attrs.update`` would write once per key): readers see the set
    # complete, with every attribute, or not at all.
    group.update_attributes({"dim": int(dim), "dtype": dtype, "fill": fill, "provenance": prov,
                             "uid": uuid.uuid4().hex})  # cache identity: a recreated set differs
    log.info("created feature set %s (dim %d, %s)", name, dim, dtype)
    return True
