"""The ``seqtrain`` command: fit, probe, predict, report (thin: options -> configs -> one call)."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from featurestore.errors import FeatureStoreError
from seqtrain.runner import ALL_TASKS, plan_runs, run_all

DEFAULT_STORE = "runs/demo/store.zarr"


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log progress at INFO level.")
def main(verbose: bool) -> None:
    """TCN -> Transformer -> MLP heads for ABAW VA / EXPR / AU on feature-store features."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(message)s")


def _require_store(store: str) -> None:
    if not Path(store).exists() and "://" not in store:
        hint = "run `make demo` first or pass --store" if store == DEFAULT_STORE else "check --store"
        raise click.ClickException(f"no feature store at {store}: {hint}")


@main.command()
@click.option("--task", type=click.Choice(["va", "expr", "au", "all"]), default="va", show_default=True)
@click.option("--fold", type=click.IntRange(0, 4), default=0, show_default=True)
@click.option("--folds", "folds_opt", type=click.Choice(["all"]), default=None, help="Run folds 0..4.")
@click.option("--store", default=DEFAULT_STORE, show_default=True)
@click.option("--features", default="mae-ft", show_default=True)
@click.option("--out", default="runs/demo/seqtrain/fit", show_default=True,
              help="Run folder; results land in OUT/<task>/fold<K>/.")
@click.option("--no-tcn", is_flag=True)
@click.option("--no-transformer", is_flag=True)
@click.option("--preset", type=click.Choice(["paper", "tiny"]), default="paper", show_default=True)
@click.option("--epochs", type=int, default=20, show_default=True)
@click.option("--window", type=int, default=300, show_default=True)
@click.option("--stride", type=int, default=200, show_default=True)
@click.option("--lr", type=float, default=3e-5, show_default=True)
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--patience", type=int, default=5, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=int, default=1, show_default=True, help="Torch threads (and Ray CPUs) per run.")
@click.option("--device", default="cpu", show_default=True)
@click.option("--no-ray", is_flag=True, help="Run sequentially in this process.")
def fit(task, fold, folds_opt, store, features, out, no_tcn, no_transformer, preset, epochs, window,
        stride, lr, batch_size, patience, seed, threads, device, no_ray) -> None:
    """Train (or resume, or read back) runs of one or all tasks and folds."""
    _require_store(store)
    tasks = ALL_TASKS if task == "all" else (task,)
    folds = range(5) if folds_opt == "all" else (fold,)
    try:
        cfgs = plan_runs(tasks, folds, out, store=store, features=features, preset=preset,
                         use_tcn=not no_tcn, use_transformer=not no_transformer, epochs=epochs,
                         window=window, stride=stride, lr=lr, batch_size=batch_size,
                         patience=patience, seed=seed, num_threads=threads, device=device)
    except ValueError as err:
        raise click.BadParameter(str(err)) from err
    try:
        results = run_all(cfgs, use_ray=not no_ray)
    except (ValueError, FeatureStoreError) as err:  # bad config or data: a message, not a traceback
        raise click.ClickException(str(err)) from err
    for cfg, res in zip(cfgs, results, strict=True):
        click.echo(f"{cfg.task} fold {cfg.fold} ({res['variant']}, {cfg.features}): val score "
                   f"{res['val']['score']:.4f} at epoch {res['best_epoch']} -> {cfg.out}")


@main.command()
@click.option("--task", type=click.Choice(["va", "expr", "au", "all"]), default="all", show_default=True)
@click.option("--fold", type=click.IntRange(0, 4), default=0, show_default=True)
@click.option("--store", default=DEFAULT_STORE, show_default=True)
@click.option("--features", default="mae-ft", show_default=True)
@click.option("--out", default="runs/demo/seqtrain/probe", show_default=True,
              help="Results land in OUT/<task>/fold<K>/metrics.json.")
def probe(task, fold, store, features, out) -> None:
    """Per-frame linear probe baseline (ridge / logistic regression on standardised features)."""
    from seqtrain.config import FitConfig
    from seqtrain.probe import run_probe
    from seqtrain.trainer import load_fold

    _require_store(store)
    for t in ALL_TASKS if task == "all" else (task,):
        try:
            train, val = load_fold(FitConfig(task=t, fold=fold, store=store, features=features))
            res = run_probe(t, train, val, Path(out) / t / f"fold{fold}", fold=fold,
                            features=features)
        except (ValueError, FeatureStoreError) as err:
            raise click.ClickException(str(err)) from err
        click.echo(f"{t} fold {fold} (linear probe, {features}): val score {res['val']['score']:.4f}")


@main.command()
@click.option("--task", type=click.Choice(["va", "expr", "au"]), required=True)
@click.option("--checkpoint", required=True, help="A run's best/ folder.")
@click.option("--store", default=DEFAULT_STORE, show_default=True)
@click.option("--template", required=True, help="The official test template of the task.")
@click.option("--out", required=True, help="Submission file to write.")
@click.option("--features", default=None, help="Feature set (default: the checkpoint's).")
@click.option("--device", default="cpu", show_default=True)
def predict(task, checkpoint, store, template, out, features, device) -> None:
    """Write the official submission file of TASK for every template frame."""
    from seqtrain.predict import predict as run_predict

    _require_store(store)
    path = run_predict(task, checkpoint, store, template, out, features, device=device)
    click.echo(f"wrote {path}")


@main.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
def report(run_dir) -> None:
    """Per-fold and ablation tables (markdown) and per-frame plots of RUN_DIR."""
    from seqtrain.report import report as run_report

    try:
        click.echo(run_report(run_dir))
    except FileNotFoundError as err:
        raise click.ClickException(str(err)) from err
