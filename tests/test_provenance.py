"""Provenance is a contract: an existing feature set is only reopened for features of the same
origin (checkpoint hash, preset, input size, stage, pooling) and the same dim, dtype and fill."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from bad_inputs import tree_digest
from click.testing import CliRunner

import featurestore
from featurestore import layout as L
from featurestore.errors import FeatureValidationError
from featurestore.ingest import VideoRecord, create_store

PROV = {"checkpoint": "/a/ckpt", "checkpoint_sha256": "aa" * 32, "preset": "tiny",
        "input_size": 112, "stage": "pretrain", "pooling": "mean", "code_version": "x"}


@pytest.fixture
def store(tmp_path):
    recs = [VideoRecord(f"v{i}", f"v{i}", 10, np.ones(10, bool)) for i in range(2)]
    create_store(tmp_path / "s.zarr", recs)
    s = featurestore.open(tmp_path / "s.zarr", "a")
    s.create_feature_set("mae", 8, provenance=PROV).write_video("v0", np.ones((10, 8), np.float32))
    return s


@pytest.mark.parametrize("change", [
    {"checkpoint_sha256": "bb" * 32}, {"preset": "vit_base"}, {"input_size": 224},
    {"stage": "finetune"}, {"pooling": "cls"}])
def test_another_origin_is_refused_naming_the_difference(change, store, tmp_path):
    before = tree_digest(tmp_path)
    key, value = next(iter(change.items()))
    with pytest.raises(FeatureValidationError, match=rf"{key}=.* \(asked {value!r}\).*new set name"):
        store.create_feature_set("mae", 8, provenance={**PROV, **change})
    assert tree_digest(tmp_path) == before


@pytest.mark.parametrize("kwargs,what", [({"dim": 9}, r"dim=8 \(asked 9\)"),
                                         ({"dtype": "float32"}, r"dtype='float16' \(asked 'float32'\)"),
                                         ({"fill": "zero"}, "fill")])
def test_other_settings_are_refused(kwargs, what, store):
    assert L.DEFAULT_FILL != "zero"
    args = {"dim": 8, **kwargs}
    with pytest.raises(FeatureValidationError, match=what):
        store.create_feature_set("mae", args.pop("dim"), provenance=PROV, **args)


def test_the_same_origin_reopens_and_resumes(store):
    moved = {**PROV, "checkpoint": "/moved/ckpt", "code_version": "y", "created": "later"}
    w = store.create_feature_set("mae", 8, provenance=moved)
    assert w.missing() == ["v1"]
    assert store.create_feature_set("mae", 8).missing() == ["v1"]  # no provenance stated: by name


def test_extraction_with_another_checkpoint_is_refused_before_ray(tmp_path):
    """jobs/extract.py into a set made by another checkpoint: one error line, no Ray started."""
    from encoders.checkpoint import save_checkpoint
    from encoders.encode import FrameEncoder
    from encoders.mae import MaskedAutoencoder
    from encoders.presets import get_preset
    from featurestore.ingest import ingest_affwild2
    from featurestore.synth import SynthConfig, generate
    from jobs.extract import main

    generate(tmp_path / "data", SynthConfig(videos=2, frames=20, size=32, faces=4, test_videos=1,
                                            seed=0, pair_fraction=0.0), progress=False)
    ingest_affwild2(tmp_path / "data" / "affwild2", tmp_path / "s.zarr", progress=False)
    cfg = get_preset("tiny", img_size=32)
    for seed in (0, 1):
        torch.manual_seed(seed)
        save_checkpoint(tmp_path / f"ckpt{seed}", MaskedAutoencoder(cfg), cfg, {})
    enc = FrameEncoder(tmp_path / "ckpt0", device="cpu", batch_size=1)
    featurestore.open(tmp_path / "s.zarr", "a").create_feature_set(
        "mae", enc.dim, provenance=enc.provenance)
    before = tree_digest(tmp_path)
    res = CliRunner().invoke(main, ["--frames", str(tmp_path / "data" / "affwild2"), "--checkpoint",
                                    str(tmp_path / "ckpt1"), "--store", str(tmp_path / "s.zarr"),
                                    "--set", "mae"])
    assert res.exit_code == 1, res.output
    line = res.stderr.strip().splitlines()[-1]
    assert line.startswith("error: feature set 'mae' exists") and "checkpoint_sha256" in line, line
    assert tree_digest(tmp_path) == before
