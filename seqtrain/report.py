"""Tables (paper's Table 1 per fold, Table 5 ablation) and per-frame plots from a run folder."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from featurestore.abaw import MTL
from featurestore.atomic import atomic_write_text
from featurestore.safeio import read_json
from seqtrain.ablation import ABLATION_DIR, ablation_rows, seeded_ablation_table
from seqtrain.plots import plot_frames
from seqtrain.tasks import TASKS

__all__ = ["collect", "fold_table", "mtl_rows", "smoothing_table", "ablation_table",
           "seeded_ablation", "report"]

log = logging.getLogger(__name__)
TASK_ROWS = (("va", "VA / CCC"), ("expr", "EXPR / F1"), ("au", "AU / F1"))
MTL_ROWS = (("va", "MTL: VA / CCC"), ("expr", "MTL: EXPR / F1"), ("au", "MTL: AU / F1"),
            ("heads", "MTL: sum of the three"), ("score", "MTL: one checkpoint (challenge score)"))
MTL_NOTE = ("MTL rows: each head at its own best epoch (the run's best-<task>/, what `seqtrain "
            "predict --task <task>` uses); the challenge score is the best sum of the three on "
            "one checkpoint (best/).\n")


def collect(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """Every metrics.json under ``run_dir`` (with its folder under the key "dir"); a run with a
    per-video normalisation is listed under the features "<features>+<video_norm>"."""
    runs = []
    for path in sorted(Path(run_dir).rglob("metrics.json")):
        m = read_json(path)
        if "task" in m and "val" in m and "score" in m["val"]:
            norm = m.get("video_norm", "none")
            features = m.get("features", "") if norm == "none" else f"{m.get('features', '')}+{norm}"
            runs.append({**m, "features": features, "dir": str(path.parent)})
    return runs


def _cell(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"


def fold_table(runs: list[dict[str, Any]], features: str, variant: str) -> str:
    """Markdown: rows task / metric, columns fold 0..4 and the mean of the folds present."""
    lines = [f"### {features} / {variant}", "",
             "| task / metric | fold 0 | fold 1 | fold 2 | fold 3 | fold 4 | mean |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for task, label in TASK_ROWS:
        scores = {r["fold"]: r["val"]["score"] for r in runs if r["task"] == task
                  and r["features"] == features and r["variant"] == variant}
        if not scores:
            continue
        cells = [_cell(scores.get(k)) for k in range(5)]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {_cell(float(np.mean(list(scores.values()))))} |")
    return "\n".join(lines) + "\n"


def _mtl_scores(run: dict[str, Any]) -> dict[str, float]:
    """Each head's score at its own best epoch (a run without "heads": its one checkpoint's),
    their sum ("heads") and the one checkpoint's sum ("score")."""
    heads = run.get("heads") or {}
    got = {t: heads[t]["score"] if t in heads else run["val"][t] for t in TASKS if t in run["val"]}
    return {**got, "heads": sum(got.values()), "score": run["val"]["score"]}


def mtl_rows(runs: list[dict[str, Any]], features: str, variant: str) -> str:
    """Markdown rows under ``fold_table``'s header: the multi-task runs' three official scores
    (each head at its own best epoch), their sum and the best sum of one checkpoint (the
    challenge score), per fold and mean."""
    vals = {r["fold"]: _mtl_scores(r) for r in runs if r["task"] == MTL
            and r["features"] == features and r["variant"] == variant}
    lines = []
    for key, label in MTL_ROWS if vals else ():
        scores = {k: v[key] for k, v in vals.items() if key in v}
        cells = [_cell(scores.get(k)) for k in range(5)]
        lines.append(f"| {label} | " + " | ".join(cells)
                     + f" | {_cell(float(np.mean(list(scores.values()))))} |\n")
    return "".join(lines)


def smoothing_table(runs: list[dict[str, Any]]) -> str:
    """Markdown: validation score of each run's best epoch without (K = 0) and with smoothing
    over K frames; empty when no run recorded it."""
    rows = [r for r in runs if r.get("smoothing")]
    if not rows:
        return ""
    ks = sorted({int(k) for r in rows for k in r["smoothing"]})
    lines = ["| run | " + " | ".join(f"K={k}" for k in ks) + " |", "|" + " --- |" * (len(ks) + 1)]
    for r in rows:
        name = f"{r['task']} fold {r['fold']} {r['variant']} / {r['features']}"
        lines.append(f"| {name} | " + " | ".join(_cell(r["smoothing"].get(str(k))) for k in ks) + " |")
    return "\n".join(lines) + "\n"


def ablation_table(runs: list[dict[str, Any]]) -> str:
    """Markdown: rows variant / features, columns VA, Expr, AU scores on fold 0."""
    combos = sorted({(r["variant"], r["features"]) for r in runs if r["fold"] == 0})
    lines = ["| variant / features | VA | Expr | AU |", "| --- | --- | --- | --- |"]
    for variant, features in combos:
        score = {r["task"]: r["val"]["score"] for r in runs if r["fold"] == 0
                 and r["variant"] == variant and r["features"] == features}
        lines.append(f"| {variant} / {features} | "
                     + " | ".join(_cell(score.get(t)) for t in TASKS) + " |")
    return "\n".join(lines) + "\n"


def _in_ablation(run: dict[str, Any], run_dir: Path) -> bool:
    rel = Path(run["dir"]).resolve().relative_to(run_dir.resolve()).parts
    return len(rel) > 1 and rel[0] == ABLATION_DIR


def seeded_ablation(runs: list[dict[str, Any]], run_dir: str | os.PathLike) -> str:
    """The seeded ablation section (runs under ``run_dir/ablation/<row>/seed<k>/``, fold 0,
    with the linear-probe runs of fold 0 as baseline rows); "" when there are none."""
    if not any(_in_ablation(r, Path(run_dir)) for r in runs):
        return ""
    rows = ablation_rows(runs, run_dir, fold=0, baselines=("linear-probe",))  # seqtrain.probe
    return ("## Ablation over seeds (fold 0 = official validation set)\n\n"
            + seeded_ablation_table(rows))


def _plot_examples(runs: list[dict[str, Any]], out: Path) -> list[Path]:
    written = []
    for task in TASKS:
        cands = [r for r in runs if r["task"] == task and (Path(r["dir"]) / "val_example.npz").is_file()]
        if not cands:
            continue
        best = min(cands, key=lambda r: (r["variant"] != "full", r["fold"], r["dir"]))
        ex = np.load(Path(best["dir"]) / "val_example.npz")
        path = out / f"frames_{task}.png"
        plot_frames(task, ex["pred"], ex["true"], ex["valid"], path,
                    title=f"{task}: {ex['video']} (fold {best['fold']}, {best['variant']})")
        written.append(path)
    return written


def report(run_dir: str | os.PathLike) -> str:
    """The report text; also writes results_folds.md (runs outside ``ablation/``),
    results_ablation.md (the seeded table when ``ablation/`` holds runs, else one row per
    features and variant on fold 0 when they differ) and frames_<task>.png into ``run_dir``."""
    run_dir = Path(run_dir)
    runs = collect(run_dir)
    if not runs:
        raise FileNotFoundError(f"{run_dir}: no metrics.json of a seqtrain run under this folder")
    seeded = seeded_ablation(runs, run_dir)
    runs = [r for r in runs if not _in_ablation(r, run_dir)]  # the seeded table has them
    combos = sorted({(r["features"], r["variant"]) for r in runs})
    folds = "## Per-fold validation scores (official per-frame metrics)\n\n" + "\n".join(
        fold_table(runs, f, v) + mtl_rows(runs, f, v) for f, v in combos)
    if any(r["task"] == MTL for r in runs):
        folds += "\n" + MTL_NOTE
    atomic_write_text(run_dir / "results_folds.md", folds)
    text = folds
    smoothing = smoothing_table(runs)
    if smoothing:
        text += "\n## Smoothing at inference (validation score, best epoch)\n\n" + smoothing
    if seeded:
        atomic_write_text(run_dir / "results_ablation.md", seeded)
        text += "\n" + seeded
    elif len(combos) > 1:
        abl = "## Ablation (fold 0 = official validation set)\n\n" + ablation_table(runs)
        atomic_write_text(run_dir / "results_ablation.md", abl)
        text += "\n" + abl
    for path in _plot_examples(runs, run_dir):
        log.info("wrote %s", path)
    return text
