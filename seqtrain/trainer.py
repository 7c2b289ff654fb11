"""One training run (task, fold, feature set) with pytorch-ignite.

``fit(cfg)``: a short step function; handlers do the rest: per-epoch window re-jitter and
reseeding, LR schedule, evaluation of every window of every val video stitched per frame and
scored with the official metric, best checkpoint, resume state, early stopping, progress bar.
A rerun of the same ``out`` folder continues after the last finished epoch; a finished run
returns its ``metrics.json`` without retraining.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events
from torch.utils.data import DataLoader

from featurestore.abaw import TASKS
from featurestore.atomic import atomic_write, atomic_write_json
from featurestore.safeio import read_json
from seqtrain.checkpoint import save_best
from seqtrain.config import SMOOTH_CHOICES, FitConfig, ModelConfig
from seqtrain.data import VideoSeq, WindowDataset, load_videos, normalize_videos
from seqtrain.evaluate import evaluate_videos, smoothing_scores
from seqtrain.folds import fold_videos
from seqtrain.model import SeqModel
from seqtrain.plots import plot_curve
from seqtrain.tasks import MultiTask, get_task
from trainkit.checkpoint import CONFIG
from trainkit.checkpoint import read as read_checkpoint
from trainkit.handlers import attach_progress, attach_tensorboard
from trainkit.schedule import warmup_cosine_scheduler
from trainkit.state import (
    load_train_state,
    restore_train_state,
    save_train_state,
    state_extra,
    train_state,
)
from trainkit.step import train_step

__all__ = ["FitConfig", "finished_run", "fit", "load_fold"]

log = logging.getLogger(__name__)
STATE, METRICS, CURVE, EXAMPLE, BEST = "state.pt", "metrics.json", "curve.png", "val_example.npz", "best"
BALANCE_BATCHES = 8  # batches that measure the mtl tasks' gradient norms at initialisation


def load_fold(cfg: FitConfig) -> tuple[list[VideoSeq], list[VideoSeq]]:
    """Train and validation videos of the run's fold, bulk-loaded from the store."""
    import featurestore

    store = featurestore.open(cfg.data.store)
    train, val = fold_videos(store, cfg.task, cfg.fold)
    if not train or not val:
        raise ValueError(f"{cfg.data.store}: fold {cfg.fold} of task {cfg.task} has {len(train)} "
                         f"train and {len(val)} validation videos; both must be non-empty")
    return (load_videos(store, cfg.data.features, train, cfg.task),
            load_videos(store, cfg.data.features, val, cfg.task))


def _results(cfg: FitConfig, book: dict[str, Any], task, finished: bool) -> dict[str, Any]:
    best = book["best"]
    res = {"task": cfg.task, "fold": cfg.fold, "features": cfg.data.features,
           "video_norm": cfg.data.video_norm, "variant": cfg.variant, "smooth": cfg.smooth, "val": best.get("val", {}),
           "best_epoch": best.get("epoch", 0), "smoothing": best.get("smoothing", {}),
           "history": book["history"], "config": cfg.to_dict(), "finished": finished}
    if isinstance(task, MultiTask):  # each head's own best epoch (best-<task>/) and the weights
        res["heads"] = dict(book["heads"])
        res["loss_weights"] = dict(zip([t.name for t in task.parts], task.weights, strict=True))
    return res


def _keep_heads(cfg: FitConfig, task: MultiTask, model: SeqModel, epoch: int,
                scores: dict[str, float], heads: dict[str, Any]) -> bool:
    """Save the model as ``best-<task>/`` for every head that beat its own best score (what
    ``seqtrain predict --task <task>`` of this run uses); True when one did."""
    gained = False
    for t in task.parts:
        if t.name not in heads or scores[t.name] > heads[t.name]["score"]:
            save_best(Path(cfg.out) / f"{BEST}-{t.name}", model, cfg,
                      {"epoch": epoch, "val": scores, "head": t.name})
            heads[t.name], gained = {"epoch": epoch, "score": scores[t.name]}, True
    return gained


def _same_config(saved: dict[str, Any] | str | None, cfg: FitConfig) -> bool:
    """Whether a config saved by a run (dict, or its JSON; nested or the older flat form) is
    ``cfg``, wherever the run's folder is now: ``out`` says where a run is, not what it is, so a
    run folder copied or moved elsewhere is still that run (the demo's ablation reuses main's
    fold-0 runs this way)."""
    if isinstance(saved, str):
        saved = json.loads(saved)
    try:
        return saved is not None and replace(FitConfig.from_dict(saved), out=cfg.out) == cfg
    except (TypeError, ValueError):
        return False


def _same_network(best: Path, cfg: FitConfig) -> bool:
    """Whether the best checkpoint in ``best`` (when there is one) is the network ``cfg`` builds
    today: a preset's sizes may have changed since the run was trained under the same FitConfig."""
    if not (best / CONFIG).is_file():
        return True
    saved = ModelConfig.from_dict(read_checkpoint(best).config)
    return saved == cfg.model_config(saved.in_dim, saved.out_dim)


def _save_example(path: Path, task, video: VideoSeq, frames: np.ndarray) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, video=video.name, pred=task.to_submission(frames), true=video.labels,
                     valid=video.valid)
    atomic_write(path, write)


def _setup(cfg: FitConfig, train: Sequence[VideoSeq]):
    torch.manual_seed(cfg.seed)
    task = get_task(cfg.task)
    model = SeqModel(cfg.model_config(train[0].feats.shape[1], task.out_dim))
    model.input_norm.fit(v.feats for v in train)  # standardise inputs with training statistics
    model = model.to(cfg.device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    ds = WindowDataset(train, cfg.data.window, cfg.data.stride, jitter=cfg.data.jitter, seed=cfg.seed)
    sampler = ds.loader_sampler()  # featurestore.sampler order from (seed, epoch)
    loader = DataLoader(ds, batch_size=cfg.data.batch_size, sampler=sampler, drop_last=False)
    steps = len(loader)
    sched = warmup_cosine_scheduler(opt, cfg.optim.warmup_epochs * steps, cfg.optim.epochs * steps)
    if isinstance(task, MultiTask) and cfg.optim.mtl_loss == "balanced":
        task = task.balanced(_grad_norms(task, model, ds, sampler, cfg.data.batch_size, cfg.device))
        log.info("%s: loss weights %s", cfg.out, dict(zip([t.name for t in task.parts], task.weights, strict=True)))
    return task, model, opt, sched, ds, sampler, loader


def _grad_norms(task: MultiTask, model: SeqModel, ds: WindowDataset, sampler,
                batch_size: int, device: str) -> list[float]:
    """Mean norm, over the first BALANCE_BATCHES batches of epoch 0 holding the task's frames,
    of each task's loss gradient on the shared weights (all but the output layer, whose rows are
    per task) of the model at initialisation; a task without frames there gets the others'
    mean. Eval mode and no loader: it draws no random number, so a resumed run computes the
    same values."""
    last = {id(p) for p in model.head[-1].parameters()}
    shared = [p for p in model.parameters() if id(p) not in last]
    order = list(iter(sampler))[: BALANCE_BATCHES * batch_size]
    total, count = np.zeros(len(task.parts)), np.zeros(len(task.parts))
    model.eval()
    for start in range(0, len(order), batch_size):
        feats, labels, valid, pad = (torch.stack(x).to(device) for x in zip(
            *(ds[i] for i in order[start:start + batch_size]), strict=True))
        losses = task.part_losses(model(feats, pad), labels, valid)  # one per task
        for i, loss in enumerate(losses):
            if bool(valid[..., i].any()):
                grads = torch.autograd.grad(loss, shared, retain_graph=True, allow_unused=True)
                total[i] += float(torch.cat([g.flatten() for g in grads if g is not None]).norm())
                count[i] += 1
    model.train()
    seen = (count > 0) & (total > 0)
    if not seen.any():
        return [1.0] * len(task.parts)
    norms = np.where(seen, total / np.maximum(count, 1), 0.0)
    return [float(n) if ok else float(norms[seen].mean()) for n, ok in zip(norms, seen, strict=True)]


def _make_step(task, model, opt, sched, device: str) -> Callable:
    def loss_of(batch) -> torch.Tensor:
        model.train()
        feats, labels, valid, pad = (t.to(device) for t in batch)
        out = model(feats, pad)  # (B, w, out_dim)
        return task.loss(out, labels, valid)  # valid already excludes padded frames
    return train_step(loss_of, opt, sched)


def finished_run(cfg: FitConfig) -> dict[str, Any] | None:
    """The metrics dict of the finished run of ``cfg`` in ``cfg.out`` (what ``fit`` returns
    without training), or None when that folder holds no finished run of this config."""
    out = Path(cfg.out)
    if not (out / METRICS).is_file():
        return None
    done = read_json(out / METRICS)
    if done.get("finished") and _same_config(done.get("config"), cfg) and _same_network(out / BEST, cfg):
        return done
    return None


def fit(cfg: FitConfig, *, data: tuple[Sequence[VideoSeq], Sequence[VideoSeq]] | None = None,
        on_epoch: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Train one run into ``cfg.out`` and return its metrics dict (also in metrics.json).

    data: (train videos, val videos) to use instead of reading ``cfg.data.store`` (tests, benchmarks).
    Either way their features are normalised per video as ``cfg.data.video_norm`` says.
    on_epoch: called with the epoch number after each epoch's state is saved.
    """
    out = Path(cfg.out)
    done = finished_run(cfg)
    if done is not None:
        log.info("%s: finished run, returning its metrics", out)
        return done
    torch.set_num_threads(cfg.num_threads)
    train, val = (normalize_videos(part, cfg.data.video_norm)
                  for part in (data if data is not None else load_fold(cfg)))
    task, model, opt, sched, ds, sampler, loader = _setup(cfg, train)
    engine = Engine(_make_step(task, model, opt, sched, cfg.device))
    book: dict[str, Any] = {"history": [], "best": {}, "bad": 0, "losses": [], "heads": {}}
    state = load_train_state(out / STATE)
    if state is not None:
        if not _same_config(state_extra(state)["config"], cfg):
            raise ValueError(f"{out}: holds a run with another config; use a new --out folder")
        if not _same_network(out / BEST, cfg):
            raise ValueError(f"{out}: holds a run of another network (preset {cfg.model.preset!r} "
                             "has changed since); use a new --out folder")
        book["history"], extra = restore_train_state(state, model=model, optimizer=opt,
                                                     scheduler=sched, engine=engine,
                                                     max_epochs=cfg.optim.epochs)
        book.update(best=extra["best"], bad=extra["bad"], heads=extra.get("heads", {}))
        log.info("%s: resuming after epoch %d", out, engine.state.epoch)
    _attach(cfg, engine, task, model, opt, sched, ds, sampler, val, book, on_epoch)
    attach_progress(engine, with_loss=False)
    if state is None or engine.state.epoch < cfg.optim.epochs and not state_extra(state).get("stopped"):
        attach_tensorboard(engine, out, opt, lambda: book["history"][-1])
        engine.run(loader, max_epochs=cfg.optim.epochs)
    results = _results(cfg, book, task, finished=True)
    plot_curve(book["history"], out / CURVE, title=f"{cfg.task} fold {cfg.fold} {cfg.variant}")
    atomic_write_json(out / METRICS, results)
    return results


def _attach(cfg, engine, task, model, opt, sched, ds, sampler, val, book, on_epoch) -> None:
    out = Path(cfg.out)

    @engine.on(Events.EPOCH_STARTED)
    def _reseed(e: Engine) -> None:
        torch.manual_seed(cfg.seed * 1009 + e.state.epoch)  # dropout identical after a resume
        ds.set_epoch(e.state.epoch)
        sampler.epoch = e.state.epoch
        book["losses"] = []

    @engine.on(Events.ITERATION_COMPLETED)
    def _loss(e: Engine) -> None:
        book["losses"].append(e.state.output)

    @engine.on(Events.EPOCH_COMPLETED)
    def _validate(e: Engine) -> None:
        epoch = e.state.epoch
        scores, frames = evaluate_videos(task, model, val, cfg.data.window, cfg.data.stride,
                                         cfg.data.batch_size, cfg.device, smooth=cfg.smooth)
        parts = {t: scores[t] for t in TASKS if t in scores}  # mtl: each head's own score
        book["history"].append({"epoch": epoch, "loss": float(np.mean(book["losses"])),
                                "score": scores["score"], **parts, "lr": opt.param_groups[0]["lr"]})
        log.info("%s fold %d epoch %d: val %s %.4f", cfg.task, cfg.fold, epoch,
                 task.metric_name, scores["score"])
        improved = not book["best"] or scores["score"] > book["best"]["val"]["score"]
        if improved:
            smoothing = smoothing_scores(task, frames, val, SMOOTH_CHOICES)  # with and without
            book["best"] = {"epoch": epoch, "val": scores, "smoothing": smoothing}
            save_best(out / BEST, model, cfg, {"epoch": epoch, "val": scores})
            example = max(val, key=lambda v: int(v.valid.sum()))
            _save_example(out / EXAMPLE, task, example, task.smooth(frames[example.name], cfg.smooth))
        if isinstance(task, MultiTask):  # any head's own best also counts as progress
            improved = _keep_heads(cfg, task, model, epoch, scores, book["heads"]) or improved
        book["bad"] = 0 if improved else book["bad"] + 1
        stopped = book["bad"] >= cfg.optim.patience
        save_train_state(out / STATE, train_state(
            model=model, optimizer=opt, scheduler=sched, engine=e, history=book["history"],
            extra={"config": json.dumps(cfg.to_dict(), sort_keys=True), "best": book["best"],
                   "bad": book["bad"], "stopped": stopped, "heads": book["heads"]}))
        atomic_write_json(out / METRICS, _results(cfg, book, task, False))
        if stopped:
            log.info("early stop after epoch %d (no gain for %d epochs)", epoch, cfg.optim.patience)
            e.terminate()
        if on_epoch is not None:
            on_epoch(epoch)
