"""Ray Train entry point for EXPR fine-tuning of the MAE encoder.

    python -m jobs.finetune --affwild2 data/affwild2 --pretrained runs/mae/checkpoint \
        --out runs/expr --preset tiny --epochs 5
    python -m jobs.finetune --no-ray ...        # the plain function, no Ray at all

Same Ray Train shell as jobs/pretrain.py; rank 0 validates and writes ``best/`` and ``last/``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import click

from encoders.presets import PRESETS
from featurestore.clierrors import ErrorCommand
from jobs.pretrain import run_ray_train


@click.command(cls=ErrorCommand)
@click.option("--affwild2", required=True, type=click.Path(exists=True, file_okay=False),
              help="Aff-Wild2 root (annotations + cropped_aligned*).")
@click.option("--out", required=True, type=click.Path(file_okay=False))
@click.option("--pretrained", type=click.Path(exists=True, file_okay=False),
              help="MAE checkpoint folder (default: train the preset from scratch).")
@click.option("--frames", type=click.Path(exists=True), help="LMDB frame pack (default: jpg tree).")
@click.option("--preset", default="tiny", show_default=True, type=click.Choice(sorted(PRESETS)))
@click.option("--img-size", type=int)
@click.option("--epochs", type=int)
@click.option("--batch-size", type=int, help="Global batch (split over workers).")
@click.option("--lr", type=float)
@click.option("--weight-decay", type=float)
@click.option("--warmup-epochs", type=int)
@click.option("--dropout", type=float)
@click.option("--layer-decay", type=float, help="Layer-wise LR decay (1: one LR for all layers).")
@click.option("--balanced-loss/--no-balanced-loss", default=None,
              help="Class-weighted cross-entropy (favours macro F1).")
@click.option("--num-workers", type=int, help="DataLoader worker processes.")
@click.option("--seed", type=int)
@click.option("--device", type=str, help="auto | cpu | cuda (plain mode; Ray picks per worker).")
@click.option("--max-frames-per-video", type=int)
@click.option("--max-val-frames-per-video", type=int)
@click.option("--max-steps", type=int, help="Cap on the steps of each epoch.")
@click.option("--workers", type=int, help="Ray Train workers (default: one per GPU, else 1).")
@click.option("--cpus-per-worker", default=1.0, show_default=True, type=float)
@click.option("--address", help="Ray address (default: RAY_ADDRESS, else a local instance).")
@click.option("--no-ray", is_flag=True, help="Call encoders.finetune.finetune() directly.")
def main(affwild2, out, preset, workers, cpus_per_worker, address, no_ray, **options) -> None:
    """Fine-tune the MAE encoder on Aff-Wild2 EXPR; keeps the best macro-F1 checkpoint."""
    from encoders.finetune import FinetuneConfig, finetune
    from featurestore.outputs import check_output

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    given = {k: v for k, v in options.items() if v is not None}
    cfg = FinetuneConfig.for_preset(preset, affwild2=str(affwild2), out=str(out), **given)
    check_output(cfg.out, {"--affwild2": cfg.affwild2, "--pretrained": cfg.pretrained,
                           "--frames": cfg.frames}, what="--out")
    if no_ray:
        best = finetune(cfg)
        best = {"val_macro_f1": best["best_macro_f1"], "epoch": best["best_epoch"]}
    else:
        summary = run_ray_train("finetune", cfg.to_dict(), cfg.out, workers, cpus_per_worker,
                                address) or {}
        best = summary.get("best") or {}
    click.echo(f"best val macro F1 {best.get('val_macro_f1', float('nan')):.4f} at epoch "
               f"{best.get('epoch')}; checkpoint {Path(cfg.out) / 'best'}")


if __name__ == "__main__":
    main()
