"""Fine-tune the MAE encoder on Aff-Wild2 EXPR (8 classes), with pytorch-ignite.

The decoder is dropped; a fully connected head (optional dropout) sits on the pooled encoder
output. Train frames with valid EXPR labels, cross-entropy; each epoch the macro F1 over the
Validation_Set frames picks the best checkpoint. Layout of ``cfg.out``::

    best/              model.safetensors + config.json (meta: epoch, val_macro_f1, val_loss)
    last/              the last finished epoch (resume)
    train_state.pt     weights, optimizer, LR schedule, engine, history, RNGs, best (trainkit.state;
                       weights_only load)
    history.json, curves.png
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from ignite.engine import Engine, Events
from sklearn.metrics import f1_score
from torch.utils.data import DataLoader

from encoders.checkpoint import load_checkpoint, save_checkpoint
from encoders.data import ExprFrames, finetune_transform
from encoders.mae import ExprClassifier
from encoders.plots import save_curves
from encoders.presets import PRESETS, TINY_PRESETS, MAEConfig, get_preset
from encoders.training import (
    DataWait,
    Runtime,
    adamw,
    autocast,
    resolve_device,
    unwrap,
    vit_layer_decay,
)
from featurestore.atomic import atomic_write_json
from featurestore.outputs import check_output
from trainkit.handlers import EpochLosses, attach_progress, attach_tensorboard
from trainkit.order import EpochShuffle, attach_epoch_order
from trainkit.schedule import warmup_cosine_scheduler
from trainkit.state import load_train_state, restore_train_state, save_train_state, train_state
from trainkit.step import train_step

log = logging.getLogger(__name__)
NUM_CLASSES = 8

TINY_FINETUNE_DEFAULTS: dict[str, Any] = dict(epochs=5, batch_size=64, lr=1e-3, warmup_epochs=1)


@dataclass(frozen=True)
class FinetuneConfig:
    """EXPR fine-tuning. Defaults are the paper's (AdamW, lr 1e-4, batch 256); ``pretrained`` is
    an MAE checkpoint folder (None: train ``preset`` from scratch). ``frames`` is an LMDB pack or
    jpg tree (default: ``affwild2``). ``max_frames_per_video`` / ``max_val_frames_per_video``
    subsample each video with a seeded stride; ``max_steps`` caps the steps of each epoch."""

    affwild2: str = ""
    out: str = "runs/finetune"
    pretrained: str | None = None
    frames: str | None = None
    preset: str = "vit_base"
    img_size: int = 112
    epochs: int = 10
    batch_size: int = 256
    lr: float = 1e-4
    weight_decay: float = 0.05
    warmup_epochs: int = 1
    dropout: float = 0.1
    label_smoothing: float = 0.0
    balanced_loss: bool = False  # weight classes by n / (8 * count): favours macro F1
    layer_decay: float = 1.0  # pretrained encoder: block i at lr * layer_decay ** (depth - i)
    num_workers: int = 4
    seed: int = 0
    device: str = "auto"
    max_frames_per_video: int | None = None
    max_val_frames_per_video: int | None = None
    max_steps: int | None = None

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"FinetuneConfig.preset={self.preset!r}: choose from {sorted(PRESETS)}")
        for name in ("img_size", "epochs", "batch_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"FinetuneConfig.{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("warmup_epochs", "num_workers", "weight_decay"):
            if getattr(self, name) < 0:
                raise ValueError(f"FinetuneConfig.{name} must be >= 0, got {getattr(self, name)!r}")
        for name in ("dropout", "label_smoothing"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"FinetuneConfig.{name} must be in [0, 1), got "
                                 f"{getattr(self, name)!r}")
        if not self.lr > 0:
            raise ValueError(f"FinetuneConfig.lr must be > 0, got {self.lr!r}")
        if not 0 < self.layer_decay <= 1:
            raise ValueError(f"FinetuneConfig.layer_decay must be in (0, 1], got "
                             f"{self.layer_decay!r}")
        for name in ("max_frames_per_video", "max_val_frames_per_video", "max_steps"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"FinetuneConfig.{name} must be > 0 or None, got {value!r}")

    @classmethod
    def for_preset(cls, preset: str, **overrides: Any) -> FinetuneConfig:
        base = TINY_FINETUNE_DEFAULTS if preset in TINY_PRESETS else {}
        return cls(preset=preset, **{**base, **overrides})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def build_classifier(cfg: FinetuneConfig) -> tuple[ExprClassifier, MAEConfig]:
    """The classifier, its encoder initialised from ``cfg.pretrained`` when given."""
    if cfg.pretrained is None:
        mae_cfg = get_preset(cfg.preset, img_size=cfg.img_size)
        return ExprClassifier(mae_cfg, NUM_CLASSES, cfg.dropout), mae_cfg
    source, mae_cfg, _ = load_checkpoint(cfg.pretrained)
    model = ExprClassifier(mae_cfg, NUM_CLASSES, cfg.dropout)
    model.encoder.load_state_dict(source.encoder.state_dict())
    log.info("encoder initialised from %s (%s, %d px)", cfg.pretrained, mae_cfg.name,
             mae_cfg.img_size)
    return model, mae_cfg


def make_loaders(cfg: FinetuneConfig, img_size: int, world_size: int):
    common = dict(frames=cfg.frames, seed=cfg.seed)
    train = ExprFrames(cfg.affwild2, "train", img_size, transform=finetune_transform(img_size),
                       max_frames_per_video=cfg.max_frames_per_video, **common)
    val = ExprFrames(cfg.affwild2, "val", img_size,
                     max_frames_per_video=cfg.max_val_frames_per_video, **common)
    per_worker = max(1, cfg.batch_size // world_size)
    # order from (seed, epoch) (trainkit.order: resumes bit for bit); one epoch's worth with max_steps
    num = min(len(train), cfg.max_steps * per_worker) if cfg.max_steps else None
    train_loader = DataLoader(train, batch_size=per_worker,
                              sampler=EpochShuffle(len(train), cfg.seed, num),
                              drop_last=len(train) >= per_worker, num_workers=cfg.num_workers,
                              persistent_workers=cfg.num_workers > 0,
                              pin_memory=torch.cuda.is_available(),  # non_blocking copies in the step
                              generator=torch.Generator().manual_seed(cfg.seed))
    val_loader = DataLoader(val, batch_size=per_worker, num_workers=cfg.num_workers)
    return train_loader, val_loader


def class_weights(labels: np.ndarray) -> torch.Tensor:
    """labels: (M,) int -> (8,) float32 weights n / (8 * count); absent classes get 0."""
    counts = np.bincount(labels, minlength=NUM_CLASSES).astype(np.float64)  # (8,)
    w = np.where(counts > 0, len(labels) / (NUM_CLASSES * np.maximum(counts, 1)), 0.0)
    return torch.tensor(w, dtype=torch.float32)


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader, device: torch.device) -> dict[str, float]:
    """Per-frame macro F1 over the 8 classes (the official EXPR metric) and mean CE loss."""
    model.eval()
    preds, labels, loss_sum = [], [], 0.0
    for imgs, y in loader:
        with autocast(device):
            logits = model(imgs.to(device)).float()  # (B, 8)
        loss_sum += F.cross_entropy(logits, y.to(device), reduction="sum").item()
        preds.append(logits.argmax(1).cpu().numpy())
        labels.append(y.numpy())
    p, t = np.concatenate(preds), np.concatenate(labels)
    f1 = f1_score(t, p, labels=list(range(NUM_CLASSES)), average="macro", zero_division=0)
    return {"val_macro_f1": float(f1), "val_loss": loss_sum / len(t),
            "val_accuracy": float((p == t).mean())}


def _resume(out: Path, model, optimizer, scheduler, trainer, epochs: int) -> dict[str, Any]:
    state = load_train_state(out / "train_state.pt")
    if state is None:
        return {"history": [], "best": None}
    history, extra = restore_train_state(
        state, model=model, optimizer=optimizer, scheduler=scheduler, engine=trainer,
        max_epochs=epochs,
        weights=lambda: load_checkpoint(out / "last")[0].state_dict())  # a state before v2
    log.info("resuming %s after epoch %d", out, trainer.state.epoch)
    return {"history": history, "best": extra["best"]}


def _attach_epoch_end(trainer, cfg, model, optimizer, scheduler, val_loader, device, track,
                      runtime):
    out = Path(cfg.out)
    losses = EpochLosses(trainer)
    data_wait = DataWait().attach(trainer)

    @trainer.on(Events.EPOCH_COMPLETED)
    def _epoch_end(engine: Engine) -> None:
        entry = {"epoch": engine.state.epoch, "loss": losses.take()[0],
                 "lr": max(g["lr"] for g in optimizer.param_groups), **data_wait.epoch()}
        net = unwrap(model)
        if runtime.is_main:  # validation on rank 0 over the whole Validation_Set
            entry.update(evaluate(net, val_loader, device))
            net.train()
        track["history"].append(entry)
        log.info("finetune epoch %d loss %.4f val macro F1 %s, data wait %.1f%% of step time",
                 entry["epoch"], entry["loss"], entry.get("val_macro_f1"),
                 100 * entry["data_wait"])  # fmt: skip
        if runtime.report is not None:
            runtime.report(entry)
        if not runtime.is_main:
            return
        meta = {**entry, "finetune": cfg.to_dict()}
        if track["best"] is None or entry["val_macro_f1"] > track["best"]["val_macro_f1"]:
            track["best"] = entry
            save_checkpoint(out / "best", net, net.cfg, meta)
        save_checkpoint(out / "last", net, net.cfg, meta)
        save_train_state(out / "train_state.pt", train_state(
            model=net, optimizer=optimizer, scheduler=scheduler, engine=engine,
            history=track["history"], extra={"best": track["best"]}))
        atomic_write_json(out / "history.json", {"history": track["history"], "best": track["best"]})
        save_curves(out / "curves.png", track["history"], ["loss", "val_macro_f1"],
                    title="EXPR fine-tuning")


def finetune(cfg: FinetuneConfig, runtime: Runtime | None = None) -> dict[str, Any]:
    """Fine-tune on Aff-Wild2 EXPR; returns best macro F1/epoch, history and paths."""
    runtime = runtime or Runtime()
    out = Path(cfg.out)
    check_output(out, {"--affwild2": cfg.affwild2 or None, "--pretrained": cfg.pretrained,
                       "--frames": cfg.frames}, what="--out")
    device = resolve_device(runtime.device or cfg.device)
    torch.manual_seed(cfg.seed)
    model, mae_cfg = build_classifier(cfg)
    model = model.to(device)
    train_loader, val_loader = make_loaders(cfg, mae_cfg.img_size, runtime.world_size)
    out.mkdir(parents=True, exist_ok=True)  # after the inputs were found: a bad one writes nothing
    train_loader = runtime.prepare_loader(train_loader)
    steps = min(len(train_loader), cfg.max_steps or len(train_loader))
    layer_scale = (vit_layer_decay(mae_cfg.depth, cfg.layer_decay)  # a from-scratch encoder: one LR
                   if cfg.pretrained is not None and cfg.layer_decay < 1 else None)
    optimizer = adamw(model, cfg.lr, cfg.weight_decay, lr_scale=layer_scale)
    scheduler = warmup_cosine_scheduler(optimizer, cfg.warmup_epochs * steps, cfg.epochs * steps)
    weights = class_weights(train_loader.dataset.labels).to(device) if cfg.balanced_loss else None

    def loss_of(batch) -> torch.Tensor:
        imgs, y = batch[0].to(device, non_blocking=True), batch[1].to(device)  # (B,3,S,S), (B,)
        with autocast(device):
            logits = model(imgs)  # (B, 8)
        return F.cross_entropy(logits.float(), y, weight=weights,
                               label_smoothing=cfg.label_smoothing)

    trainer = Engine(train_step(loss_of, optimizer, scheduler))
    attach_epoch_order(trainer, train_loader)
    track = _resume(out, model, optimizer, scheduler, trainer, cfg.epochs)
    model = runtime.prepare_model(model)
    model.train()
    _attach_epoch_end(trainer, cfg, model, optimizer, scheduler, val_loader, device, track,
                      runtime)
    attach_progress(trainer)
    if trainer.state.epoch < cfg.epochs:
        if runtime.is_main:
            attach_tensorboard(trainer, out, optimizer, lambda: track["history"][-1])
        trainer.run(train_loader, max_epochs=cfg.epochs, epoch_length=steps)
    best = track["best"] or {}
    return {"best_macro_f1": best.get("val_macro_f1", float("nan")),
            "best_epoch": best.get("epoch"), "history": track["history"], "out": str(out),
            "best_checkpoint": str(out / "best"), "last_checkpoint": str(out / "last"),
            "curves": str(out / "curves.png")}
