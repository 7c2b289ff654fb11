"""Writer: validation, fill policies, parallel writer processes, a writer killed mid-video, xarray."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st
from test_store import DIM, features_for, make_catalog

import featurestore
from featurestore.errors import FeatureValidationError
from featurestore.fill import fill_missing
from featurestore.ingest import create_store

PROV = {"preset": "tiny", "created": "2024-01-01T00:00:00+00:00"}


def _new_store(path: Path, *, with_set: bool = True):
    catalog = make_catalog()
    create_store(path, catalog)
    store = featurestore.open(path, mode="a")
    if with_set:
        store.create_feature_set("mae", DIM, provenance=PROV)
    return store, catalog


# ---------------------------------------------------------------- fill policies

def test_fill_interp_nearest_zero():
    present = np.array([0, 1, 0, 0, 1, 0], bool)
    rows = np.array([[0.0], [3.0]], np.float32)  # frames 1 and 4
    np.testing.assert_allclose(fill_missing(rows, present, "interp")[:, 0], [0, 0, 1, 2, 3, 3])
    np.testing.assert_allclose(fill_missing(rows, present, "nearest")[:, 0], [0, 0, 0, 3, 3, 3])
    np.testing.assert_allclose(fill_missing(rows, present, "zero")[:, 0], [0, 0, 0, 0, 3, 0])
    assert (fill_missing(np.zeros((0, 4)), np.zeros(5, bool)) == 0).all()
    with pytest.raises(ValueError, match="'mean'"):
        fill_missing(rows, present, "mean")


# ---------------------------------------------------------------- bad input

def _bad_inputs(catalog):
    rec = catalog[0]
    good = features_for(rec)
    nan, inf, big = good.copy(), good.copy(), good.copy()
    nan[5, 2], inf[7, 0], big[9, 1] = np.nan, np.inf, 1e6  # 1e6 overflows float16
    return [
        ("a", nan, "NaN or inf .first bad row 5"),
        ("a", inf, "NaN or inf .first bad row 7"),
        ("a", big, "overflow float16"),
        ("a", good[:, :DIM - 1], r"expected \(n, 8\)"),
        ("a", good[:-1], f"{len(good) - 1} feature rows for {len(good)} frames"),
        ("nope", good, "unknown video 'nope'"),
    ]


def test_bad_inputs_rejected_and_nothing_written(tmp_path):
    store, catalog = _new_store(tmp_path / "s.zarr")
    w = store.writer("mae")
    for video, feats, message in _bad_inputs(catalog):
        with pytest.raises(FeatureValidationError, match=message):
            w.write_video(video, feats)
    root = zarr.open_group(tmp_path / "s.zarr", mode="r")
    assert not root["features/mae/committed"][:].any()
    assert root["features/mae/data"].nchunks_initialized == 0  # not a single chunk written
    assert w.missing() == [r.name for r in catalog]


@pytest.mark.parametrize("name", ["a b", "x/y", "", "..", "é"])
def test_bad_set_name(tmp_path, name):
    store, _ = _new_store(tmp_path / "s.zarr", with_set=False)
    with pytest.raises(FeatureValidationError, match="feature set name"):
        store.create_feature_set(name, DIM)
    assert store.feature_sets() == []


# ---------------------------------------------------------------- parallel writer processes

def _write_worker(path: str, videos: list[str]) -> None:
    store = featurestore.open(path, mode="a")
    w = store.writer("mae")
    for rec in make_catalog():
        if rec.name in videos:
            assert w.write_video(rec.name, features_for(rec))


def _files(root: Path) -> dict[str, bytes]:
    """Every file's bytes; the feature set's random ``uid`` attribute (a cache identity) removed."""
    out = {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
    for key, data in out.items():
        if key.endswith("zarr.json") and b'"uid"' in data:
            meta = json.loads(data)
            meta["attributes"].pop("uid")
            out[key] = json.dumps(meta).encode()
    return out


def test_two_writer_processes_equal_one_writer(tmp_path):
    _, catalog = _new_store(tmp_path / "one.zarr")
    _write_worker(str(tmp_path / "one.zarr"), [r.name for r in catalog])
    _new_store(tmp_path / "two.zarr")
    names = [r.name for r in catalog]
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_write_worker, args=(str(tmp_path / "two.zarr"), names[k::2]))
             for k in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    one = _files(tmp_path / "one.zarr" / "features")
    two = _files(tmp_path / "two.zarr" / "features")
    assert len(one) > len(names) and one == two


# ---------------------------------------------------------------- a writer killed mid-video

def _die_before_checksum(path: str, video: str) -> None:
    """Write ``video`` but get SIGKILLed after its data chunks, before checksum and commit."""
    def hook(frame, event, arg):
        if event == "call" and frame.f_code.co_name == "checksum" and \
                frame.f_code.co_filename.endswith("writer.py"):
            os.kill(os.getpid(), signal.SIGKILL)
    store = featurestore.open(path, mode="a")
    w = store.writer("mae")
    rec = next(r for r in make_catalog() if r.name == video)
    sys.setprofile(hook)
    w.write_video(video, features_for(rec))


def test_killed_writer_leaves_video_invisible_and_rerun_completes(tmp_path):
    path = tmp_path / "s.zarr"
    store, catalog = _new_store(path)
    store.writer("mae").write_video("a", features_for(catalog[0]))
    p = mp.get_context("spawn").Process(target=_die_before_checksum, args=(str(path), "c"))
    p.start()
    p.join(120)
    assert p.exitcode == -signal.SIGKILL
    reader = featurestore.open(path)
    assert reader.committed("mae") == ["a"]
    off = reader.offset("c")
    assert zarr.open_group(path, mode="r")["features/mae/data"][off:off + 10].any()  # partial data
    with pytest.raises(KeyError):
        reader.features("mae", "c")
    w = featurestore.open(path, mode="a").writer("mae")
    assert "c" in w.missing()
    rec = catalog[3]
    assert w.write_video("c", features_for(rec)) is True
    got = featurestore.open(path).features("mae", "c")
    np.testing.assert_array_equal(got[rec.present], features_for(rec).astype(np.float16))


# ---------------------------------------------------------------- tools nobody here wrote

def test_xarray_opens_feature_set_and_labels(tmp_path):
    xr = pytest.importorskip("xarray")
    path = tmp_path / "s.zarr"
    store, catalog = _new_store(path)
    store.writer("mae").write_video("c", features_for(catalog[3]))
    ds = xr.open_zarr(path, group="features/mae", consolidated=False)
    assert ds["data"].dims == ("frame", "feature")
    assert ds.attrs["dim"] == DIM and ds.attrs["fill"] == "interp"
    off = store.offset("c")
    np.testing.assert_array_equal(ds["data"][off:off + 1100].values, store.features("mae", "c"))
    labels = xr.open_zarr(path, group="labels", consolidated=False)
    assert labels["au"].dims == ("frame", "au") and labels["va_valid"].dtype == bool
    cat = xr.open_zarr(path, group="catalog", consolidated=False)
    assert cat["split"].dims == ("video", "task")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=40), st.sampled_from(["interp", "nearest", "zero"]))
def test_fill_properties(mask, policy):
    present = np.array(mask)
    rows = np.arange(2 * present.sum(), dtype=np.float32).reshape(-1, 2)  # increasing per column
    out = fill_missing(rows, present, policy)
    assert out.shape == (len(mask), 2) and out.dtype == np.float32
    np.testing.assert_array_equal(out[present], rows)  # faces are never altered
    if not present.any() or policy == "zero":
        assert (out[~present] == 0).all()
    else:
        assert out.min() >= rows.min() and out.max() <= rows.max()
        assert (np.diff(out[:, 0]) >= 0).all()  # no overshoot: fills stay between neighbours


# ---------------------------------------------------------------- a set appears complete or not at all

def test_half_created_feature_set_is_invisible_and_recreated(tmp_path):
    """A set whose attributes are partly written (a creator killed between metadata writes, or a
    reader polling during creation) is neither listed nor readable, and creating it again works."""
    path = tmp_path / "s.zarr"
    store, catalog = _new_store(path)
    group = zarr.open_group(path, mode="r+")["features/mae"]
    group.attrs.put({"dim": DIM})  # arrays exist, attributes half written
    reader = featurestore.open(path)
    assert reader.feature_sets() == []
    with pytest.raises(KeyError, match="unknown feature set 'mae'"):
        reader.committed("mae")
    again = featurestore.open(path, mode="a").create_feature_set("mae", DIM, provenance=PROV)
    assert again.write_video("a", features_for(catalog[0])) is True
    assert featurestore.open(path).committed("mae") == ["a"]


def test_feature_set_attributes_are_one_metadata_write(tmp_path, monkeypatch):
    """Creation writes the set's zarr.json twice: the empty group, then every attribute at once."""
    path = tmp_path / "s.zarr"
    store, _ = _new_store(path, with_set=False)
    written: list[bytes] = []
    real_set = zarr.storage.LocalStore.set

    async def recording_set(self, key, value):
        if key == "features/mae/zarr.json":
            written.append(value.to_bytes())
        return await real_set(self, key, value)

    monkeypatch.setattr(zarr.storage.LocalStore, "set", recording_set)
    store.create_feature_set("mae", DIM, provenance=PROV)
    import json

    attrs = [json.loads(w).get("attributes", {}) for w in written]
    assert len(written) == 2 and attrs[0] == {}
    assert set(attrs[1]) == {"dim", "dtype", "fill", "provenance", "uid"}  # uid: cache identity
