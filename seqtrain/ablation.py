"""The seeded ablation table (the paper's Table 5 with spreads): mean +- std over seeds per row.

Runs of one ablation row live under ``<run_dir>/ablation/<row>/seed<k>/<task>/fold<K>/`` (what
``jobs/demo.py`` writes; any row name works). Each cell is the mean +- sample std (ddof=1) of
the validation score over the row's seeds. A row is marked as differing from the reference row
(``full``) only when the gap of the means exceeds the spread of both rows:

    |mean(row) - mean(full)| > max(std(row), std(full))

Anything smaller is reported as "~" (within the seed-to-seed spread). Baseline rows without a
seed (the deterministic linear probe) enter with n=1 and std 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from seqtrain.tasks import TASKS

__all__ = ["ABLATION_DIR", "REFERENCE", "mean_std", "differs", "ablation_rows",
           "seeded_ablation_table", "ROW_ORDER"]

ABLATION_DIR = "ablation"
REFERENCE = "full"
# rows in the paper's Table 5 order (then a frame-level row); other rows follow by name
ROW_ORDER = ("full", "no-tcn", "no-transformer", "frame-level", "no-finetune")
Stats = tuple[float, float, int]  # mean, sample std (0 for one value), n


def mean_std(values: Sequence[float]) -> Stats:
    """Mean, sample standard deviation (ddof=1; 0 for a single value) and count."""
    if not values:
        raise ValueError("mean_std needs at least one value")
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return mean, std, n


def differs(row: Stats, ref: Stats) -> int:
    """+1 / -1 when ``row``'s mean is above / below ``ref``'s by more than the larger of the two
    standard deviations; 0 when the gap is within the spread."""
    gap = row[0] - ref[0]
    if abs(gap) <= max(row[1], ref[1]):
        return 0
    return 1 if gap > 0 else -1


def ablation_rows(runs: list[dict[str, Any]], run_dir: str | Path, fold: int = 0,
                  baselines: Sequence[str] = ()) -> dict[str, dict[str, Any]]:
    """Row name -> {"label", "scores": {task: [score per seed]}} from ``runs`` (report.collect)
    under ``run_dir/ablation/``, plus one row per run on ``fold`` whose variant is in
    ``baselines`` (named "<variant> / <features>")."""
    root = Path(run_dir).resolve()
    rows: dict[str, dict[str, Any]] = {}
    for r in runs:
        if r["fold"] != fold:
            continue
        rel = Path(r["dir"]).resolve().relative_to(root).parts
        if len(rel) >= 3 and rel[0] == ABLATION_DIR and rel[2].startswith("seed"):
            name = rel[1]
        elif r["variant"] in baselines:
            name = f"{r['variant']} / {r['features']}"
        else:
            continue
        row = rows.setdefault(name, {"label": f"{r['variant']} / {r['features']}", "scores": {}})
        row["scores"].setdefault(r["task"], []).append(float(r["val"]["score"]))
    return rows


def _cell(scores: list[float] | None, ref: list[float] | None, is_ref: bool) -> str:
    if not scores:
        return "-"
    stats = mean_std(scores)
    text = f"{stats[0]:.4f} ± {stats[1]:.4f}"
    if is_ref or not ref:
        return text
    mark = differs(stats, mean_std(ref))
    return text + {1: " (> full)", -1: " (< full)", 0: " (~)"}[mark]


def seeded_ablation_table(rows: dict[str, dict[str, Any]], reference: str = REFERENCE) -> str:
    """Markdown: one row per ablation row (reference first, then :data:`ROW_ORDER`), columns seeds, VA, Expr, AU as
    mean ± std, each non-reference cell marked "> full", "< full" or "~" by :func:`differs`."""
    ref = rows.get(reference, {}).get("scores", {})
    rank = [reference, *ROW_ORDER]
    order = sorted(rows, key=lambda name: (rank.index(name) if name in rank else len(rank), name))
    lines = ["| row (variant / features) | seeds (VA/Expr/AU) | VA | Expr | AU |",
             "| --- | ---: | --- | --- | --- |"]
    for name in order:
        row = rows[name]
        seeds = "/".join(str(len(row["scores"].get(t, []))) for t in TASKS)
        label = name if name == row["label"] else f"{name} ({row['label']})"
        cells = [_cell(row["scores"].get(t), ref.get(t), name == reference) for t in TASKS]
        lines.append(f"| {label} | {seeds} | " + " | ".join(cells) + " |")
    rule = (f"Mean ± sample std over seeds. A row is marked > or < {reference} only when "
            f"|Δmean| > max(std of the row, std of {reference}); ~ is within the seed spread.")
    return "\n".join(lines) + "\n\n" + rule + "\n"
