"""Many runs (tasks x folds): their configs, and the plain in-process loop over them.

Results land in ``OUT/<task>/fold<K>/``. The parallel version (each run a Ray task) is the Ray
shell ``jobs.seqfit``; both take the same configs and return the same list of metrics dicts.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from featurestore.abaw import TASKS
from seqtrain.config import FitConfig
from seqtrain.trainer import fit

__all__ = ["ALL_TASKS", "RunAll", "check_runs", "fit_from_dict", "plan_runs", "run_all"]

ALL_TASKS = TASKS
RunAll = Callable[[Sequence[FitConfig]], list[dict[str, Any]]]  # configs -> metrics, in order


def plan_runs(tasks: Sequence[str], folds: Sequence[int], out: str | os.PathLike,
              seeds: Sequence[int] | None = None, **flat: Any) -> list[FitConfig]:
    """One FitConfig per (task, fold), each writing to ``out/<task>/fold<K>``; with ``seeds``,
    one per (seed, task, fold) writing to ``out/seed<S>/<task>/fold<K>`` (one driver for a
    seeded ablation row: its Ray workers serve all the row's runs). ``flat``: the other fields
    by flat name (``window=100``, see ``FitConfig.from_flat``)."""
    from featurestore.outputs import check_output

    check_output(out, {"--store": flat.get("store")}, what="--out")
    if seeds is None:
        return [FitConfig.from_flat(task=t, fold=k, out=str(Path(out) / t / f"fold{k}"), **flat)
                for t in tasks for k in folds]
    if "seed" in flat:
        raise ValueError("give one seed or a list of seeds, not both")
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct and at least one, got {list(seeds)}")
    return [FitConfig.from_flat(task=t, fold=k, seed=s,
                                out=str(Path(out) / f"seed{s}" / t / f"fold{k}"), **flat)
            for s in seeds for t in tasks for k in folds]


def check_runs(cfgs: Sequence[FitConfig]) -> None:
    """ValueError unless every run has its own output folder."""
    outs = [c.out for c in cfgs]
    if len(set(outs)) != len(outs):
        raise ValueError("two runs share an output folder; give each (task, fold) its own --out")


def fit_from_dict(cfg: dict[str, Any]) -> dict[str, Any]:
    """``fit`` taking and returning plain dicts (what crosses a process boundary)."""
    return fit(FitConfig.from_dict(cfg))


def run_all(cfgs: Sequence[FitConfig]) -> list[dict[str, Any]]:
    """Train every config in this process, one after the other; returns their metrics dicts in
    order. Finished runs are not retrained and interrupted ones resume (see ``fit``)."""
    check_runs(cfgs)
    return [fit(c) for c in cfgs]
