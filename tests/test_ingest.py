"""Ingest of a small Aff-Wild2 tree (every layout quirk) and a rerun after new annotations."""

from __future__ import annotations

import numpy as np
import pytest
import zarr
from fixtures_affwild2 import build_quirky_tree, expr_rows, va_rows, write_annotation, write_frames

import featurestore
from featurestore import layout as L
from featurestore.errors import StoreError
from featurestore.ingest import ingest_affwild2


@pytest.fixture
def tree(tmp_path):
    return build_quirky_tree(tmp_path / "affwild2")


def test_a_partial_tree_is_refused_unless_accepted(tree, tmp_path):
    """The quirky tree lacks EXPR train and AU val labels: refused, naming both, nothing written."""
    from featurestore.errors import DataFormatError

    with pytest.raises(DataFormatError) as err:
        ingest_affwild2(tree, tmp_path / "s.zarr", progress=False)
    msg = str(err.value)
    assert str(tree) in msg and "task expr: no labelled videos in split train" in msg
    assert "task au: no labelled videos in split val" in msg and "--accept-partial" in msg
    assert not (tmp_path / "s.zarr").exists() and not list(tmp_path.glob(".s.zarr*"))
    summary = ingest_affwild2(tree, tmp_path / "s.zarr", progress=False, accept_partial=True)
    assert summary["found"]["labelled_videos"]["va"] == {"train": 1, "val": 2}
    assert len(summary["found"]["accepted_problems"]) == 2


def test_ingest_quirky_tree(tree, tmp_path):
    summary = ingest_affwild2(tree, tmp_path / "s.zarr", progress=False, accept_partial=True)
    assert summary["videos"] == 7 and summary["store"] == str(tmp_path / "s.zarr")
    s = featurestore.open(tmp_path / "s.zarr")
    assert s.videos() == sorted(s.videos())
    assert s.num_frames("gappy") == 25  # the annotation is longer than the last jpg
    present = s.present("gappy")
    assert np.flatnonzero(present).tolist() == [*range(6, 12), *range(14, 20)]
    values, valid = s.labels("va", "gappy")
    assert valid.tolist()[:5] == [False, True, True, False, True] and valid[4:].all()
    np.testing.assert_allclose(values[1], [0.1, -0.1])
    expr, ok = s.labels("expr", "gappy")
    assert s.split("gappy", "expr") == "val" and not ok[1] and ok[2:20].all() and not ok[20:].any()
    assert s.split("gappy", "va") == "train" and s.split("gappy", "au") is None
    assert s.num_frames("test1") == 6 and s.split("test1", "va") == "test"
    assert s.num_frames("test2") == 4 and not s.present("test2").any()
    assert not s.labels("va", "test1")[1].any()
    assert s.source("10-60_left") == s.source("10-60_right") == "10-60"
    assert s.videos(split="test", task="va") == ["test1", "test2"]


def test_rerun_after_new_annotations_and_videos(tree, tmp_path):
    path = tmp_path / "s.zarr"
    ingest_affwild2(tree, path, progress=False, accept_partial=True)
    s = featurestore.open(path, mode="a")
    offsets = {v: s.offset(v) for v in s.videos()}
    w = s.create_feature_set("mae", 4)
    w.write_video("gappy", np.ones((int(s.present("gappy").sum()), 4), np.float32))
    # new annotations: gappy VA row 4 becomes invalid, test1 gets released labels; one new video
    write_annotation(tree, "va", "train", "gappy", va_rows(25, invalid={0, 3, 4}))
    write_frames(tree, "zz_new", range(1, 700))
    write_annotation(tree, "expr", "train", "zz_new", expr_rows(699))
    summary = ingest_affwild2(tree, path, progress=False, accept_partial=True)
    assert summary["new_videos"] == 1 and summary["revision"] == 2
    s2 = featurestore.open(path)
    assert {v: s2.offset(v) for v in offsets} == offsets
    assert s2.videos()[-1] == "zz_new" and s2.offset("zz_new") == max(offsets.values()) + L.CHUNK_FRAMES
    assert not s2.labels("va", "gappy")[1][4]
    assert s2.labels("expr", "zz_new")[0][:9].tolist() == list(range(8)) + [0]
    assert s2.committed("mae") == ["gappy"]  # features survive; the new video is uncommitted
    assert (s2.features("mae", "gappy") == 1).all()
    assert featurestore.open(path, mode="a").writer("mae").missing()[-1] == "zz_new"


def test_rerun_rejects_changed_frame_count(tree, tmp_path):
    path = tmp_path / "s.zarr"
    ingest_affwild2(tree, path, progress=False, accept_partial=True)
    write_frames(tree, "split", [12])  # "split" grows from 9 to 12 frames
    with pytest.raises(StoreError, match="video 'split' now has 12 frames, the store has 9"):
        ingest_affwild2(tree, path, progress=False, accept_partial=True)
    assert featurestore.open(path).num_frames("split") == 9


def test_rerun_refuses_or_invalidates_a_changed_face_mask(tree, tmp_path):
    """A jpg removed from a video whose features are committed: the re-ingest is refused naming
    the video and set, nothing written; with invalidate_changed its features are uncommitted
    and the new mask written; an untouched video keeps its features."""
    path = tmp_path / "s.zarr"
    ingest_affwild2(tree, path, progress=False, accept_partial=True)
    s = featurestore.open(path, mode="a")
    w = s.create_feature_set("mae", 4)
    for v in ("gappy", "split"):
        w.write_video(v, np.ones((int(s.present(v).sum()), 4), np.float32))
    old_mask = s.present("gappy")
    (tree / "cropped_aligned" / "gappy" / "00009.jpg").unlink()  # frame 9 loses its face
    with pytest.raises(StoreError) as err:
        ingest_affwild2(tree, path, progress=False, accept_partial=True)
    msg = str(err.value)
    assert "gappy (in mae)" in msg and "--invalidate-changed" in msg and "split" not in msg
    s2 = featurestore.open(path)
    assert s2.committed("mae") == ["gappy", "split"] and (s2.present("gappy") == old_mask).all()
    summary = ingest_affwild2(tree, path, progress=False, accept_partial=True,
                              invalidate_changed=True)
    assert summary["invalidated"] == ["mae/gappy"]
    s3 = featurestore.open(path)
    assert s3.committed("mae") == ["split"] and not s3.present("gappy")[8]
    assert s3.present("gappy").sum() == old_mask.sum() - 1
    assert "gappy" in featurestore.open(path, mode="a").writer("mae").missing()
    assert ingest_affwild2(tree, path, progress=False, accept_partial=True)["invalidated"] == []


def test_interrupted_rerun_does_not_open_as_complete(tree, tmp_path):
    path = tmp_path / "s.zarr"
    ingest_affwild2(tree, path, progress=False, accept_partial=True)
    zarr.open_group(path, mode="r+").attrs[L.ATTR_INGEST] = {"state": "writing", "revision": 2}
    with pytest.raises(StoreError, match="did not finish"):
        featurestore.open(path)
    ingest_affwild2(tree, path, progress=False, accept_partial=True)  # the rerun repairs it
    assert len(featurestore.open(path).videos()) == 7


def test_new_store_refuses_a_foreign_folder(tree, tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x.txt").write_text("x")
    with pytest.raises(StoreError, match="not a complete feature store"):
        ingest_affwild2(tree, tmp_path / "busy", progress=False, accept_partial=True)
    assert not list(tmp_path.glob(".busy.tmp-*"))
