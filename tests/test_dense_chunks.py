"""Every chunk is written, even one holding only the fill value, also after the store is reopened
(zarr 3.1 forgets write_empty_chunks on reopen): a lost chunk can then be told from an empty one."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import featurestore
from featurestore import layout as L
from featurestore.ingest import VideoRecord, create_store


def _chunks(array_dir: Path) -> int:
    return sum(1 for p in array_dir.rglob("*") if p.is_file() and p.name != "zarr.json")


def test_all_zero_writes_make_chunks_after_reopen(tmp_path):
    path = tmp_path / "s.zarr"
    recs = [VideoRecord(f"v{i}", f"v{i}", 10, np.ones(10, bool)) for i in range(2)]
    create_store(path, recs)
    featurestore.open(path, "a").create_feature_set("f", 4)
    data = path / L.FEATURES / "f" / "data"
    before = _chunks(data)
    s = featurestore.open(path, "a")  # reopened: the arrays' config comes from the metadata
    s.writer("f").write_video("v1", np.zeros((10, 4), np.float32))
    assert _chunks(data) == before + 1  # the all-zero chunk of v1 exists on disk
    # a re-ingest adding a video with no face and no labels (all fill values) writes its rows too
    present = path / L.PRESENT
    n_present = _chunks(present)
    create_store(path, recs + [VideoRecord("v2", "v2", 10, np.zeros(10, bool))])
    assert _chunks(present) == n_present + 1
