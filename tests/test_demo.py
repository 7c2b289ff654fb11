"""End-to-end: the README's main job (`make demo`, same size), through the real entry points.

One run of ``python -m jobs.demo --size demo --pretrain-epochs 15`` (synthetic data -> pack ->
ingest -> MAE pretraining -> fine-tuning -> Ray extraction of mae-pt and mae-ft -> 15 seqtrain
runs + 5 ablation rows x 3 seeds on fold 0 -> probes -> predict -> report; about 16 minutes on 2
idle cores). The demo's own 75 pretraining epochs would add 6 minutes and put `make test` over
its 30; the stages, sizes and checks are the same. The test checks that every artefact exists,
that every task scores clearly above chance (mean over the folds), and that a second run resumes
(every stage skipped) instead of starting over.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import featurestore
from featurestore.affwild2 import read_template
from seqtrain.folds import fold_videos

pytestmark = [pytest.mark.slow, pytest.mark.ray, pytest.mark.timeout(2400)]

STAGES = ("synth", "scan", "pack", "ingest", "pretrain", "finetune", "extract-mae-pt",
          "extract-mae-ft", "fit-all", "ablation", "probe", "pixel-baseline", "predict")
ROWS = ("full", "no-tcn", "no-transformer", "frame-level", "no-finetune")
DEMO = ["-m", "jobs.demo", "--size", "demo", "--pretrain-epochs", "15"]  # see the docstring


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> tuple[Path, float]:
    run = tmp_path_factory.mktemp("demo") / "run"
    t0 = time.perf_counter()
    subprocess.run([sys.executable, *DEMO, "--run", str(run)],
                   check=True, cwd=Path(__file__).resolve().parents[1], timeout=2400)
    return run, time.perf_counter() - t0


def _chance(task: str, store, videos: list[str]) -> float:
    """Score of the better of two label-blind predictors on these frames (0 for VA's CCC)."""
    if task == "va":
        return 0.0
    values = [store.labels(task, v) for v in videos]
    y = np.concatenate([val[ok] for val, ok in values])
    if task == "expr":  # random guessing with the true class frequencies: macro F1 = 1/8
        return 1 / 8
    p = y.mean(axis=0)  # all-ones predictor per AU: F1 = 2p / (1 + p)
    return float(np.mean(2 * p / (1 + p)))


def test_every_artefact_exists(demo_run):
    run, _ = demo_run
    for stage in STAGES:
        assert (run / "stages" / f"{stage}.done").is_file(), stage
    for path in ("encoders/pretrain/loss.png", "encoders/pretrain/reconstruction.png",
                 "encoders/finetune/curves.png", "encoders/finetune/best/model.safetensors",
                 "seqtrain/results_folds.md", "seqtrain/results_ablation.md", "timings.md"):
        assert (run / path).is_file(), path
    for task in ("va", "expr", "au"):
        assert (run / "seqtrain" / f"frames_{task}.png").is_file()
        for fold in range(5):
            metrics = json.loads((run / f"seqtrain/main/{task}/fold{fold}/metrics.json").read_text())
            assert metrics["task"] == task and metrics["fold"] == fold
            assert (run / f"seqtrain/main/{task}/fold{fold}/curve.png").is_file()
        for probe in ("probe-mae-ft", "probe-mae-pt", "probe-pix16"):
            assert (run / f"seqtrain/{probe}/{task}/fold0/metrics.json").is_file()
        for row in ROWS:  # every ablation row over 3 seeds
            for k in range(3):
                metrics = json.loads((run / f"seqtrain/ablation/{row}/seed{k}/{task}/fold0/"
                                             "metrics.json").read_text())
                assert metrics["config"]["seed"] == k
    mtl = json.loads((run / "seqtrain/main/mtl/fold0/metrics.json").read_text())  # ablation stage
    assert mtl["task"] == "mtl" and sorted(mtl["heads"]) == ["au", "expr", "va"]
    assert "| MTL: one checkpoint (challenge score) |" in (run / "seqtrain/results_folds.md").read_text()
    ablation = (run / "seqtrain/results_ablation.md").read_text()
    for row in ROWS:
        assert f"| {row} (" in ablation and "± " in ablation
    for probe in ("mae-ft", "mae-pt", "pix16"):  # the probes, the raw-pixel one included
        assert f"| linear-probe / {probe} | 1/1/1 |" in ablation
    store = featurestore.open(run / "store.zarr")
    assert set(store.feature_sets()) >= {"mae-pt", "mae-ft"}
    for name in ("mae-pt", "mae-ft"):
        assert sorted(store.committed(name)) == sorted(store.videos())


def test_submissions_cover_every_template_frame(demo_run):
    run, _ = demo_run
    names = {"va": "VA", "expr": "Expr", "au": "AU"}
    for task, name in names.items():
        template = run / f"data/affwild2/test_set_templates/CVPR_6th_ABAW_{name}_test_set_sample.txt"
        expected = sum(len(v) for v in read_template(template).values())
        lines = (run / "submissions" / f"{task}.csv").read_text().strip().splitlines()
        assert lines[0].startswith("image_location,")
        assert len(lines) - 1 == expected


def test_every_task_scores_clearly_above_chance(demo_run):
    """Mean over the 5 folds: one fold's few validation videos are too noisy on their own."""
    run, _ = demo_run
    store = featurestore.open(run / "store.zarr")
    for task in ("va", "expr", "au"):
        scores, chances = [], []
        for fold in range(5):
            metrics = json.loads((run / f"seqtrain/main/{task}/fold{fold}/metrics.json").read_text())
            scores.append(metrics["val"]["score"])
            chances.append(_chance(task, store, fold_videos(store, task, fold)[1]))
        assert np.mean(scores) > np.mean(chances) + 0.03, (task, scores, chances)


def test_second_run_resumes(demo_run):
    run, first_seconds = demo_run
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, *DEMO, "--run", str(run)],
                         check=True, cwd=Path(__file__).resolve().parents[1], timeout=600,
                         capture_output=True, text=True)
    log = out.stdout + out.stderr
    for stage in STAGES:
        assert f"stage {stage:<22s} already done" in log, stage
    assert "$ " not in log  # no command was run again
    assert time.perf_counter() - t0 < first_seconds
