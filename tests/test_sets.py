"""Feature-set maintenance: provenance shown by `featurestore info`, removing and renaming sets
(local folder and the object-by-object path, run on fsspec memory://), several sets side by side."""

from __future__ import annotations

import json
import uuid

import numpy as np
import pytest
from click.testing import CliRunner
from test_store import DIM, features_for, make_catalog

import featurestore
from featurestore.cli import main
from featurestore.errors import StoreError, UnknownKeyError
from featurestore.ingest import create_store
from featurestore.sets import remove_feature_set, rename_feature_set

PROV = {"checkpoint_sha256": "ab" * 32, "preset": "tiny", "input_size": 64,
        "normalization": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
        "code_version": "0.1.0+g1234567"}


@pytest.fixture(params=["local", "memory"])
def store(request, tmp_path):
    path = str(tmp_path / "s.zarr") if request.param == "local" else f"memory://sets-{uuid.uuid4().hex}"
    catalog = make_catalog()
    create_store(path, catalog)
    s = featurestore.open(path, mode="a")
    for name, dim in (("mae-ft", DIM), ("mae-pt", 4)):
        w = s.create_feature_set(name, dim, provenance=PROV)
        for rec in catalog[:2]:
            w.write_video(rec.name, features_for(rec)[:, :dim])
    return path


def test_info_shows_provenance(store):
    out = CliRunner().invoke(main, ["info", store])
    assert out.exit_code == 0, out.output
    sets = json.loads(out.output)["feature_sets"]
    prov = sets["mae-ft"]["provenance"]
    assert {k: prov[k] for k in PROV} == PROV and prov["created"].startswith("20")


def test_rename_keeps_data_and_remove_deletes(store):
    s = featurestore.open(store, mode="a")
    before = s.read_frames(["mae-ft", "mae-pt"], "a")
    rename_feature_set(s, "mae-pt", "pretrained")
    s = featurestore.open(store, mode="a")
    assert s.feature_sets() == ["mae-ft", "pretrained"]
    assert s.feature_info("pretrained").provenance["preset"] == "tiny"
    np.testing.assert_array_equal(s.read_frames(["mae-ft", "pretrained"], "a"), before)
    with pytest.raises(UnknownKeyError, match="unknown feature set 'mae-pt'"):
        s.features("mae-pt", "a")
    with pytest.raises(StoreError, match="feature set 'mae-ft' exists"):
        rename_feature_set(s, "pretrained", "mae-ft")
    assert remove_feature_set(s, "pretrained") > 0
    s = featurestore.open(store)
    assert s.feature_sets() == ["mae-ft"]
    with pytest.raises(UnknownKeyError):
        s.read_frames(["mae-ft", "pretrained"], "a")
    # a set created again under a removed name starts empty (and is a new set for caches)
    s = featurestore.open(store, mode="a")
    s.create_feature_set("pretrained", 4)
    assert featurestore.open(store).committed("pretrained") == []


def test_cli_rm_and_rename(tmp_path):
    path = str(tmp_path / "c.zarr")
    create_store(path, make_catalog())
    featurestore.open(path, mode="a").create_feature_set("x", 3)
    run = CliRunner().invoke
    r = run(main, ["rm-set", path, "x"])
    assert r.exit_code == 0 and "add --yes" in r.output
    assert run(main, ["rename-set", path, "x", "y"]).exit_code == 0
    assert featurestore.open(path).feature_sets() == ["y"]
    bad = run(main, ["rename-set", path, "nope", "z"])
    assert bad.exit_code == 1 and "error:" in bad.output and "unknown feature set 'nope'" in bad.output
    assert run(main, ["rm-set", path, "y", "--yes"]).exit_code == 0
    assert featurestore.open(path).feature_sets() == []
