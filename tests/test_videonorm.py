"""Per-video input normalisation (``--video-norm``): exact values, recorded in the run's config
and resumed, applied by evaluation, ``seqtrain predict`` and the video heads, refused when bad."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import featurestore
from featurestore.abaw import MTL
from seqtrain.checkpoint import load_model
from seqtrain.cli import main
from seqtrain.config import FitConfig
from seqtrain.data import from_arrays, join_sets, load_videos, normalize_videos
from seqtrain.evaluate import predict_frames, score_videos
from seqtrain.folds import fold_videos
from seqtrain.tasks import get_task
from seqtrain.trainer import fit
from seqtrain.videonorm import VIDEO_NORMS, normalize_video, normalized_dim, source_dim

torch.set_num_threads(1)
VAL = {"vid001", "vid005", "vid007"}


@pytest.fixture(scope="module")
def store_path(synth_seq_store):
    return synth_seq_store(10, seed=3, val=VAL, max_frames=120)


def cfg_for(store_path, out, **kw):
    base = dict(task="va", store=store_path, features="synth", out=str(out), preset="tiny",
                window=32, stride=16, lr=3e-3, batch_size=8, epochs=2, patience=5, dropout=0.1)
    return FitConfig.from_flat(**{**base, **kw})


def test_values_match_numpy_over_the_whole_video(store_path):
    store = featurestore.open(store_path)
    video = store.videos()[0]
    f = np.asarray(store.features("synth", video), dtype=np.float64)  # every frame, filled ones too
    mean = f.mean(axis=0)
    assert normalize_video(f.astype(np.float16), "none").dtype == np.float16  # as given
    center = normalize_video(f.astype(np.float16), "center")
    assert center.dtype == np.float32 and center == pytest.approx(f - mean, abs=1e-5)
    assert np.abs(center.mean(axis=0)).max() < 1e-5
    both = normalize_video(f.astype(np.float16), "both")
    assert both.shape == (len(f), 2 * f.shape[1])
    assert both[:, : f.shape[1]] == pytest.approx(f, abs=1e-6)
    assert both[:, f.shape[1]:] == pytest.approx(center, abs=1e-6)
    # several feature sets (--features a,b): the joined vector is centred, each set by its mean
    g = 2.0 * f[:, ::2] + 1.0  # another set of the same frames, 8 wide
    seq = normalize_videos(from_arrays({video: join_sets(video, {"a": f, "b": g})}), "center")[0]
    assert seq.feats == pytest.approx(np.concatenate([f - mean, g - g.mean(0)], axis=1), abs=1e-5)
    raw = load_videos(store, "synth", [video], "va")[0]
    seq = normalize_videos([raw], "both")[0]
    assert np.array_equal(seq.labels, raw.labels) and np.array_equal(seq.valid, raw.valid)
    assert [normalized_dim(16, m) for m in VIDEO_NORMS] == [16, 16, 32]
    assert [source_dim(normalized_dim(16, m), m) for m in VIDEO_NORMS] == [16, 16, 16]


def test_bad_mode_is_refused():
    with pytest.raises(ValueError, match="video_norm must be one of .* got 'median'"):
        FitConfig.from_flat(task="va", video_norm="median")
    with pytest.raises(ValueError, match="got 'median'"):
        normalize_video(np.zeros((3, 2)), "median")
    for cmd in ("fit", "probe"):
        res = CliRunner().invoke(main, [cmd, "--video-norm", "median"])
        assert res.exit_code == 2 and res.output.count("error:") == 1, res.output
        assert "'median' is not one of 'none', 'center', 'both'" in res.output
        assert "Traceback" not in res.output


def test_recorded_resumed_and_evaluated_normalised(store_path, tmp_path):
    cfg = cfg_for(store_path, tmp_path / "c", video_norm="both")
    res = fit(cfg)
    saved = json.loads((tmp_path / "c" / "metrics.json").read_text())
    assert saved["video_norm"] == "both" and saved["config"]["data"]["video_norm"] == "both"
    model, back, _ = load_model(tmp_path / "c")
    assert back == cfg and model.cfg.in_dim == 2 * 16  # [f, f - mean]
    assert fit(cfg) == saved  # finished with the same config: read back, not retrained
    # the best checkpoint's validation score is that of normalised inputs
    store = featurestore.open(store_path)
    val = load_videos(store, "synth", fold_videos(store, "va", 0)[1], "va")
    frames = predict_frames(model, normalize_videos(val, "both"), 32, 16)
    assert score_videos(get_task("va"), frames, val)["score"] == pytest.approx(res["val"]["score"])
    # another mode in the same folder is another run: refused, not resumed
    (tmp_path / "c" / "metrics.json").unlink()
    with pytest.raises(ValueError, match="holds a run with another config"):
        fit(cfg_for(store_path, tmp_path / "c", video_norm="center"))


def test_none_is_the_default_and_changes_nothing(store_path, tmp_path):
    plain = fit(cfg_for(store_path, tmp_path / "a", epochs=1))
    named = fit(cfg_for(store_path, tmp_path / "b", epochs=1, video_norm="none"))
    assert plain["val"] == named["val"] and plain["config"]["data"]["video_norm"] == "none"
    centred = fit(cfg_for(store_path, tmp_path / "c", epochs=1, video_norm="center"))
    assert centred["val"]["score"] != plain["val"]["score"]
    # a metrics.json written before the option existed (no video_norm) is the same run
    old = json.loads((tmp_path / "a" / "metrics.json").read_text())
    del old["config"]["data"]["video_norm"]
    assert FitConfig.from_dict(old["config"]) == cfg_for(store_path, tmp_path / "a", epochs=1)


def _template(tmp_path, store, videos):
    tpl = tmp_path / "t.txt"
    tpl.write_text("image_location\n" + "".join(f"{v}/{i:05d}.jpg\n" for v in videos
                                                 for i in range(1, store.num_frames(v) + 1)))
    return tpl


def test_predict_applies_the_checkpoints_normalisation(store_path, tmp_path):
    fit(cfg_for(store_path, tmp_path / "r", video_norm="center"))
    store = featurestore.open(store_path)
    videos = fold_videos(store, "va", 0)[1][:2]
    tpl = _template(tmp_path, store, videos)
    res = CliRunner().invoke(main, ["predict", "--task", "va", "--checkpoint", str(tmp_path / "r"),
                                    "--store", store_path, "--template", str(tpl),
                                    "--out", str(tmp_path / "va.csv")])
    assert res.exit_code == 0, res.output
    got = np.array([[float(x) for x in ln.split(",")[1:]]
                    for ln in (tmp_path / "va.csv").read_text().splitlines()[1:]])
    model, _, _ = load_model(tmp_path / "r")
    seqs = load_videos(store, "synth", videos, None)
    want = predict_frames(model, normalize_videos(seqs, "center"), 32, 16)
    unnormalised = predict_frames(model, seqs, 32, 16)
    assert got == pytest.approx(np.clip(np.concatenate([want[v] for v in videos]), -1, 1), abs=1e-5)
    assert not np.allclose(got, np.clip(np.concatenate([unnormalised[v] for v in videos]), -1, 1),
                           atol=1e-3)


def test_video_heads_apply_it_over_the_whole_video(store_path, tmp_path):
    from jobs.video_predict import load_heads, predict_outputs

    fit(cfg_for(store_path, tmp_path / "m", task=MTL, epochs=1, video_norm="both"))
    heads = load_heads(mtl=tmp_path / "m")
    assert heads.in_dim == 16  # what the encoder must give: the width before [f, f - mean]
    store = featurestore.open(store_path)
    video = store.videos()[0]
    feats = np.asarray(store.features("synth", video), np.float32)  # (n, 16), every frame
    out = predict_outputs(heads, feats, name=video)
    model, _, _ = load_model(tmp_path / "m")
    seqs = normalize_videos(load_videos(store, "synth", [video], None), "both")
    raw = predict_frames(model, seqs, 32, 16)[video]  # (n, 22)
    assert out["va"] == pytest.approx(np.clip(raw[:, :2], -1, 1), abs=1e-5)
    with pytest.raises(ValueError, match=r"shape \(\d+, 32\) do not fit heads reading 16"):
        predict_outputs(heads, np.concatenate([feats, feats], axis=1), name=video)


def test_probe_gets_the_same_option(store_path, tmp_path):
    res = CliRunner().invoke(main, ["probe", "--task", "va", "--store", store_path, "--features",
                                    "synth", "--out", str(tmp_path), "--video-norm", "center"])
    assert res.exit_code == 0, res.output
    assert "(linear probe, synth, video norm center): val score" in res.output
    saved = json.loads((tmp_path / "va" / "fold0" / "metrics.json").read_text())
    assert saved["video_norm"] == "center" and saved["config"]["video_norm"] == "center"
    from seqtrain.report import collect

    assert collect(tmp_path)[0]["features"] == "synth+center"  # its own row in the tables
