"""Ray shell of sequence training: many ``seqtrain`` fits (tasks x folds) in parallel on Ray,
and the ``seqtrain`` command, whose ``fit`` runs them this way unless ``--no-ray``.

    seqtrain fit --task all --folds all            # one Ray task per run
    python -m jobs.seqfit fit --task va --no-ray   # the same command, in this process

Each run is the plain ``seqtrain.runner.fit_from_dict`` in a ``ray.remote`` task asking for the
run's ``num_threads`` CPUs (and one GPU when its device is CUDA). Ray is reached through
``jobs.raylocal.ray_session``: ``RAY_ADDRESS`` (the demo's head, a real cluster) or a local
loopback-only instance that is shut down afterwards.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from jobs.raylocal import ray_session
from seqtrain.cli import make_cli
from seqtrain.config import FitConfig
from seqtrain.runner import check_runs, fit_from_dict, run_all
from seqtrain.trainer import finished_run

log = logging.getLogger(__name__)


def run_parallel(cfgs: Sequence[FitConfig], *, num_cpus: int | None = None) -> list[dict[str, Any]]:
    """Train every config, each as a Ray task; returns their metrics dicts in order. One run is
    trained in this process (no Ray needed)."""
    check_runs(cfgs)
    done = {i: res for i, res in enumerate(map(finished_run, cfgs)) if res is not None}
    todo = [c for i, c in enumerate(cfgs) if i not in done]  # finished runs need no Ray task
    if len(todo) <= 1:  # at most one to train: here, without Ray
        trained = iter(run_all(todo))
        return [done[i] if i in done else next(trained) for i in range(len(cfgs))]
    with ray_session(num_cpus=num_cpus, log_to_driver=False) as ray:
        gpus = ray.cluster_resources().get("GPU", 0)
        refs = []
        for cfg in todo:
            want_gpu = cfg.device.startswith("cuda")
            if want_gpu and gpus < 1:
                raise ValueError(f"run {cfg.out} asks for device {cfg.device!r} but the Ray "
                                 "cluster has no GPU")
            remote = ray.remote(fit_from_dict).options(
                num_cpus=cfg.num_threads, num_gpus=1 if want_gpu else 0,
                name=f"seqtrain-{cfg.task}-fold{cfg.fold}-seed{cfg.seed}")
            refs.append(remote.remote(cfg.to_dict()))
        log.info("%d seqtrain runs submitted to Ray (%d already finished)", len(refs), len(done))
        trained = iter(ray.get(refs))
        return [done[i] if i in done else next(trained) for i in range(len(cfgs))]


main = make_cli(run_parallel)

if __name__ == "__main__":
    main()
