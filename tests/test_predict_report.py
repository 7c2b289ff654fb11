"""CLI end to end on a tiny synthetic store: fit (sequential and on Ray), predict, report."""

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from featurestore.errors import DataFormatError
from seqtrain.cli import main
from seqtrain.predict import predict
from seqtrain.synthetic import build_store, synth_videos

torch.set_num_threads(1)
FAST = ["--preset", "tiny", "--epochs", "1", "--window", "32", "--stride", "16", "--lr", "3e-3",
        "--batch-size", "8", "--features", "synth", "--no-ray"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("pr")
    vids = synth_videos(10, seed=3, max_frames=90)
    split = {v.name: "test" if v.source in ("vid008", "vid009") else
             "val" if v.source in ("vid001", "vid003") else "train" for v in vids}
    build_store(root / "store.zarr", vids, split)
    runner = CliRunner()
    for task, extra in (("va", []), ("expr", []), ("au", []), ("va", ["--no-tcn"])):
        out = root / ("runs" if not extra else "runs/no-tcn")
        res = runner.invoke(main, ["fit", "--task", task, "--store", str(root / "store.zarr"),
                                   "--out", str(out), *FAST, *extra])
        assert res.exit_code == 0, res.output
        assert "val score" in res.output
    test_videos = {v.name: len(v.feats) for v in vids if split[v.name] == "test"}
    return root, test_videos


def write_template(path, videos):
    lines = ["image_location,valence,arousal"]
    for v, n in videos.items():
        lines += [f"{v}/{i:05d}.jpg" for i in range(1, n + 1)]
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("task,width", [("va", 2), ("expr", 1), ("au", 12)])
def test_predict_writes_official_format(setup, task, width, tmp_path):
    root, videos = setup
    write_template(tmp_path / "template.txt", videos)
    out = predict(task, root / "runs" / task / "fold0" / "best", root / "store.zarr",
                  tmp_path / "template.txt", tmp_path / f"{task}.csv")
    lines = out.read_text().splitlines()
    header = {"va": "image_location,valence,arousal",
              "expr": "image_location,Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other",
              "au": "image_location,AU1,AU2,AU4,AU6,AU7,AU10,AU12,AU15,AU23,AU24,AU25,AU26"}[task]
    assert lines[0] == header
    assert len(lines) == 1 + sum(videos.values())  # one row per template frame, face or not
    expected_locs = [f"{v}/{i:05d}.jpg" for v, n in videos.items() for i in range(1, n + 1)]
    assert [ln.split(",")[0] for ln in lines[1:]] == expected_locs
    vals = np.array([[float(x) for x in ln.split(",")[1:]] for ln in lines[1:]])
    assert vals.shape[1] == width
    if task == "va":
        assert np.abs(vals).max() <= 1.0
    elif task == "expr":
        assert set(np.unique(vals)) <= set(range(8))
    else:
        assert set(np.unique(vals)) <= {0, 1}


def test_predict_errors_name_the_problem(setup, tmp_path):
    root, videos = setup
    write_template(tmp_path / "t.txt", {"nosuchvideo": 3})
    with pytest.raises(ValueError, match="nosuchvideo"):
        predict("va", root / "runs/va/fold0/best", root / "store.zarr", tmp_path / "t.txt",
                tmp_path / "va.csv")
    (tmp_path / "bad.txt").write_text("image_location\nvid008/abc.jpg\n")
    with pytest.raises(DataFormatError, match="bad.txt:2"):
        predict("va", root / "runs/va/fold0/best", root / "store.zarr", tmp_path / "bad.txt",
                tmp_path / "va.csv")
    assert not (tmp_path / "va.csv").exists()


def test_report_prints_fold_and_ablation_tables(setup):
    root, _ = setup
    res = CliRunner().invoke(main, ["report", str(root / "runs")])
    assert res.exit_code == 0, res.output
    assert "| VA / CCC |" in res.output and "| EXPR / F1 |" in res.output
    assert "| no-tcn / synth |" in res.output and "| full / synth |" in res.output
    assert (root / "runs" / "results_folds.md").is_file()
    assert (root / "runs" / "results_ablation.md").is_file()
    for task in ("va", "expr", "au"):
        assert (root / "runs" / f"frames_{task}.png").stat().st_size > 0


def test_missing_default_store_message(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(main, ["fit", "--task", "va"])
    assert res.exit_code != 0
    assert "no feature store at runs/demo/store.zarr: run `make demo` first or pass --store" in res.output


@pytest.mark.ray
def test_runs_in_parallel_on_ray(setup, tmp_path):
    from jobs.seqfit import run_parallel
    from seqtrain.runner import plan_runs

    root, _ = setup
    flat = dict(store=str(root / "store.zarr"), features="synth", preset="tiny", epochs=1,
                window=32, stride=16, lr=3e-3, batch_size=8)
    cfgs = plan_runs(("va", "expr"), (0,), tmp_path / "ray", **flat)
    results = run_parallel(cfgs, num_cpus=2)
    assert [r["task"] for r in results] == ["va", "expr"]
    for cfg in cfgs:
        assert (tmp_path / "ray" / cfg.task / "fold0" / "metrics.json").is_file()
    # finished runs are read back in the driver, in order; the one left trains there (no Ray)
    more = plan_runs(("va", "au", "expr"), (0,), tmp_path / "ray", **flat)
    again = run_parallel(more, num_cpus=2)
    assert [r["task"] for r in again] == ["va", "au", "expr"]
    assert [again[0]["val"], again[2]["val"]] == [r["val"] for r in results]
