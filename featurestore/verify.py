"""Re-read every committed video of every feature set and check shape, finiteness and checksum."""

from __future__ import annotations

import logging

import numpy as np
from tqdm import tqdm

from featurestore.store import FeatureStore
from featurestore.writer import checksum

log = logging.getLogger(__name__)


def verify_set(store: FeatureStore, name: str, progress: bool = True) -> dict:
    """Check one feature set. Returns {"committed", "missing", "problems": [str, ...]}."""
    problems: list[str] = []
    info = store.feature_info(name)
    committed = store.committed(name)
    sums = store.set_arrays(name).checksums()  # (V,)
    for video in tqdm(committed, desc=f"verify {name}", unit="video", disable=not progress):
        i = store.video_index(video)
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

    Returns {"store", "videos", "ok": bool, "sets": {name: {"committed", "missing", "problems"}}}.
    Problems are listed, never raised one by one.
    """
    sets = {}
    fresh = store.uncached()  # no chunk cache: the bytes on storage are what gets checked
    for name in fresh.feature_sets():
        sets[name] = verify_set(fresh, name, progress)
    ok = all(not s["problems"] for s in sets.values())
    if not ok:
        log.warning("verify %s: %d problems", store.path, sum(len(s["problems"]) for s in sets.values()))
    return {"store": store.path, "videos": len(store.videos()), "ok": ok, "sets": sets}
