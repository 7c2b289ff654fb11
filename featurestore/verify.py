"""Re-read the whole store: the catalog, face masks and labels (featurestore.verify_catalog) and
every committed video of every feature set (shape, finiteness, checksum, chunks present and
readable). Every problem names the array and the video."""

from __future__ import annotations

import logging

import numpy as np
from tqdm import tqdm

from featurestore import layout as L
from featurestore.chunkread import missing_chunks
from featurestore.store import FeatureStore
from featurestore.verify_catalog import verify_catalog
from featurestore.writer import checksum

log = logging.getLogger(__name__)


def verify_set(store: FeatureStore, name: str, progress: bool = True) -> dict:
    """Check one feature set. Returns {"committed", "missing", "problems": [str, ...]}."""
    problems: list[str] = []
    info = store.feature_info(name)
    committed = store.committed(name)
    sums = store.set_arrays(name).checksums()  # (V,)
    data = store.set_arrays(name).data
    for video in tqdm(committed, desc=f"verify {name}", unit="video", disable=not progress):
        i = store.video_index(video)
        off = store.offset(video)
        gone = missing_chunks(data, off, off + L.aligned_length(store.num_frames(video)))
        if gone:
            problems.append(f"{name}/{video}: chunk(s) {gone} of {data.path} missing (lost data)")
            continue
        try:
            rows = store.features(name, video)  # (n, dim)
        except Exception as err:  # report every unreadable video, not only the first
            problems.append(f"{name}/{video}: unreadable: {err}")
            continue
        n = store.num_frames(video)
        if rows.shape != (n, info.dim):
            problems.append(f"{name}/{video}: shape {rows.shape}, expected ({n}, {info.dim})")
            continue
        if not np.isfinite(rows).all():
            problems.append(f"{name}/{video}: {int((~np.isfinite(rows)).sum())} non-finite values")
        got = checksum(rows)
        if got != int(sums[i]):
            problems.append(f"{name}/{video}: checksum {got:#010x} != stored {int(sums[i]):#010x}")
    return {"committed": len(committed), "missing": len(store.videos()) - len(committed),
            "problems": problems}


def verify(store: FeatureStore, progress: bool = True) -> dict:
    """Verify every feature set of ``store``.

    Returns {"store", "videos", "ok": bool, "catalog": {"problems"},
    "sets": {name: {"committed", "missing", "problems"}}}.
    Problems are listed, never raised one by one.
    """
    sets = {}
    fresh = store.uncached()  # no chunk cache: the bytes on storage are what gets checked
    catalog = verify_catalog(fresh, progress)
    for name in fresh.feature_sets():
        sets[name] = verify_set(fresh, name, progress)
    ok = not catalog and all(not s["problems"] for s in sets.values())
    if not ok:
        log.warning("verify %s: %d problems", store.path,
                    len(catalog) + sum(len(s["problems"]) for s in sets.values()))
    return {"store": store.path, "videos": len(store.videos()), "ok": ok,
            "catalog": {"problems": catalog}, "sets": sets}
