"""Multi-task (``--task mtl``), fusion of feature sets (``--features a,b``) and smoothing at
inference (``--smooth K``), trained for real on a tiny store where some videos are annotated for
one task only."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import featurestore
from featurestore.abaw import MTL
from featurestore.submission import check_submission
from seqtrain import metrics
from seqtrain.checkpoint import load_model
from seqtrain.cli import main
from seqtrain.config import SMOOTH_CHOICES, FitConfig
from seqtrain.data import WindowDataset, join_sets, load_videos
from seqtrain.evaluate import predict_frames
from seqtrain.folds import fold_videos
from seqtrain.smoothing import moving_average, smooth_outputs
from seqtrain.synthetic import synth_videos
from seqtrain.tasks import MTL_TASK
from seqtrain.trainer import fit

torch.set_num_threads(1)
VAL = {"vid001", "vid005", "vid007"}
ONLY = {"vid002": ("au",), "vid006": ("au",), "vid004": ("va",), "vid005": ("expr", "au")}


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    """12 synthetic videos; ONLY lists sources annotated for some tasks only. Feature sets
    ``synth`` (16 wide), ``half`` (8 wide, another view of the same frames) and ``part``
    (committed for two videos only)."""
    from featurestore.ingest import VideoRecord, create_store

    path = tmp_path_factory.mktemp("mtl") / "store.zarr"
    vids = synth_videos(12, seed=1, max_frames=120)
    records = []
    for v in vids:
        split = "val" if v.source in VAL else "train"
        tasks = ONLY.get(v.source, ("va", "expr", "au"))
        records.append(VideoRecord(v.name, v.source, len(v.feats), v.present,
                                   {t: split for t in tasks}, {t: v.labels[t] for t in tasks}))
    create_store(path, records)
    store = featurestore.open(path, mode="a")
    sets = {"synth": lambda f: f, "half": lambda f: 2.0 * f[:, ::2] + 1.0}
    for name, view in sets.items():
        writer = store.create_feature_set(name, view(vids[0].feats).shape[1], dtype="float16")
        for v in vids:
            writer.write_video(v.name, view(v.feats)[v.present])
    writer = store.create_feature_set("part", 4, dtype="float16")
    for v in vids[:2]:
        writer.write_video(v.name, v.feats[v.present][:, :4])
    return str(path)


def cfg_for(store_path, out, **kw):
    base = dict(task=MTL, store=store_path, features="synth", out=str(out), preset="tiny",
                window=32, stride=16, lr=3e-3, batch_size=8, epochs=2, patience=5, dropout=0.1)
    return FitConfig.from_flat(**{**base, **kw})


def test_mtl_folds_are_the_union_of_the_tasks(store_path):
    store = featurestore.open(store_path)
    train, val = fold_videos(store, MTL, 0)
    assert "vid002" in train and "vid004" in train  # AU only, VA only
    assert set(val) == {v for v in store.videos() if store.source(v) in VAL} and not set(train) & set(val)
    for k in range(1, 5):
        t, v = fold_videos(store, MTL, k)
        single = set().union(*(fold_videos(store, task, k)[1] for task in ("va", "expr", "au")))
        assert set(v) == single and not set(t) & set(v)


def test_mtl_losses_are_masked_per_task(store_path):
    """A video annotated for AU only gives no VA or EXPR loss: their outputs get no gradient."""
    store = featurestore.open(store_path)
    seq = load_videos(store, "synth", ["vid002"], MTL)[0]
    assert seq.labels.shape == (seq.num_frames, 15) and seq.valid.shape == (seq.num_frames, 3)
    assert not seq.valid[:, :2].any() and seq.valid[:, 2].any()
    ds = WindowDataset([seq], 32, 16)
    feats, labels, valid, pad = (torch.stack(x) for x in zip(*(ds[i] for i in range(len(ds))), strict=True))
    assert valid.shape == (len(ds), 32, 3) and not valid[pad].any()
    out = torch.randn(len(ds), 32, MTL_TASK.out_dim, requires_grad=True)
    MTL_TASK.loss(out, labels, valid).backward()
    grad = out.grad.abs().sum(dim=(0, 1))  # (22,)
    assert grad[:10].sum() == 0 and (grad[10:] > 0).all()  # VA 0:2, EXPR 2:10, AU 10:22
    # and a video annotated for all three gives all three a gradient
    full = load_videos(store, "synth", ["vid000"], MTL)[0]
    f, y, m, _ = WindowDataset([full], 32, 16)[0]
    out = torch.randn(1, 32, 22, requires_grad=True)
    MTL_TASK.loss(out, y[None], m[None]).backward()
    assert (out.grad.abs().sum(dim=(0, 1))[[0, 1, 2, 10]] > 0).all()


def test_mtl_fusion_fit_scores_resume_and_report(store_path, tmp_path):
    full = fit(cfg_for(store_path, tmp_path / "a", features="synth,half", epochs=2,
                       mtl_loss="balanced"))
    val = full["val"]
    assert val["score"] == pytest.approx(val["va"] + val["expr"] + val["au"])
    assert full["features"] == "synth,half" and full["task"] == MTL
    assert max(h["score"] for h in full["history"]) == pytest.approx(val["score"])  # stops on the sum
    for t in ("va", "expr", "au"):  # and each head's own best epoch, kept as best-<task>/
        best = max(full["history"], key=lambda h: h[t])
        assert full["heads"][t] == {"epoch": best["epoch"], "score": best[t]}
        assert load_model(tmp_path / "a" / f"best-{t}")[2]["epoch"] == best["epoch"]
    weights = full["loss_weights"]
    assert sorted(weights) == ["au", "expr", "va"] and np.mean(list(weights.values())) == pytest.approx(1)
    # the scores are the official metrics of the best checkpoint's outputs, each over its frames
    model, cfg, _ = load_model(tmp_path / "a" / "best")
    assert model.cfg.in_dim == 16 + 8 and cfg.data.features == "synth,half"
    store = featurestore.open(store_path)
    seqs = load_videos(store, "synth,half", fold_videos(store, MTL, 0)[1], MTL)
    frames = predict_frames(model, seqs, 32, 16)
    out = np.concatenate([frames[s.name] for s in seqs])
    lab = np.concatenate([s.labels for s in seqs])
    ok = np.concatenate([s.valid for s in seqs])
    va = metrics.va_score(np.clip(out[ok[:, 0], :2], -1, 1), lab[ok[:, 0], :2])["score"]
    expr = metrics.expr_score(out[ok[:, 1], 2:10].argmax(1), lab[ok[:, 1], 2])["score"]
    au = metrics.au_score((out[ok[:, 2], 10:] >= 0).astype(int), lab[ok[:, 2], 3:])["score"]
    assert [val["va"], val["expr"], val["au"]] == pytest.approx([va, expr, au], abs=1e-6)
    # each task's submission from the mtl checkpoint: that task's head
    from seqtrain.predict import predict

    video = seqs[0].name
    tpl = tmp_path / "t.txt"
    tpl.write_text("image_location\n" + "".join(f"{video}/{i:05d}.jpg\n"
                                                 for i in range(1, seqs[0].num_frames + 1)))
    sub = predict("expr", tmp_path / "a", store_path, tpl, tmp_path / "expr.csv").read_text()
    got = [int(ln.split(",")[1]) for ln in sub.splitlines()[1:]]
    head, _, meta = load_model(tmp_path / "a" / "best-expr")  # the expr head's own best epoch
    assert meta["epoch"] == full["heads"]["expr"]["epoch"] and meta["head"] == "expr"
    want = predict_frames(head, seqs[:1], 32, 16)[video][:, 2:10].argmax(1).tolist()
    assert sub.startswith("image_location,Neutral,") and got == want

    class Stop(Exception):
        pass

    def die(epoch):
        if epoch == 1:
            raise Stop

    cfg = cfg_for(store_path, tmp_path / "b", features="synth,half", epochs=2, mtl_loss="balanced")
    with pytest.raises(Stop):
        fit(cfg, on_epoch=die)
    resumed = fit(cfg)
    assert resumed["val"] == pytest.approx(val)
    assert resumed["heads"] == full["heads"] and resumed["loss_weights"] == full["loss_weights"]
    for ckpt in ("best", "best-va", "best-expr", "best-au"):  # bit for bit
        a, b = (tmp_path / run / ckpt / "model.safetensors" for run in ("a", "b"))
        assert a.read_bytes() == b.read_bytes(), ckpt
    from seqtrain.report import report

    single = fit(cfg_for(store_path, tmp_path / "va", task="va", features="synth,half", epochs=1))
    assert single["val"]["score"] == single["smoothing"]["0"]
    text = report(tmp_path)
    assert "### synth,half / full" in text and "| VA / CCC |" in text
    assert "| MTL: one checkpoint (challenge score) |" in text and "| MTL: AU / F1 |" in text
    assert "| MTL: sum of the three |" in text and "own best epoch" in text
    assert "K=31" in text


def test_mtl_loss_weights_balance_the_gradients_at_init(store_path, tmp_path):
    """``--mtl-loss balanced``: the weights make every task's loss gradient on the shared weights (measured on the first
    batches of epoch 0) equally strong at initialisation; they are a pure function of the run (no random draw), and the masked-loss
    rule holds with them."""
    from seqtrain.trainer import _grad_norms, _setup, load_fold

    assert MTL_TASK.weights == (1.0, 1.0, 1.0)  # the module's task: the plain sum
    assert MTL_TASK.balanced([2.0, 1.0, 0.5]).weights == pytest.approx((3 / 7, 6 / 7, 12 / 7))
    for bad in ([1.0, 0.0, 1.0], [1.0, 1.0]):
        with pytest.raises(ValueError, match="positive gradient norm per task"):
            MTL_TASK.balanced(bad)
    cfg = cfg_for(store_path, tmp_path / "w", mtl_loss="balanced")
    train, _ = load_fold(cfg)
    assert _setup(cfg_for(store_path, tmp_path / "w"), train)[0] is MTL_TASK  # default: the sum
    task, model, _, _, ds, sampler, _ = _setup(cfg, train)
    rng = torch.get_rng_state()
    norms = _grad_norms(MTL_TASK, model, ds, sampler, 8, "cpu")
    assert torch.equal(rng, torch.get_rng_state()) and model.training
    assert task.weights == pytest.approx(MTL_TASK.balanced(norms).weights)
    assert _setup(cfg, train)[0].weights == task.weights  # a resumed run gets the same weights
    assert all(n > 0 for n in norms) and len(norms) == 3
    strength = [w * n for w, n in zip(task.weights, norms, strict=True)]  # weighted pull
    assert strength == pytest.approx([strength[0]] * 3)
    # masks still decide: an AU-only video gives the VA and EXPR outputs no gradient
    seq = load_videos(featurestore.open(store_path), "synth", ["vid002"], MTL)[0]
    f, y, m, p = WindowDataset([seq], 32, 16)[0]
    out = torch.randn(1, 32, 22, requires_grad=True)
    task.loss(out, y[None], m[None]).backward()
    assert out.grad[..., :10].abs().sum() == 0 and out.grad[..., 10:].abs().sum() > 0
    with torch.no_grad():
        assert float(task.loss(out, y[None], m[None])) == pytest.approx(
            task.weights[2] * float(MTL_TASK.loss(out, y[None], m[None])))


def test_fused_sets_must_share_frames(store_path, tmp_path):
    store = featurestore.open(store_path)
    a = load_videos(store, "synth", ["vid000"], "va")[0]
    b = load_videos(store, "half", ["vid000"], "va")[0]
    ab = load_videos(store, ["synth", "half"], ["vid000"], "va")[0]
    assert ab.feats.shape == (a.num_frames, 16 + 8)
    assert np.array_equal(ab.feats, np.concatenate([a.feats, b.feats], axis=1))
    with pytest.raises(ValueError, match=r"do not share the frame axis of video 'v'.*'b': 9"):
        join_sets("v", {"a": np.zeros((10, 2)), "b": np.zeros((9, 3))})
    with pytest.raises(ValueError, match="'part' has no committed features"):
        load_videos(store, "synth,part", store.videos(), "va")
    res = CliRunner().invoke(main, [
        "fit", "--task", "va", "--store", store_path, "--features", "synth,part", "--no-ray",
        "--preset", "tiny", "--window", "32", "--stride", "16", "--out", str(tmp_path / "r")])
    assert res.exit_code == 1 and "'part' has no committed features" in res.output
    res = CliRunner().invoke(main, [
        "fit", "--task", "va", "--store", store_path, "--features", "synth,synth", "--no-ray",
        "--out", str(tmp_path / "r2")])
    assert res.exit_code == 2 and "features" in res.output


def test_moving_average_and_identity():
    x = np.array([0.0, 0.0, 3.0, 0.0, 0.0, 6.0])
    assert np.array_equal(moving_average(x, 0), x) and np.array_equal(moving_average(x, 1), x)
    assert moving_average(x, 3) == pytest.approx([0, 1, 1, 1, 2, 3])  # the ends shrink the window
    raw = np.random.default_rng(0).normal(size=(50, 8))
    for act in ("identity", "softmax", "sigmoid"):
        assert np.array_equal(smooth_outputs(raw, 0, act), raw)
        assert not np.allclose(smooth_outputs(raw, 5, act), raw)
    # class outputs are averaged as probabilities: one-frame spikes are voted down
    logits = np.zeros((9, 3))
    logits[:, 0] = 2.0
    logits[4] = [0.0, 5.0, 0.0]
    assert smooth_outputs(logits, 5, "softmax").argmax(1).tolist() == [0] * 9
    au = np.full((9, 1), -2.0)
    au[4] = 3.0
    assert (smooth_outputs(au, 5, "sigmoid") < 0).all() and (smooth_outputs(au, 0, "sigmoid")[4] > 0)


def test_smooth_in_fit_and_predict(store_path, tmp_path):
    res = fit(cfg_for(store_path, tmp_path / "s", task="va", smooth=5, epochs=1))
    assert set(res["smoothing"]) == {"0", *map(str, SMOOTH_CHOICES)}
    assert res["val"]["score"] == pytest.approx(res["smoothing"]["5"])  # the run scores smoothed
    assert res["smoothing"]["0"] != res["smoothing"]["5"]
    saved = json.loads((tmp_path / "s" / "metrics.json").read_text())
    assert saved["smooth"] == 5 and saved["config"]["smooth"] == 5
    from seqtrain.predict import predict

    store = featurestore.open(store_path)
    video = store.videos()[0]
    tpl = tmp_path / "t.txt"
    tpl.write_text("image_location\n" + "".join(f"{video}/{i:05d}.jpg\n"
                                                 for i in range(1, store.num_frames(video) + 1)))

    def rows(k):
        out = predict("va", tmp_path / "s", store_path, tpl, tmp_path / f"k{k}.csv", smooth=k)
        return np.array([[float(x) for x in ln.split(",")[1:]] for ln in out.read_text().splitlines()[1:]])

    model, _, _ = load_model(tmp_path / "s")
    raw = predict_frames(model, load_videos(store, "synth", [video], None), 32, 16)[video]
    assert rows(0) == pytest.approx(np.clip(raw, -1, 1), abs=1e-6)  # K = 0: the raw outputs
    assert rows(None) == pytest.approx(rows(5)) and not np.allclose(rows(5), rows(0))
    with pytest.raises(ValueError, match="is for task 'va', not 'mtl' .the multi-task file needs"):
        predict(MTL, tmp_path / "s", store_path, tpl, tmp_path / "m.csv")
    assert not (tmp_path / "m.csv").exists()


def test_mtl_on_the_command_line(store_path, tmp_path):
    fast = ["--store", store_path, "--features", "synth", "--preset", "tiny", "--epochs", "1",
            "--window", "32", "--stride", "16", "--lr", "3e-3", "--batch-size", "8", "--no-ray"]
    res = CliRunner().invoke(main, ["fit", "--task", MTL, "--out", str(tmp_path), *fast])
    assert res.exit_code == 0, res.output
    assert "mtl fold 0 (full, synth): val score" in res.output and "(= va " in res.output
    saved = json.loads((tmp_path / MTL / "fold0" / "metrics.json").read_text())
    assert saved["val"]["au_frames"] > 0 and saved["val"]["va_frames"] > 0
    assert saved["loss_weights"] == {"va": 1.0, "expr": 1.0, "au": 1.0}  # --mtl-loss sum
    assert "each head at its best: va " in res.output
    # the multi-task submission: one file, every template frame (face or not), from the heads
    store = featurestore.open(store_path)
    videos = [v for v in store.videos() if store.split(v, "va") != "train"][:3]
    n = {v: store.num_frames(v) for v in videos}
    assert not all(store.present(v).all() for v in videos)  # frames without a face are listed too
    tpl = tmp_path / "mtl_template.txt"
    fill = ",".join(["0.0", "0.0", "0"] + ["0"] * 12)
    tpl.write_text("image,valence,arousal,expression,aus\n" + "".join(
        f"{v}/{i:05d}.jpg,{fill}\n" for v in videos for i in range(1, n[v] + 1)))
    ckpt = tmp_path / MTL / "fold0"
    res = CliRunner().invoke(main, ["predict", "--task", MTL, "--checkpoint", str(ckpt), "--store",
                                    store_path, "--template", str(tpl), "--out", str(tmp_path / "m.csv")])
    assert res.exit_code == 0, res.output
    lines = (tmp_path / "m.csv").read_text().splitlines()
    assert lines[0] == "image,valence,arousal,expression,aus"
    assert [ln.split(",")[0] for ln in lines[1:]] == [f"{v}/{i:05d}.jpg" for v in videos
                                                      for i in range(1, n[v] + 1)]
    vals = np.array([[float(x) for x in ln.split(",")[1:]] for ln in lines[1:]])  # (rows, 15)
    assert vals.shape == (sum(n.values()), 2 + 1 + 12)
    model, cfg, _ = load_model(ckpt)
    raw = predict_frames(model, load_videos(store, "synth", videos, None), 32, 16)
    raw = np.concatenate([raw[v] for v in videos])  # (rows, 22), in template order
    assert vals[:, :2] == pytest.approx(np.clip(raw[:, :2], -1, 1), abs=1e-6)
    assert np.abs(vals[:, :2]).max() <= 1.0
    assert vals[:, 2].tolist() == raw[:, 2:10].argmax(1).tolist()
    assert np.array_equal(vals[:, 3:], (raw[:, 10:] >= 0).astype(float))
    assert check_submission(tmp_path / "m.csv", MTL, tpl) == sum(n.values())
    # the same head gives the same rows as the per-task file of that task
    res = CliRunner().invoke(main, ["predict", "--task", "expr", "--checkpoint", str(ckpt), "--store",
                                    store_path, "--template", str(tpl), "--out", str(tmp_path / "e.csv")])
    assert res.exit_code == 0, res.output
    expr = [int(ln.split(",")[1]) for ln in (tmp_path / "e.csv").read_text().splitlines()[1:]]
    assert expr == vals[:, 2].astype(int).tolist()
    # a bad template: one error line naming file and line, nothing written
    bad = tmp_path / "bad.txt"
    bad.write_text(f"image,valence,arousal,expression,aus\n{videos[0]}/00001.jpg,{fill}\n"
                   f"{videos[0]}/frame2.jpg,{fill}\n")
    res = CliRunner().invoke(main, ["predict", "--task", MTL, "--checkpoint", str(ckpt), "--store",
                                    store_path, "--template", str(bad), "--out", str(tmp_path / "b.csv")])
    assert res.exit_code == 1 and res.output.count("error:") == 1
    assert f"{bad}:3:" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "b.csv").exists()


def test_runs_written_with_the_flat_config_still_load(store_path, tmp_path):
    """metrics.json and best/config.json of runs made before the config tree hold a flat
    FitConfig: the run is still finished (no retraining) and its checkpoint still loads."""
    cfg = cfg_for(store_path, tmp_path, task="va", epochs=1)
    done = fit(cfg)
    d = cfg.to_dict()
    flat = {k: v for k, v in d.items() if not isinstance(v, dict)}
    for part in ("data", "optim", "model"):
        flat.update(d[part])
    del flat["smooth"]  # not a field then
    for path, key in ((tmp_path / "metrics.json", "config"), (tmp_path / "best" / "config.json", "fit")):
        saved = json.loads(path.read_text())
        saved[key] = {**flat, "model_overrides": {}}
        path.write_text(json.dumps(saved))
    mtime = (tmp_path / "state.pt").stat().st_mtime_ns
    assert fit(cfg)["val"] == done["val"]
    assert (tmp_path / "state.pt").stat().st_mtime_ns == mtime
    _, back, _ = load_model(tmp_path)
    assert back == cfg
