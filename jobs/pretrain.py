"""Ray Train entry point for MAE pretraining (and the shared Ray Train shell of jobs/finetune.py).

    python -m jobs.pretrain --faces data/faces --out runs/mae --preset tiny --epochs 20
    ray job submit --working-dir . -- python -m jobs.pretrain --faces ... --workers 4
    python -m jobs.pretrain --no-ray ...        # the plain function, no Ray at all

Under Ray the loop runs in ``TorchTrainer`` workers (``prepare_model`` wraps DDP when there are
several, ``prepare_data_loader`` adds the distributed sampler); GPUs are requested only when the
cluster has them. Rank 0 alone writes checkpoints and figures into ``--out``; Ray's own run
files go to ``<out>/ray``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import click

from encoders.presets import PRESETS
from featurestore.clierrors import ErrorCommand

log = logging.getLogger(__name__)


def _worker_loop(config: dict[str, Any]) -> None:
    """Runs inside each Ray Train worker: build the Runtime and call the plain function."""
    import ray.train
    import ray.train.torch as rt
    import torch

    from encoders.training import Runtime

    torch.set_num_threads(max(1, int(config.get("threads", 1))))
    ctx = ray.train.get_context()
    runtime = Runtime(prepare_model=rt.prepare_model, prepare_loader=rt.prepare_data_loader,
                      rank=ctx.get_world_rank(), world_size=ctx.get_world_size(),
                      device=str(rt.get_device()), report=lambda m: ray.train.report(m))
    if config["stage"] == "pretrain":
        from encoders.pretrain import PretrainConfig, pretrain

        pretrain(PretrainConfig(**config["cfg"]), runtime)
    else:
        from encoders.finetune import FinetuneConfig, finetune

        finetune(FinetuneConfig(**config["cfg"]), runtime)


def run_ray_train(stage: str, cfg_dict: dict[str, Any], out: str, workers: int | None,
                  cpus_per_worker: float, address: str | None) -> dict[str, Any]:
    """Run ``stage`` ("pretrain" | "finetune") under ``TorchTrainer``.

    Returns rank 0's ``<out>/history.json`` (Ray Train V2 keeps metrics only with checkpoints,
    and ours live in the out dir): a list of epochs for pretrain, {history, best} for finetune.
    """
    from jobs.raylocal import ray_session

    with ray_session(address) as ray:
        from ray.train import RunConfig, ScalingConfig
        from ray.train.torch import TorchTrainer

        gpus = int(ray.cluster_resources().get("GPU", 0))
        n = workers or max(1, gpus)
        scaling = ScalingConfig(num_workers=n, use_gpu=gpus > 0,
                                resources_per_worker={"CPU": cpus_per_worker,
                                                      **({"GPU": 1} if gpus > 0 else {})})
        storage = (Path(out) / "ray").absolute()
        storage.mkdir(parents=True, exist_ok=True)
        trainer = TorchTrainer(
            _worker_loop,
            train_loop_config={"stage": stage, "cfg": cfg_dict, "threads": cpus_per_worker},
            scaling_config=scaling,
            run_config=RunConfig(name=stage, storage_path=str(storage)))
        log.info("%s on %d Ray Train worker(s), GPUs: %s", stage, n, gpus > 0)
        trainer.fit()
        return _summary(out)


def _summary(out: str) -> Any:
    path = Path(out) / "history.json"
    return json.loads(path.read_text()) if path.is_file() else None


@click.command(cls=ErrorCommand)
@click.option("--faces", required=True, type=click.Path(exists=True, file_okay=False),
              help="Folder holding FER2013 / FER+ / RAF-DB / AffectNet / image folders.")
@click.option("--out", required=True, type=click.Path(file_okay=False))
@click.option("--preset", default="tiny", show_default=True, type=click.Choice(sorted(PRESETS)))
@click.option("--img-size", type=int)
@click.option("--epochs", type=int)
@click.option("--batch-size", type=int, help="Global batch (split over workers).")
@click.option("--lr", type=float)
@click.option("--weight-decay", type=float)
@click.option("--warmup-epochs", type=int)
@click.option("--mask-ratio", type=float)
@click.option("--norm-pix-loss/--no-norm-pix-loss", default=None)
@click.option("--num-workers", type=int, help="DataLoader worker processes.")
@click.option("--seed", type=int)
@click.option("--device", type=str, help="auto | cpu | cuda (plain mode; Ray picks per worker).")
@click.option("--max-steps", type=int, help="Cap on the steps of each epoch.")
@click.option("--workers", type=int, help="Ray Train workers (default: one per GPU, else 1).")
@click.option("--cpus-per-worker", default=1.0, show_default=True, type=float)
@click.option("--address", help="Ray address (default: RAY_ADDRESS, else a local instance).")
@click.option("--no-ray", is_flag=True, help="Call encoders.pretrain.pretrain() directly.")
def main(faces, out, preset, workers, cpus_per_worker, address, no_ray, **options) -> None:
    """Pretrain the face MAE (paper defaults for vit_base, quick ones for tiny)."""
    from encoders.pretrain import PretrainConfig, pretrain
    from featurestore.outputs import check_output

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    given = {k: v for k, v in options.items() if v is not None}
    cfg = PretrainConfig.for_preset(preset, faces=str(faces), out=str(out), **given)
    check_output(cfg.out, {"--faces": cfg.faces}, what="--out")
    if no_ray:
        result = pretrain(cfg)
        history = result["history"]
    else:
        history = run_ray_train("pretrain", cfg.to_dict(), cfg.out, workers, cpus_per_worker,
                                address) or []
    last = history[-1] if history else {}
    click.echo(f"pretrained {len(history)} epoch(s), final loss {last.get('loss', float('nan')):.4f}"
               f"; checkpoint {Path(cfg.out) / 'checkpoint'}")


if __name__ == "__main__":
    main()
