"""Every chunk read is checked (issue 15, item 5): every array ends its codec chain with crc32c
(layout version 2), so one flipped byte in a stored chunk of a feature set, the labels, the face
mask or the catalog makes every ordinary read fail with a StoreError naming the store, the array
and the chunk (the CLI: one ``error:`` line). A store of layout version 1 (no checksums) is
refused with the command that migrates it, and ``featurestore migrate`` writes a checksummed copy
with the same values, never touching the old store."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import zarr
from bad_inputs import tree_digest
from click.testing import CliRunner
from test_store import features_for, make_catalog, write_store

import featurestore
from featurestore import layout as L
from featurestore.cli import main as fs
from featurestore.errors import StoreError
from featurestore.ingest import create_store
from featurestore.migrate import migrate_store
from featurestore.reader import StoreWindows
from featurestore.verify import verify

VIDEO = "b_left"


@pytest.fixture
def store_path(tmp_path) -> Path:
    path = tmp_path / "s.zarr"
    write_store(path)
    return path


def _flip(path: Path, key: str, chunk: int) -> None:
    """Flip one byte in the middle of the stored chunk ``chunk`` (axis 0) of array ``key``."""
    folder = path / key / "c" / str(chunk)
    f = next(p for p in sorted(folder.rglob("*")) if p.is_file()) if folder.is_dir() else folder
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0x01
    f.write_bytes(bytes(data))


def _one_error_line(args: list[str], *needles: str) -> None:
    res = CliRunner().invoke(fs, args)
    lines = res.stderr.strip().splitlines()
    assert res.exit_code == 1, res.output
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert "Traceback" not in res.output
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_every_array_carries_a_checksum(store_path):
    root = zarr.open_group(store_path, mode="r")
    assert root.attrs[L.ATTR_VERSION] == L.LAYOUT_VERSION == 2
    arrays = [k for k, _ in root.arrays()] + [f"{g}/{k}" for g, grp in root.groups()
                                               for k, _ in grp.arrays()]
    arrays += [f"features/mae/{k}" for k, _ in root["features/mae"].arrays()]
    assert len(arrays) >= 13
    for key in arrays:
        codecs = zarr.open_array(store_path, path=key, mode="r").metadata.codecs
        assert type(codecs[-1]).__name__ == "Crc32cCodec", (key, codecs)


@pytest.mark.parametrize("key", ["features/mae/data", L.label_path("va"), L.valid_path("au"),
                                 L.PRESENT])
def test_a_flipped_byte_in_a_frame_chunk_fails_every_read(store_path, key):
    s = featurestore.open(store_path)
    c = s.offset(VIDEO) // L.CHUNK_FRAMES
    _flip(store_path, key, c)
    named = (f"array {key} chunk {c}", str(store_path), "checksum")
    s = featurestore.open(store_path)
    reads = {
        "features/mae/data": [lambda: s.features("mae", VIDEO), lambda: s.load("mae", [VIDEO]),
                              lambda: s.read_windows("mae", [(VIDEO, 10)], 20),
                              lambda: StoreWindows(store_path, ["mae"], 20).read([(VIDEO, 0)])],
        L.label_path("va"): [lambda: s.labels("va", VIDEO),
                             lambda: s.read_windows("mae", [(VIDEO, 0)], 20, task="va")],
        L.valid_path("au"): [lambda: s.labels("au", VIDEO),
                             lambda: s.read_windows("mae", [(VIDEO, 0)], 20, task="au")],
        L.PRESENT: [lambda: s.present(VIDEO)],
    }[key]
    for read in reads:
        with pytest.raises(StoreError) as err:
            read()
        for needle in named:
            assert needle in str(err.value), str(err.value)
    if key == "features/mae/data":
        _one_error_line(["get", str(store_path), "--set", "mae", "--video", VIDEO, "-o",
                         str(store_path.parent / "w.npy")], *named)
        assert not (store_path.parent / "w.npy").exists()
    if key == L.PRESENT:
        _one_error_line(["info", str(store_path), VIDEO], *named)
    report = verify(featurestore.open(store_path), progress=False)
    problems = report["catalog"]["problems"] + report["sets"]["mae"]["problems"]
    assert not report["ok"] and any(VIDEO in p and "checksum" in p for p in problems), problems


@pytest.mark.parametrize("key", [L.OFFSET, L.NUM_FRAMES, L.SPLIT])
def test_a_flipped_byte_in_the_catalog_fails_open(store_path, key):
    _flip(store_path, key, 0)  # uncompressed int64: before checksums this read wrong offsets
    with pytest.raises(StoreError) as err:
        featurestore.open(store_path)
    assert f"array {key} chunk 0" in str(err.value) and "checksum" in str(err.value)
    _one_error_line(["ls", str(store_path)], f"array {key} chunk 0", str(store_path))


def test_a_flipped_commit_flag_fails_the_read(store_path):
    s = featurestore.open(store_path)
    i = s.video_index(VIDEO)
    _flip(store_path, "features/mae/committed", i)
    s = featurestore.open(store_path)
    with pytest.raises(StoreError, match=f"array features/mae/committed chunk {i}"):
        s.read_windows("mae", [(VIDEO, 0)], 5)
    _one_error_line(["ls", str(store_path)], f"features/mae/committed chunk {i}")


# ---------------------------------------------------------------- layout version 1 and migration


def make_v1(path: Path) -> None:
    """Turn a layout-2 store into exactly what layout version 1 stored: the same arrays without
    the trailing crc32c codec (its 4 bytes cut from every chunk), root ``layout_version`` 1."""
    for meta in path.rglob("zarr.json"):
        doc = json.loads(meta.read_text())
        if doc.get("node_type") == "array":
            assert doc["codecs"][-1]["name"] == "crc32c"
            doc["codecs"] = doc["codecs"][:-1]
            for f in (meta.parent / "c").rglob("*"):
                if f.is_file():
                    f.write_bytes(f.read_bytes()[:-4])
        elif meta.parent == path:
            doc["attributes"][L.ATTR_VERSION] = 1
        meta.write_text(json.dumps(doc))


def test_an_old_store_is_refused_with_the_command_that_migrates_it(store_path):
    make_v1(store_path)
    with pytest.raises(StoreError, match=f"layout_version 1 .*featurestore migrate {store_path}"):
        featurestore.open(store_path)
    _one_error_line(["ls", str(store_path)], "featurestore migrate")
    with pytest.raises(StoreError, match="featurestore migrate"):
        create_store(store_path, make_catalog())  # re-ingest refuses it too


def test_migrate_writes_a_checksummed_copy_and_keeps_the_old_store(store_path, tmp_path):
    catalog = make_catalog()
    make_v1(store_path)
    before = tree_digest(store_path)
    new = tmp_path / "new.zarr"
    res = CliRunner().invoke(fs, ["migrate", str(store_path), str(new)])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["from_layout_version"] == 1 and summary["layout_version"] == 2
    assert tree_digest(store_path) == before  # the old store is never written
    s = featurestore.open(new)
    assert verify(s, progress=False)["ok"]
    assert s.committed("mae") == [r.name for r in catalog]
    for rec in catalog:
        rows = s.features("mae", rec.name)[rec.present]
        np.testing.assert_array_equal(rows, features_for(rec).astype(np.float16))
        np.testing.assert_array_equal(s.present(rec.name), rec.present)
        for task, (values, valid) in rec.labels.items():
            got, ok = s.labels(task, rec.name)
            np.testing.assert_array_equal(got[:len(values)][valid], values[valid])
            np.testing.assert_array_equal(ok[:len(valid)], valid)
    old_root, new_root = zarr.open_group(store_path, mode="r"), zarr.open_group(new, mode="r")
    assert new_root["features/mae"].attrs["uid"] != old_root["features/mae"].attrs["uid"]
    # the same chunk objects exist (none added, none dropped), each now with 4 bytes of crc32c
    old_files = {p.relative_to(store_path): p.stat().st_size
                 for p in store_path.rglob("*") if p.is_file() and "/c/" in str(p)}
    new_files = {p.relative_to(new): p.stat().st_size
                 for p in new.rglob("*") if p.is_file() and "/c/" in str(p)}
    assert set(old_files) == set(new_files)
    _flip(new, "features/mae/data", s.offset(VIDEO) // L.CHUNK_FRAMES)  # and now checked
    with pytest.raises(StoreError, match="checksum"):
        featurestore.open(new).features("mae", VIDEO)


def test_migrate_refuses_and_leaves_nothing(store_path, tmp_path):
    new = tmp_path / "new.zarr"
    with pytest.raises(StoreError, match="nothing to migrate"):
        migrate_store(store_path, new)
    make_v1(store_path)
    s_off = 0  # video "a" starts the frame axis
    (store_path / L.label_path("va") / "c" / str(s_off) / "0").unlink()  # lost data in the old store
    before = tree_digest(store_path)
    _one_error_line(["migrate", str(store_path), str(new)], "does not verify", "missing")
    assert not new.exists() and [p.name for p in tmp_path.iterdir()] == ["s.zarr"]
    assert tree_digest(store_path) == before
    _one_error_line(["migrate", str(store_path), str(store_path / "x.zarr")], "lies inside")
    new.mkdir()
    _one_error_line(["migrate", str(store_path), str(new)], "exists")


@pytest.mark.parametrize("key", [L.PRESENT, L.OFFSET, "features/mae/committed"])
def test_a_reingest_over_a_damaged_chunk_names_it_and_writes_nothing(store_path, key):
    chunk = featurestore.open(store_path).video_index(VIDEO) if key.endswith("committed") else 0
    if key == "features/mae/committed":  # read only when a committed video's mask changes
        catalog = make_catalog()
        catalog = [r if r.name != VIDEO else type(r)(r.name, r.source, r.num_frames, ~r.present,
                                                     r.splits, r.labels) for r in catalog]
    else:
        catalog = make_catalog()
    _flip(store_path, key, chunk)
    before = tree_digest(store_path)
    with pytest.raises(StoreError, match=f"array {key} chunk {chunk}"):
        create_store(store_path, catalog)
    assert tree_digest(store_path) == before
