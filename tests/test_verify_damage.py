"""Every damage to a store is found and named: `verify` covers the catalog, face masks, labels
and feature sets (a deleted chunk, a chunk of garbage bytes, a label out of its domain, a mask
set past a video's end), naming the array and the video; an ordinary read of a damaged chunk is
a StoreError naming the array and the chunk, never a codec traceback or silent fill values."""

from __future__ import annotations

from pathlib import Path

import pytest
import zarr
from test_store import write_store

import featurestore
from featurestore import layout as L
from featurestore.errors import StoreError
from featurestore.verify import verify


@pytest.fixture
def store_path(tmp_path) -> Path:
    path = tmp_path / "s.zarr"
    write_store(path)
    return path


def _chunk_file(path: Path, key: str, store, video: str) -> Path:
    c = store.offset(video) // L.CHUNK_FRAMES
    files = sorted((path / key / "c" / str(c)).rglob("*")) if (path / key / "c" / str(c)).is_dir() \
        else [path / key / "c" / str(c)]
    return next(f for f in files if f.is_file())


def test_a_sound_store_verifies_clean(store_path):
    report = verify(featurestore.open(store_path), progress=False)
    assert report["ok"] and report["catalog"]["problems"] == [], report


@pytest.mark.parametrize("key", [L.PRESENT, L.label_path("va"), L.valid_path("au"),
                                 "features/mae/data"])
def test_a_deleted_chunk_is_found_and_named(store_path, key):
    s = featurestore.open(store_path)
    _chunk_file(store_path, key, s, "c").unlink()
    report = verify(featurestore.open(store_path), progress=False)
    problems = report["catalog"]["problems"] + report["sets"]["mae"]["problems"]
    assert not report["ok"]
    assert any("/c:" in p and "missing" in p for p in problems), problems
    assert any(key in p for p in problems), problems


@pytest.mark.parametrize("key", [L.PRESENT, L.label_path("au"), "features/mae/data"])
def test_a_garbage_chunk_is_named_by_reads_and_verify(store_path, key):
    s = featurestore.open(store_path)
    f = _chunk_file(store_path, key, s, "b_left")
    f.write_bytes(b"\x00garbage" * 7)
    s = featurestore.open(store_path)
    read = {L.PRESENT: lambda: s.present("b_left"),
            L.label_path("au"): lambda: s.labels("au", "b_left"),
            "features/mae/data": lambda: s.features("mae", "b_left")}[key]
    with pytest.raises(StoreError) as err:
        read()
    c = s.offset("b_left") // L.CHUNK_FRAMES
    assert f"array {key} chunk {c}" in str(err.value) and str(store_path) in str(err.value)
    if key == "features/mae/data":
        with pytest.raises(StoreError, match=f"array {key} chunk {c}"):
            s.load("mae", ["b_left"])
    report = verify(featurestore.open(store_path), progress=False)
    problems = report["catalog"]["problems"] + report["sets"]["mae"]["problems"]
    assert any("b_left" in p and ("cannot be read" in p or "unreadable" in p) for p in problems)


def test_values_outside_their_domain_are_named(store_path):
    s = featurestore.open(store_path)
    root = zarr.open_group(store_path, mode="r+")
    off_a, n_a = s.offset("a"), s.num_frames("a")
    au = root[L.label_path("au")]
    row = au[off_a + 5]
    row[0] = 7  # an AU is 0 or 1
    au[off_a + 5] = row
    root[L.PRESENT][off_a + n_a + 1] = True  # a face past the last frame
    split = root[L.SPLIT][:]
    split[s.video_index("c"), 0] = 9  # no such split
    root[L.SPLIT][:] = split
    problems = verify(featurestore.open(store_path), progress=False)["catalog"]["problems"]
    assert any(p.startswith(f"{L.label_path('au')}/a:") and "out of range" in p and "frame 6" in p
               for p in problems), problems
    assert any(p.startswith(f"{L.PRESENT}/a:") and "past the last frame" in p for p in problems)
    assert any(p.startswith(f"{L.SPLIT}/c:") for p in problems), problems
    assert len(problems) == 3, problems
