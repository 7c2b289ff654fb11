"""The ``seqtrain`` command: fit, probe, predict, report (thin: options -> configs -> one call).

`make_cli` builds the command around a function that trains a list of runs. ``main`` here runs
them one after the other in this process; the installed ``seqtrain`` command is
``jobs.seqfit.main``, the same command with runs in parallel on Ray (this package never
imports Ray).
"""

from __future__ import annotations

import logging
from pathlib import Path

import click

from featurestore.abaw import MTL, TASKS
from featurestore.clierrors import ErrorGroup
from featurestore.errors import FeatureStoreError
from seqtrain.config import (
    DEFAULT_RUNS,
    DEFAULT_STORE,
    FIT_TASKS,
    MODEL_PRESETS,
    MTL_LOSSES,
    VIDEO_NORMS,
    FitConfig,
    flat_defaults,
)
from seqtrain.runner import ALL_TASKS, RunAll, plan_runs, run_all

# option -> the FitConfig field (flat name, see FitConfig.from_flat) it sets; every such
# option's default is the field's default in the config tree (tests/test_config.py checks)
FIT_OPTIONS = {"fold": "fold", "store": "store", "features": "features", "preset": "preset",
               "epochs": "epochs", "window": "window", "stride": "stride", "lr": "lr",
               "batch_size": "batch_size", "patience": "patience", "seed": "seed",
               "threads": "num_threads", "device": "device", "smooth": "smooth",
               "mtl_loss": "mtl_loss", "video_norm": "video_norm"}
FIT_FLAGS = {"no_tcn": "use_tcn", "no_transformer": "use_transformer"}  # flag on -> field False
_DEFAULTS = flat_defaults()
DEFAULT_PROBES = DEFAULT_RUNS.rsplit("/", 1)[0] + "/probe"  # `seqtrain probe` results
FEATURES_HELP = "Feature set; several joined by commas (mae-ft,mae-pt) are concatenated per frame."
VIDEO_NORM_HELP = ("Per-video normalisation of the features (offline: needs the whole video): "
                   "none; center = minus the video's mean feature; both = [features, centred].")


def _default(option: str):
    return _DEFAULTS[FIT_OPTIONS[option]]


def _require_store(store: str) -> None:
    if not Path(store).exists() and "://" not in store:
        hint = "run `make demo` first or pass --store" if store == DEFAULT_STORE else "check --store"
        raise click.ClickException(f"no feature store at {store}: {hint}")


@click.command()
@click.option("--task", type=click.Choice([*FIT_TASKS, "all"]), default="va", show_default=True,
              help=f"One task, all = {','.join(TASKS)} (one model each), or {MTL} (one model, "
                   "three heads).")
@click.option("--fold", type=click.IntRange(0, 4), default=_default("fold"), show_default=True)
@click.option("--folds", "folds_opt", type=click.Choice(["all"]), default=None, help="Run folds 0..4.")
@click.option("--store", default=_default("store"), show_default=True)
@click.option("--features", default=_default("features"), show_default=True, help=FEATURES_HELP)
@click.option("--out", default=DEFAULT_RUNS, show_default=True,
              help="Run folder; results land in OUT/<task>/fold<K>/.")
@click.option("--no-tcn", is_flag=True)
@click.option("--no-transformer", is_flag=True)
@click.option("--preset", type=click.Choice(sorted(MODEL_PRESETS)), default=_default("preset"),
              show_default=True)
@click.option("--epochs", type=int, default=_default("epochs"), show_default=True)
@click.option("--window", type=int, default=_default("window"), show_default=True)
@click.option("--stride", type=int, default=_default("stride"), show_default=True)
@click.option("--lr", type=float, default=_default("lr"), show_default=True)
@click.option("--batch-size", type=int, default=_default("batch_size"), show_default=True)
@click.option("--patience", type=int, default=_default("patience"), show_default=True)
@click.option("--seed", type=int, default=_default("seed"), show_default=True)
@click.option("--seeds", "seeds_opt", default=None, metavar="S1,S2,...",
              help="Several seeds in one command (instead of --seed): runs land in "
                   "OUT/seed<S>/<task>/fold<K>/.")
@click.option("--threads", type=int, default=_default("threads"), show_default=True,
              help="Torch threads (and Ray CPUs) per run.")
@click.option("--device", default=_default("device"), show_default=True)
@click.option("--smooth", type=int, default=_default("smooth"), show_default=True,
              help="Centred moving average over K frames of the predictions (0: off).")
@click.option("--video-norm", type=click.Choice(VIDEO_NORMS), default=_default("video_norm"),
              show_default=True, help=VIDEO_NORM_HELP)
@click.option("--mtl-loss", type=click.Choice(MTL_LOSSES), default=_default("mtl_loss"),
              show_default=True, help=f"{MTL}: the plain sum of the three losses, or each weighted "
              "inversely to its gradient norm on the shared layers at initialisation.")
@click.option("--no-ray", is_flag=True, help="Run sequentially in this process.")
@click.pass_obj
def fit(parallel: RunAll | None, task, fold, folds_opt, out, no_ray, seeds_opt, **options) -> None:
    """Train (or resume, or read back) runs of one or all tasks, folds and seeds."""
    _require_store(options["store"])
    tasks = ALL_TASKS if task == "all" else (task,)
    folds = range(5) if folds_opt == "all" else (fold,)
    flat = {FIT_OPTIONS[k]: v for k, v in options.items() if k in FIT_OPTIONS}
    flat.update({FIT_FLAGS[k]: not v for k, v in options.items() if k in FIT_FLAGS})
    seeds = _seeds(seeds_opt)
    if seeds is not None:
        if click.get_current_context().get_parameter_source("seed").name != "DEFAULT":
            raise click.UsageError("give --seed or --seeds, not both")
        del flat["seed"]
    try:
        cfgs = plan_runs(tasks, folds, out, seeds, **flat)
    except ValueError as err:
        if isinstance(err, FeatureStoreError):  # e.g. --out overlapping --store: not a usage error
            raise
        raise click.BadParameter(str(err)) from err
    try:
        results = (parallel or run_all)(cfgs) if not no_ray else run_all(cfgs)
    except (ValueError, FeatureStoreError) as err:  # bad config or data: a message, not a traceback
        raise click.ClickException(str(err)) from err
    for cfg, res in zip(cfgs, results, strict=True):
        parts = " + ".join(f"{t} {res['val'][t]:.4f}" for t in TASKS if t in res["val"])  # mtl
        heads = ", ".join(f"{t} {h['score']:.4f} (epoch {h['epoch']})"
                          for t, h in res.get("heads", {}).items())  # mtl: best-<task>/
        click.echo(f"{cfg.task} fold {cfg.fold} ({res['variant']}, {cfg.data.features}): val score "
                   f"{res['val']['score']:.4f}{f' (= {parts})' if parts else ''} at epoch "
                   f"{res['best_epoch']}{f'; each head at its best: {heads}' if heads else ''}"
                   f" -> {cfg.out}")


def _seeds(text: str | None) -> list[int] | None:
    """``--seeds 0,1,2`` -> [0, 1, 2] (None when not given); a usage error names a bad list."""
    if text is None:
        return None
    try:
        seeds = [int(s) for s in text.split(",")]
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a list of integers like 0,1,2",
                                 param_hint="--seeds") from None
    if len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise click.BadParameter(f"{text!r}: seeds must be distinct and >= 0", param_hint="--seeds")
    return seeds


@click.command()
@click.option("--task", type=click.Choice([*TASKS, "all"]), default="all", show_default=True)
@click.option("--fold", type=click.IntRange(0, 4), default=_default("fold"), show_default=True)
@click.option("--store", default=_default("store"), show_default=True)
@click.option("--features", default=_default("features"), show_default=True, help=FEATURES_HELP)
@click.option("--out", default=DEFAULT_PROBES, show_default=True,
              help="Results land in OUT/<task>/fold<K>/metrics.json.")
@click.option("--video-norm", type=click.Choice(VIDEO_NORMS), default=_default("video_norm"),
              show_default=True, help=VIDEO_NORM_HELP)
def probe(task, fold, store, features, out, video_norm) -> None:
    """Per-frame linear probe baseline (ridge / logistic regression on standardised features)."""
    from seqtrain.probe import run_probe
    from seqtrain.trainer import load_fold

    _require_store(store)
    for t in ALL_TASKS if task == "all" else (task,):
        try:
            train, val = load_fold(FitConfig.from_flat(task=t, fold=fold, store=store,
                                                       features=features))
            res = run_probe(t, train, val, Path(out) / t / f"fold{fold}", fold=fold,
                            features=features, video_norm=video_norm)
        except (ValueError, FeatureStoreError) as err:
            raise click.ClickException(str(err)) from err
        norm = "" if video_norm == "none" else f", video norm {video_norm}"
        click.echo(f"{t} fold {fold} (linear probe, {features}{norm}): val score "
                   f"{res['val']['score']:.4f}")


@click.command()
@click.option("--task", type=click.Choice(FIT_TASKS), required=True,
              help=f"The submission to write; an {MTL} checkpoint writes va, expr, au or the "
                   f"one multi-task file ({MTL}).")
@click.option("--checkpoint", required=True,
              help="A run's best/ folder, or the run folder (an mtl run's va, expr or au file: "
                   "its best-<task>/).")
@click.option("--store", default=_default("store"), show_default=True)
@click.option("--template", required=True, help="The official test template of the task.")
@click.option("--out", required=True, help="Submission file to write.")
@click.option("--features", default=None, help="Feature set(s) (default: the checkpoint's).")
@click.option("--device", default=_default("device"), show_default=True)
@click.option("--smooth", type=int, default=None,
              help="Moving average over K frames (default: the checkpoint's --smooth; 0: off).")
def predict(task, checkpoint, store, template, out, features, device, smooth) -> None:
    """Write the official submission file of TASK for every template frame."""
    from seqtrain.predict import predict as run_predict

    _require_store(store)
    path = run_predict(task, checkpoint, store, template, out, features, device=device,
                       smooth=smooth)
    click.echo(f"wrote {path}")


@click.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
def report(run_dir) -> None:
    """Per-fold and ablation tables (markdown) and per-frame plots of RUN_DIR."""
    from seqtrain.report import report as run_report

    try:
        click.echo(run_report(run_dir))
    except FileNotFoundError as err:
        raise click.ClickException(str(err)) from err


def make_cli(parallel: RunAll | None = None) -> click.Group:
    """The ``seqtrain`` command; ``fit`` trains its runs with ``parallel`` (default: in this
    process, one after the other) unless ``--no-ray``."""

    @click.group(name="seqtrain", cls=ErrorGroup, commands=[fit, probe, predict, report],
                 context_settings={"obj": parallel})
    @click.option("-v", "--verbose", is_flag=True, help="Log progress at INFO level.")
    def cli(verbose: bool) -> None:
        """TCN -> Transformer -> MLP heads for ABAW VA / EXPR / AU on feature-store features."""
        logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                            format="%(asctime)s %(name)s %(message)s")

    return cli


main = make_cli()

if __name__ == "__main__":
    main()
