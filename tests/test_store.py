"""The feature store's public API, run once per backend (local folder and fsspec memory://)."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
import zarr

import featurestore
from featurestore import layout as L
from featurestore.errors import FeatureValidationError, StoreError
from featurestore.ingest import VideoRecord, create_store
from featurestore.verify import verify

DIM = 8
FRAMES = {"a": 700, "b_left": 300, "b_right": 300, "c": 1100, "t": 90}


def make_catalog(seed: int = 0, frames: dict[str, int] = FRAMES) -> list[VideoRecord]:
    """Small videos with gaps in presence, labels shorter than the video, every split."""
    rng = np.random.default_rng(seed)
    splits = {"a": "train", "b_left": "val", "b_right": "val", "c": "train", "t": "test"}
    out = []
    for name, n in frames.items():
        present = rng.random(n) > 0.25
        present[:3] = False  # starts without a face
        labels = {}
        if splits.get(name, "train") != "test":
            m = n - 5  # annotation file shorter than the video
            labels["va"] = (rng.uniform(-1, 1, (m, 2)).astype(np.float32), rng.random(m) > 0.1)
            labels["au"] = (rng.integers(0, 2, (m, 12)).astype(np.int8), np.ones(m, bool))
        task_splits = {"va": splits.get(name, "train"), "au": splits.get(name, "train")}
        source = name.rsplit("_", 1)[0] if name.startswith("b_") else name
        out.append(VideoRecord(name, source, n, present, task_splits, labels))
    return out


def features_for(rec: VideoRecord, seed: int = 1) -> np.ndarray:
    """(n_present, DIM) smooth float32 features for one record."""
    rng = np.random.default_rng(seed + rec.num_frames)
    walk = np.cumsum(rng.normal(0, 0.1, (rec.num_frames, DIM)), axis=0).astype(np.float32)
    return walk[rec.present]


def write_store(path) -> None:
    """An ingested store of :func:`make_catalog` at ``path`` with every video of feature set
    ``mae`` written (:func:`features_for`)."""
    from featurestore.ingest import create_store

    catalog = make_catalog()
    create_store(path, catalog)
    w = featurestore.open(path, mode="a").create_feature_set("mae", DIM)
    for rec in catalog:
        w.write_video(rec.name, features_for(rec))


@pytest.fixture(params=["local", "memory"])
def store_url(request, tmp_path):
    if request.param == "local":
        return str(tmp_path / "store.zarr")
    return f"memory://store-{uuid.uuid4().hex}"


@pytest.fixture
def filled(store_url):
    catalog = make_catalog()
    create_store(store_url, catalog)
    store = featurestore.open(store_url, mode="a")
    w = store.create_feature_set("mae", DIM, provenance={"preset": "tiny"})
    for rec in catalog[:-1]:  # leave "t" uncommitted
        assert w.write_video(rec.name, features_for(rec)) is True
    return store_url, catalog


class TestStoreAPI:
    def test_catalog(self, filled):
        path, catalog = filled
        s = featurestore.open(path)
        assert s.videos() == [r.name for r in catalog]
        assert s.videos(split="val") == ["b_left", "b_right"]
        assert s.videos(split="test", task="va") == ["t"]
        assert s.videos(task="expr") == []
        assert s.split("a", "va") == "train" and s.split("a", "expr") is None
        assert s.source("b_right") == "b"
        for rec in catalog:
            assert s.num_frames(rec.name) == rec.num_frames
            assert s.offset(rec.name) % L.CHUNK_FRAMES == 0
            np.testing.assert_array_equal(s.present(rec.name), rec.present)

    def test_labels_pad_invalid_past_annotation(self, filled):
        path, catalog = filled
        s = featurestore.open(path)
        rec = catalog[0]
        values, valid = s.labels("va", rec.name)
        assert values.shape == (rec.num_frames, 2) and values.dtype == np.float32
        np.testing.assert_array_equal(values[:-5], rec.labels["va"][0])
        np.testing.assert_array_equal(valid[:-5], rec.labels["va"][1])
        assert not valid[-5:].any() and (values[-5:] == -5).all()
        expr, ok = s.labels("expr", rec.name)
        assert expr.dtype == np.int64 and expr.shape == (rec.num_frames,) and not ok.any()
        au, _ = s.labels("au", "c")
        assert au.shape == (1100, 12) and au.dtype == np.int8
        bulk = s.load_labels("va", ["c", "a"])
        np.testing.assert_array_equal(bulk["a"][0], values)
        assert bulk.values.shape == (1800, 2) and bulk.valid.shape == (1800,)

    def test_features_fill_and_windows(self, filled):
        path, catalog = filled
        s = featurestore.open(path)
        rec = catalog[3]  # "c", 1100 frames over 3 chunks
        full = s.features("mae", rec.name)
        assert full.shape == (1100, DIM) and full.dtype == np.float16
        np.testing.assert_array_equal(full[rec.present], features_for(rec).astype(np.float16))
        np.testing.assert_array_equal(full[:3], np.repeat(full[3:4], 3, axis=0))  # before 1st face
        for a, b in [(0, 1100), (500, 530), (100, 1000), (1099, 1100), (7, 7)]:
            np.testing.assert_array_equal(s.features("mae", "c", a, b), full[a:b])
            np.testing.assert_array_equal(s.features("mae", "c", a, b), full[a:b])  # cached
        with pytest.raises(StoreError, match="outside"):
            s.features("mae", "c", 1000, 1200)

    def test_bulk_load_and_memmap(self, filled, tmp_path):
        path, _ = filled
        s = featurestore.open(path)
        names = ["c", "a", "b_left"]
        loaded = s.load("mae", names)
        assert loaded.array.shape == (2100, DIM) and loaded.array.flags.c_contiguous
        mm = s.load("mae", names, memmap=tmp_path / "f.npy")
        assert isinstance(mm.array, np.memmap)
        for v in names:
            np.testing.assert_array_equal(loaded[v], s.features("mae", v))
            np.testing.assert_array_equal(np.load(tmp_path / "f.npy")[slice(*mm.spans[v])],
                                          loaded[v])

    def test_commit_visibility_and_exactly_once(self, filled):
        path, catalog = filled
        s = featurestore.open(path, mode="a")
        assert s.committed("mae") == ["a", "b_left", "b_right", "c"]
        with pytest.raises(StoreError, match="'t'"):
            s.features("mae", "t")
        with pytest.raises(KeyError):
            s.load("mae", ["a", "t"])
        w = s.writer("mae")
        assert w.missing() == ["t"]
        before = s.features("mae", "a")
        assert w.write_video("a", features_for(catalog[0]) + 1) is False
        np.testing.assert_array_equal(featurestore.open(path).features("mae", "a"), before)
        assert w.write_video("t", features_for(catalog[-1])) is True
        assert w.missing() == [] and "t" in featurestore.open(path).committed("mae")

    def test_feature_set_info_and_recreate(self, filled):
        path, _ = filled
        s = featurestore.open(path, mode="a")
        assert s.feature_sets() == ["mae"]
        info = s.feature_info("mae")
        assert (info.dim, info.dtype, info.fill) == (DIM, "float16", "interp")
        assert info.provenance["preset"] == "tiny" and "created" in info.provenance
        assert s.create_feature_set("mae", DIM).missing() == ["t"]  # same dim: existing set
        with pytest.raises(FeatureValidationError, match="dim=8"):
            s.create_feature_set("mae", DIM + 1)
        with pytest.raises(StoreError, match="unknown feature set 'nope'"):
            s.features("nope", "a")

    def test_read_only_and_unknown(self, filled):
        path, _ = filled
        s = featurestore.open(path)
        with pytest.raises(StoreError, match="read-only"):
            s.writer("mae")
        with pytest.raises(StoreError, match="unknown video 'zz'"):
            s.num_frames("zz")
        with pytest.raises(StoreError, match="no feature store"):
            featurestore.open(path + "-missing")

    def test_verify_finds_corruption(self, filled):
        path, _ = filled
        s = featurestore.open(path)
        report = verify(s, progress=False)
        assert report["ok"] and report["sets"]["mae"]["committed"] == 4
        root = zarr.open_group(path, mode="r+")
        off = s.offset("c")
        root["features/mae/data"][off + 10] = 42.0  # bit rot in a committed video
        report = verify(featurestore.open(path), progress=False)
        assert not report["ok"]
        assert report["sets"]["mae"]["problems"] == [
            p for p in report["sets"]["mae"]["problems"] if p.startswith("mae/c: checksum")]
        assert len(report["sets"]["mae"]["problems"]) == 1

    def test_newer_layout_version_rejected(self, filled):
        path, _ = filled
        zarr.open_group(path, mode="r+").attrs[L.ATTR_VERSION] = L.LAYOUT_VERSION + 1
        with pytest.raises(StoreError, match=f"layout_version {L.LAYOUT_VERSION + 1} is newer .* layout_version {L.LAYOUT_VERSION}"):
            featurestore.open(path)

    def test_plain_zarr_reads_it(self, filled):
        path, _ = filled
        s = featurestore.open(path)
        root = zarr.open_group(path, mode="r")
        names = root.attrs["videos"]
        i = names.index("c")
        off, n = int(root["catalog/offset"][i]), int(root["catalog/num_frames"][i])
        np.testing.assert_array_equal(root["features/mae/data"][off:off + n], s.features("mae", "c"))
        assert root["features/mae/data"].metadata.dimension_names == ("frame", "feature")
