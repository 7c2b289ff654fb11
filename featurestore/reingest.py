"""What a re-ingest may change in a store whose features are already written.

A video's features are computed from its face frames and filled where it has none, so they are
only valid for the face mask (``present``) they were written with. A re-ingest that would change
the mask of a video committed in a feature set (a jpg added, removed or replaced by a non-face)
is refused before anything is written, naming the videos and sets, unless the caller asks to
invalidate: then those videos' commit flags (and checksums) are reset *before* the new mask is
written, so no reader ever sees features over a mask they were not computed for, and the next
extraction writes them again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import zarr

from featurestore import layout as L
from featurestore.chunkread import read
from featurestore.errors import StoreError
from featurestore.featureset import set_names

log = logging.getLogger(__name__)

__all__ = ["changed_masks", "committed_sets", "check_or_invalidate"]

_SHOWN = 5


def changed_masks(root: zarr.Group, old: list[str], offsets: np.ndarray,
                  new_present: Mapping[str, np.ndarray]) -> list[str]:
    """Videos of ``old`` (store order, row ``offsets``) whose stored face mask differs from
    ``new_present[video]`` ((n,) bool; videos not in it are left out)."""
    arr = root[L.PRESENT]
    out = []
    for name, off in zip(old, offsets, strict=True):
        want = new_present.get(name)
        if want is None:
            continue
        have = np.asarray(read(arr, int(off), int(off) + len(want), str(root.store)),
                          dtype=bool)  # (n,)
        if not np.array_equal(have, np.asarray(want, dtype=bool)):
            out.append(name)
    return out


def committed_sets(root: zarr.Group, old: list[str], videos: list[str]) -> dict[str, list[str]]:
    """video -> the feature sets in which it is committed (videos committed nowhere left out)."""
    index = {v: i for i, v in enumerate(old)}
    out: dict[str, list[str]] = {}
    for name in set_names(root):
        flags = root[L.feature_group(name)]["committed"]
        for v in videos:
            if int(read(flags, index[v], index[v] + 1, str(root.store))[0]):
                out.setdefault(v, []).append(name)
    return out


def check_or_invalidate(root: zarr.Group, where: str, old: list[str], offsets: np.ndarray,
                        new_present: Mapping[str, np.ndarray], invalidate: bool) -> list[str]:
    """Refuse (StoreError) or, with ``invalidate``, uncommit the features of every committed
    video whose face mask the re-ingest changes. Returns the invalidated ``set/video`` keys."""
    hit = committed_sets(root, old, changed_masks(root, old, offsets, new_present))
    if not hit:
        return []
    listed = ", ".join(f"{v} (in {', '.join(s)})" for v, s in list(hit.items())[:_SHOWN])
    more = f" and {len(hit) - _SHOWN} more" if len(hit) > _SHOWN else ""
    if not invalidate:
        raise StoreError(
            f"{where}: the face mask of {len(hit)} video(s) with committed features changed: "
            f"{listed}{more}; their features were computed for the old mask. Nothing was "
            f"written: rerun with --invalidate-changed to uncommit those videos' features "
            f"(the next extraction writes them again), or ingest into a new store")
    index = {v: i for i, v in enumerate(old)}
    done = []
    for video, sets in hit.items():
        for name in sets:
            group = root[L.feature_group(name)]
            group["committed"].with_config({"write_empty_chunks": True})[index[video]] = 0
            group["checksum"].with_config({"write_empty_chunks": True})[index[video]] = 0
            done.append(f"{name}/{video}")
    log.warning("%s: face mask changed; features uncommitted for %s", where, ", ".join(done))
    return done
