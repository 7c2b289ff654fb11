"""featurestore.synth: layout read back by the real readers, determinism, and a learnable signal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from featurestore.affwild2 import read_affwild2, source_video
from featurestore.facesets import read_fer2013, read_rafdb
from featurestore.synth import (
    FaceParams,
    SynthConfig,
    contact_sheet,
    draw_face,
    generate,
    intended_labels,
    plan_videos,
    random_identity,
)
from featurestore.synth.layout import still_face
from featurestore.synth.timeline import MIN_AU_RUN, expr_rule, static_state

TINY = SynthConfig(videos=5, frames=60, faces=40, seed=3)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("synth") / "data"
    return out, generate(out, TINY, progress=False, workers=2)  # a process pool


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_config_gives_identical_bytes(tiny, tmp_path):
    """Also whatever the number of worker processes (the fixture's tree was drawn by 2)."""
    out, _ = tiny
    again = tmp_path / "again"
    generate(again, TINY, progress=False, workers=1)
    assert _tree_bytes(out) == _tree_bytes(again)
    other = tmp_path / "other"
    generate(other, SynthConfig(videos=5, frames=60, faces=0, seed=4), progress=False)
    assert {p.name for p in (other / "affwild2" / "cropped_aligned").iterdir()} != {
        p.name for p in (out / "affwild2" / "cropped_aligned").iterdir()}


def test_summary_and_top_level_tree(tiny):
    out, summary = tiny
    assert summary["out"] == str(out.absolute())
    assert summary["videos"]["test"] == TINY.test_videos == 2
    assert summary["videos"]["train"] + summary["videos"]["val"] == TINY.videos
    assert summary["frames"] == sum(1 for _ in out.rglob("*.jpg")) - summary["faces"]["rafdb"]
    assert sorted(p.name for p in out.iterdir()) == ["affwild2", "faces"]
    assert not list(out.parent.glob(".data.tmp-*"))


def test_reader_sees_exactly_the_intended_labels(tiny):
    out, _ = tiny
    ds = read_affwild2(out / "affwild2")
    plans = plan_videos(TINY)
    assert sorted(ds.videos) == sorted(p.name for p in plans)
    for plan in plans:
        iv = intended_labels(TINY, plan.index)
        video = ds.videos[plan.name]
        assert video.num_frames == plan.num_frames
        np.testing.assert_array_equal(video.frame_numbers, np.flatnonzero(iv.present) + 1)
        assert [d.name for d in video.frame_dirs] == [plan.root]
        if plan.split == "test":
            assert not video.labels and video.test_tasks == frozenset(plan.tasks)
            continue
        assert sorted(video.labels) == sorted(plan.tasks)
        for task, got in video.labels.items():
            values, valid = iv.labels[task]
            assert got.split == plan.split and ds.split_of(plan.name, task) == plan.split
            np.testing.assert_array_equal(got.valid, valid)
            if task == "va":
                np.testing.assert_allclose(got.values, values, atol=1e-6)
            else:
                np.testing.assert_array_equal(got.values, values)


def test_gaps_roots_pairs_and_missing_tasks(tiny):
    out, _ = tiny
    ds = read_affwild2(out / "affwild2")
    videos = list(ds.videos.values())
    assert any(v.frame_numbers[0] > 1 for v in videos)
    assert any(len(v.frame_numbers) < v.num_frames for v in videos if v.labels)
    assert {d.name for v in videos for d in v.frame_dirs} == {
        "cropped_aligned", "cropped_aligned_new_50_vids"}
    pairs = [v for v in videos if v.name.endswith(("_left", "_right"))]
    assert len(pairs) >= 2
    for v in pairs:
        other = v.source + ("_right" if v.name.endswith("_left") else "_left")
        assert source_video(v.name) == v.source and other in ds.videos
        for task in ("va", "expr", "au"):
            splits = {ds.split_of(v.name, task), ds.split_of(other, task)} - {None}
            assert len(splits) <= 1
    for v in videos:  # a video's split is the same across the tasks it has
        assert len({lab.split for lab in v.labels.values()}) <= 1
    annotated = [v for v in videos if v.labels]
    assert any(len(v.labels) < 3 for v in annotated)


def test_test_lists_and_templates_cover_every_frame(tiny):
    out, _ = tiny
    ds = read_affwild2(out / "affwild2")
    tests = [p for p in plan_videos(TINY) if p.split == "test"]
    for task in ("va", "expr", "au"):
        template = ds.templates[task]
        assert sorted(template) == sorted(p.name for p in tests if task in p.tasks)
        for p in tests:
            np.testing.assert_array_equal(template[p.name], np.arange(1, p.num_frames + 1))
            assert ds.split_of(p.name, task) == "test"
    head = (out / "affwild2/test_set_templates/CVPR_6th_ABAW_VA_test_set_sample.txt").read_text()
    assert head.splitlines()[0] == "image_location,valence,arousal"
    # the multi-task template: one file, every frame of every test video, the challenge's header
    mtl = ds.templates["mtl"]
    assert sorted(mtl) == sorted(p.name for p in tests)
    for p in tests:
        np.testing.assert_array_equal(mtl[p.name], np.arange(1, p.num_frames + 1))
    lines = (out / "affwild2/test_set_templates/MTL_test_set_sample.txt").read_text().splitlines()
    assert lines[0] == "image,valence,arousal,expression,aus"
    assert len(lines[1].split(",")) == 1 + 2 + 1 + 12


def test_face_sets_read_back_with_the_intended_expressions(tiny):
    out, summary = tiny
    fer = read_fer2013(out / "faces/fer2013/fer2013.csv")
    raf = read_rafdb(out / "faces/rafdb/basic")
    assert (len(fer), len(raf)) == (summary["faces"]["fer2013"], summary["faces"]["rafdb"])
    assert len(fer) + len(raf) == TINY.faces
    for kind, faceset in ((0, fer), (1, raf)):
        for i in range(len(faceset)):
            assert faceset[i].expr == still_face(TINY, kind, i)[1]
    assert fer[0].image.shape[:2] == (48, 48) and raf[0].image.shape == (100, 100, 3)


def test_refuses_a_non_empty_out(tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="busy"):
        generate(out, SynthConfig(videos=2, frames=20, faces=0), progress=False)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["busy"]


@pytest.mark.parametrize("field,value", [("videos", 1), ("frames", 5), ("val_fraction", 0.0),
                                         ("missing_face_rate", 0.9), ("seed", -1), ("size", 8)])
def test_config_errors_name_the_field(field, value):
    with pytest.raises(ValueError, match=f"{field}.*{value}"):
        SynthConfig(**{field: value})


def test_plan_lengths_vary_and_one_video_is_short():
    plans = plan_videos(SynthConfig(videos=8, frames=400, faces=0))
    lengths = [p.num_frames for p in plans if p.split != "test"]
    assert min(lengths) < 300 < max(lengths)
    assert len({p.split for p in plans}) == 3


def test_timelines_are_smooth_and_consistent():
    cfg = SynthConfig(videos=4, frames=400, faces=0)
    iv = intended_labels(cfg, 0)
    tl = iv.timeline
    assert np.all(np.abs(tl.valence) <= 1) and np.abs(np.diff(tl.valence)).max() < 0.2
    for k in range(12):  # AU on/off segments last at least MIN_AU_RUN frames inside the video
        x = tl.au[:, k]
        starts = np.flatnonzero(np.r_[True, x[1:] != x[:-1]])
        assert np.all(np.diff(starts) >= MIN_AU_RUN)
    agree = (expr_rule(tl.valence, tl.arousal, tl.au) == tl.expr).mean()
    assert agree > 0.6
    assert np.corrcoef(tl.au[:, 6], tl.valence)[0, 1] > 0.3  # AU12 goes with positive valence


def test_draw_face_is_pure_and_shaped():
    ident = random_identity(np.random.default_rng(0))
    p = FaceParams(ident, valence=0.5, arousal=0.2, au=(0.0,) * 6 + (1.0,) + (0.0,) * 5, expr=4)
    a = draw_face(p, np.random.default_rng(1))
    b = draw_face(p, np.random.default_rng(1))
    assert a.shape == (112, 112, 3) and a.dtype == np.uint8 and np.array_equal(a, b)
    frown = draw_face(FaceParams(ident, valence=-0.8, expr=5), np.random.default_rng(1))
    diff = np.abs(a.astype(int) - frown.astype(int)).mean(axis=2)  # (112, 112)
    assert diff[72:100, 36:76].mean() > 4 * diff[:20].mean()  # the mouth changed, the top did not


def _stills(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """n independent faces (new identity each): pixels (n, 784), brightness (n, 1), AU12, v > 0."""
    rng = np.random.default_rng(seed)
    pix, mean, au12, vpos = [], [], [], []
    for _ in range(n):
        v, a, au, expr = static_state(rng)
        p = FaceParams(random_identity(rng), v, a, tuple(au.astype(float)), expr,
                       (*rng.normal(0, 2, 2), rng.normal(0, 4), 1 + rng.normal(0, 0.03)),
                       tuple(rng.normal(0, 0.25, 2)), rng.uniform(95, 145), rng.uniform(40, 58))
        grey = Image.fromarray(draw_face(p, rng)).convert("L").resize((28, 28), Image.Resampling.BOX)
        g = np.asarray(grey, np.float32)  # (28, 28)
        pix.append(((g - g.mean()) / (g.std() + 1e-6)).ravel())
        mean.append([g.mean()])
        au12.append(au[6])
        vpos.append(v > 0)
    return np.array(pix), np.array(mean), np.array(au12), np.array(vpos)


def test_the_label_is_in_the_picture_not_in_the_brightness():
    from sklearn.linear_model import LogisticRegression

    pix, mean, _, vpos = _stills(450, seed=11)
    train = np.arange(len(pix)) < 300  # held-out faces are unseen identities
    y = vpos
    chance = max(y[~train].mean(), 1 - y[~train].mean())
    by_pixels = LogisticRegression(C=0.3, max_iter=3000).fit(pix[train], y[train])
    by_mean = LogisticRegression(max_iter=3000).fit(mean[train], y[train])
    assert (by_pixels.predict(pix[~train]) == y[~train]).mean() > chance + 0.08
    assert (by_mean.predict(mean[~train]) == y[~train]).mean() < chance + 0.04


def test_contact_sheet_and_cli(tmp_path):
    png = contact_sheet(tmp_path / "sheet.png", SynthConfig(videos=2, frames=20, faces=0),
                        videos=2, frames_per_video=3)
    assert Image.open(png).size == (3 * 112, 2 * (112 + 12))
    from featurestore.cli import main

    res = CliRunner().invoke(main, ["synth", str(tmp_path / "cli"), "--videos", "2",
                                    "--frames", "20", "--faces", "2"])
    assert res.exit_code == 0, res.output
    assert '"faces"' in res.output and (tmp_path / "cli/affwild2/cropped_aligned").is_dir()
    again = CliRunner().invoke(main, ["synth", str(tmp_path / "cli")])
    assert again.exit_code == 1 and "refusing" in again.output
