"""Many runs (tasks x folds) sequentially or in parallel on Ray.

Ray is a thin shell: each run is the plain ``fit`` in a ``ray.remote`` task asking for
``num_threads`` CPUs (and one GPU when the run's device is CUDA). With ``RAY_ADDRESS`` set the
runs go to that cluster; otherwise a local in-process Ray is started on loopback and shut down
afterwards. Results land in ``OUT/<task>/fold<K>/``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from seqtrain.config import FitConfig
from seqtrain.trainer import fit

__all__ = ["plan_runs", "run_all", "fit_from_dict"]

log = logging.getLogger(__name__)
ALL_TASKS = ("va", "expr", "au")


def plan_runs(tasks: Sequence[str], folds: Sequence[int], out: str | os.PathLike,
              **fit_kwargs: Any) -> list[FitConfig]:
    """One FitConfig per (task, fold), each writing to ``out/<task>/fold<K>``."""
    return [FitConfig(task=t, fold=k, out=str(Path(out) / t / f"fold{k}"), **fit_kwargs)
            for t in tasks for k in folds]


def fit_from_dict(cfg: dict[str, Any]) -> dict[str, Any]:
    """``fit`` taking and returning plain dicts (what crosses the Ray boundary)."""
    return fit(FitConfig.from_dict(cfg))


def _init_ray(num_cpus: int | None):
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # local Ray binds loopback
    import ray

    if ray.is_initialized():
        return ray, False
    if os.environ.get("RAY_ADDRESS"):
        ray.init(address=os.environ["RAY_ADDRESS"], log_to_driver=False)
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
    return ray, True


def _run_ray(cfgs: Sequence[FitConfig], num_cpus: int | None) -> list[dict[str, Any]]:
    ray, started = _init_ray(num_cpus)
    try:
        gpus = ray.cluster_resources().get("GPU", 0)
        refs = []
        for cfg in cfgs:
            want_gpu = cfg.device.startswith("cuda")
            if want_gpu and gpus < 1:
                raise ValueError(f"run {cfg.out} asks for device {cfg.device!r} but the Ray "
                                 "cluster has no GPU")
            remote = ray.remote(fit_from_dict).options(
                num_cpus=cfg.num_threads, num_gpus=1 if want_gpu else 0,
                name=f"seqtrain-{cfg.task}-fold{cfg.fold}")
            refs.append(remote.remote(cfg.to_dict()))
        return ray.get(refs)
    finally:
        if started:
            ray.shutdown()


def run_all(cfgs: Sequence[FitConfig], *, use_ray: bool = True,
            num_cpus: int | None = None) -> list[dict[str, Any]]:
    """Train every config; returns their metrics dicts in order. Finished runs are not retrained
    and interrupted ones resume (see ``fit``)."""
    outs = [c.out for c in cfgs]
    if len(set(outs)) != len(outs):
        raise ValueError("two runs share an output folder; give each (task, fold) its own --out")
    if not use_ray or len(cfgs) == 1:
        return [fit(c) for c in cfgs]
    return _run_ray(cfgs, num_cpus)

