"""Every bad input of tests/bad_inputs.py gets a clear error naming what and where, and leaves
its input and every output (store, pack) exactly as they were (directory trees hashed)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from bad_inputs import (
    ANNOTATION_CASES,
    BOUND_CASES,
    FEATURE_CASES,
    FRAME_CASES,
    FRAME_NAME_CASES,
    TREE_CASES,
    BadInput,
    tree_digest,
)

import featurestore
from featurestore.errors import DataFormatError, FeatureValidationError, StoreError

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    """A valid synthetic Aff-Wild2 tree (3 videos + 1 test video, 32 px), its store with a
    committed feature set, and a tiny checkpoint, all built once."""
    from encoders.checkpoint import save_checkpoint
    from encoders.mae import MaskedAutoencoder
    from encoders.presets import get_preset
    from featurestore.ingest import ingest_affwild2
    from featurestore.synth import SynthConfig, generate

    root = tmp_path_factory.mktemp("bad_inputs")
    generate(root / "data", SynthConfig(videos=3, frames=20, size=32, faces=0, test_videos=1,
                                        seed=0, pair_fraction=0.0), progress=False)
    ingest_affwild2(root / "data" / "affwild2", root / "store.zarr", progress=False)
    store = featurestore.open(root / "store.zarr", "a")
    w = store.create_feature_set("f", 8)
    v0 = store.videos()[0]
    w.write_video(v0, np.ones((int(store.present(v0).sum()), 8), np.float32))
    torch.manual_seed(0)
    cfg = get_preset("tiny", img_size=32)
    save_checkpoint(root / "ckpt", MaskedAutoencoder(cfg), cfg, {})
    return root


def fresh(clean: Path, tmp: Path) -> Path:
    shutil.copytree(clean / "data", tmp / "data")
    shutil.copytree(clean / "store.zarr", tmp / "store.zarr")
    return tmp / "data"


def assert_names(err: BaseException, case: BadInput, path: Path) -> None:
    msg = str(err)
    assert len(msg) < 1000, f"{len(msg)} characters"  # quotes a short excerpt at most
    assert re.search(case.error, msg), msg
    assert str(path) in msg or path.name in msg, f"{msg!r} does not name {path}"
    if case.line is not None:
        assert f"{path}:{case.line}:" in msg, f"{msg!r} does not name line {case.line}"


@pytest.mark.parametrize("case", ANNOTATION_CASES + FRAME_NAME_CASES + TREE_CASES + BOUND_CASES,
                         ids=lambda c: c.name)
def test_bad_annotations_are_named_and_ingest_writes_nothing(case, clean, tmp_path):
    from featurestore.ingest import ingest_affwild2

    data = fresh(clean, tmp_path)
    bad = case.make(data)
    before = tree_digest(tmp_path)
    with pytest.raises(DataFormatError) as err:
        ingest_affwild2(data / case.root, tmp_path / "new.zarr", progress=False)
    assert_names(err.value, case, bad)
    with pytest.raises(DataFormatError):  # a rerun into the existing store: same error, no change
        ingest_affwild2(data / case.root, tmp_path / "store.zarr", progress=False)
    assert tree_digest(tmp_path) == before  # input unchanged, no new store, no temp folder


@pytest.mark.parametrize("case", [c for c in FRAME_CASES if c.stage == "pack"], ids=lambda c: c.name)
def test_bad_jpgs_are_named_and_no_pack_is_left(case, clean, tmp_path):
    from featurestore.pack import pack_frames

    data = fresh(clean, tmp_path)
    bad = case.make(data)
    before = tree_digest(tmp_path)
    with pytest.raises(DataFormatError) as err:
        pack_frames(data / "affwild2", tmp_path / "pack", progress=False)
    assert_names(err.value, case, bad)
    assert tree_digest(tmp_path) == before


@pytest.mark.parametrize("case", [c for c in FRAME_CASES if c.stage == "extract"], ids=lambda c: c.name)
def test_undecodable_frames_fail_their_video_and_leave_the_store_as_it_was(case, clean, tmp_path):
    from encoders.video import VideoExtractor

    data = fresh(clean, tmp_path)
    bad = case.make(data)
    video = bad.parent.name
    store = str(tmp_path / "store.zarr")
    featurestore.open(store, "a").create_feature_set("mae", 64)  # tiny preset width
    before = tree_digest(tmp_path)
    ex = VideoExtractor(str(data / "affwild2"), str(clean / "ckpt"), store, "mae", batch_size=8)
    with pytest.raises(DataFormatError) as err:
        ex.run(video)
    msg = str(err.value)
    assert re.search(case.error, msg), msg
    assert f"{video}/{bad.name}" in msg, msg  # names the video and the frame
    assert tree_digest(tmp_path) == before
    assert video not in featurestore.open(store).committed("mae")


@pytest.mark.parametrize("name,rows,error", FEATURE_CASES, ids=[c[0] for c in FEATURE_CASES])
def test_bad_feature_rows_are_refused_before_any_write(name, rows, error, clean, tmp_path):
    shutil.copytree(clean / "store.zarr", tmp_path / "store.zarr")
    store = featurestore.open(tmp_path / "store.zarr", "a")
    writer = store.writer("f")
    video = store.videos()[1]
    before = tree_digest(tmp_path)
    with pytest.raises(FeatureValidationError, match=error) as err:
        writer.write_video(video, rows(int(store.present(video).sum()), 8))
    assert video in str(err.value) and "f/" in str(err.value)
    assert tree_digest(tmp_path) == before
    assert writer.missing() == store.videos()[1:]


@pytest.mark.parametrize("version,error", [(99, "newer than this library"), (None, "not a complete")])
def test_a_store_of_a_newer_or_unfinished_layout_is_refused_untouched(version, error, clean, tmp_path):
    import zarr

    from featurestore.ingest import ingest_affwild2

    path = tmp_path / "store.zarr"
    shutil.copytree(clean / "store.zarr", path)
    attrs = zarr.open_group(str(path), mode="r+").attrs
    if version is None:
        del attrs["layout_version"]
    else:
        attrs["layout_version"] = version
    before = tree_digest(tmp_path)
    for mode in ("r", "a"):
        with pytest.raises(StoreError, match=error) as err:
            featurestore.open(path, mode)
        assert str(path) in str(err.value)
    if version is not None:
        with pytest.raises(StoreError, match="newer"):
            ingest_affwild2(clean / "data" / "affwild2", path, progress=False)
    assert tree_digest(tmp_path) == before


def test_frames_without_annotations_are_kept_unlabelled(clean, tmp_path):
    """Documented, not an error: a video with jpgs but no annotation (and not in a test list) is
    ingested with no task and all labels invalid."""
    from featurestore.ingest import ingest_affwild2

    data = fresh(clean, tmp_path)
    src = sorted((data / "affwild2" / "cropped_aligned").iterdir())[0]
    shutil.copytree(src, src.parent / "unlabelled_video")
    ingest_affwild2(data / "affwild2", tmp_path / "new.zarr", progress=False)
    store = featurestore.open(tmp_path / "new.zarr")
    assert "unlabelled_video" in store.videos()
    for task in ("va", "expr", "au"):
        assert "unlabelled_video" not in store.videos(task=task)
        assert not store.labels(task, "unlabelled_video")[1].any()


def test_corpus_size():
    """The figure quoted in docs/RELIABILITY.md."""
    old = len(ANNOTATION_CASES) + len(FRAME_CASES) + len(FEATURE_CASES) + 2 + 1  # incl. 2 new jpgs
    new = len(FRAME_NAME_CASES) + len(TREE_CASES) + len(BOUND_CASES) + 2  # + truncated LMDB x2
    assert (old, new) == (34, 16)


@pytest.mark.parametrize("keep", [0.5, 100 / 794_624], ids=["half", "100-bytes"])
def test_a_truncated_lmdb_pack_is_an_error_naming_it_not_sigbus(keep, clean, tmp_path):
    """Reading every frame of a truncated pack in a fresh process: exit 1 with an error naming
    data.mdb (raw LMDB dies of SIGBUS on the same file)."""
    import os
    import subprocess
    import sys

    from featurestore.pack import pack_frames

    pack = tmp_path / "pack"
    pack_frames(clean / "data" / "affwild2", pack, progress=False)
    data = pack / "data.mdb"
    os.truncate(data, max(1, int(data.stat().st_size * keep)))
    code = ("import sys\nfrom featurestore.pack import LmdbFrames\nf = LmdbFrames(sys.argv[1])\n"
            "print(sum(len(f.read_bytes(v, n)) for v in f.videos() for n in f.frame_numbers(v)))")
    proc = subprocess.run([sys.executable, "-c", code, str(pack)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1, (proc.returncode, proc.stderr[-500:])
    last = proc.stderr.strip().splitlines()[-1]
    assert "DataFormatError" in last and str(data) in last, last
    assert "truncated LMDB frame pack" in last or "not a readable LMDB file" in last
