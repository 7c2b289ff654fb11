"""MAE pretraining on the union of static face sets, with pytorch-ignite.

Layout of ``cfg.out``::

    checkpoint/        model.safetensors + config.json of the last finished epoch
    train_state.pt     weights, optimizer, LR schedule, engine, history, RNGs (trainkit.state;
                       resume, weights_only load)
    history.json       per-epoch mean loss and LR
    loss.png           loss curve;  reconstruction.png: original / masked / reconstructed
                       (both redrawn about 20 times a run and after the last epoch)

Running again with the same ``out`` resumes after the last finished epoch.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine, Events
from torch.utils.data import DataLoader, Dataset

from encoders.checkpoint import load_checkpoint, save_checkpoint
from encoders.data import denormalize, faceset_union
from encoders.mae import MaskedAutoencoder, patchify, unpatchify
from encoders.plots import save_curves, save_reconstruction
from encoders.presets import PRESETS, TINY_PRESETS, MAEConfig, get_preset
from encoders.training import (
    DataWait,
    Runtime,
    adamw,
    autocast,
    resolve_device,
    unwrap,
)
from featurestore.atomic import atomic_write_json
from featurestore.outputs import check_output
from trainkit.handlers import EpochLosses, attach_progress, attach_tensorboard
from trainkit.order import EpochShuffle, attach_epoch_order
from trainkit.schedule import warmup_cosine_scheduler
from trainkit.state import load_train_state, restore_train_state, save_train_state, train_state
from trainkit.step import train_step

log = logging.getLogger(__name__)

# The tiny preset's defaults (a few CPU minutes); vit_base uses the dataclass defaults (paper).
TINY_PRETRAIN_DEFAULTS: dict[str, Any] = dict(epochs=20, batch_size=64, lr=1.5e-3,
                                              warmup_epochs=2, weight_decay=0.05)


@dataclass(frozen=True)
class PretrainConfig:
    """MAE pretraining. Defaults are the paper's ViT-Base run (500 epochs, AdamW, batch 1024,
    lr 5e-4, weight decay 0.05, 40 warm-up epochs, 75% masking); :meth:`for_preset` applies
    :data:`TINY_PRETRAIN_DEFAULTS` for the tiny presets. ``batch_size`` is global (split over workers);
    ``max_steps`` caps the steps of each epoch (CPU demos)."""

    faces: str = ""
    out: str = "runs/pretrain"
    preset: str = "vit_base"
    img_size: int = 112
    epochs: int = 500
    batch_size: int = 1024
    lr: float = 5e-4
    weight_decay: float = 0.05
    warmup_epochs: int = 40
    mask_ratio: float = 0.75
    norm_pix_loss: bool = False
    num_workers: int = 4
    seed: int = 0
    device: str = "auto"
    max_steps: int | None = None
    recon_images: int = 6

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"PretrainConfig.preset={self.preset!r}: choose from {sorted(PRESETS)}")
        for name in ("img_size", "epochs", "batch_size", "recon_images"):
            if getattr(self, name) <= 0:
                raise ValueError(f"PretrainConfig.{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("warmup_epochs", "num_workers", "weight_decay"):
            if getattr(self, name) < 0:
                raise ValueError(f"PretrainConfig.{name} must be >= 0, got {getattr(self, name)!r}")
        if not self.lr > 0:
            raise ValueError(f"PretrainConfig.lr must be > 0, got {self.lr!r}")
        if self.max_steps is not None and self.max_steps <= 0:
            raise ValueError(f"PretrainConfig.max_steps must be > 0 or None, got {self.max_steps!r}")
        self.mae_config()  # validates img_size / mask_ratio against the architecture

    def mae_config(self) -> MAEConfig:
        return get_preset(self.preset, img_size=self.img_size, mask_ratio=self.mask_ratio,
                          norm_pix_loss=self.norm_pix_loss)

    @classmethod
    def for_preset(cls, preset: str, **overrides: Any) -> PretrainConfig:
        base = TINY_PRETRAIN_DEFAULTS if preset in TINY_PRESETS else {}
        return cls(preset=preset, **{**base, **overrides})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def make_loader(dataset: Dataset, cfg: PretrainConfig, world_size: int) -> DataLoader:
    """Batches in an order drawn from (seed, epoch) (``trainkit.order``: resumes bit for bit);
    with ``max_steps`` the loader holds one epoch's worth, so it ends with the epoch."""
    per_worker = max(1, cfg.batch_size // world_size)
    num = min(len(dataset), cfg.max_steps * per_worker) if cfg.max_steps else None
    return DataLoader(dataset, batch_size=per_worker, sampler=EpochShuffle(len(dataset), cfg.seed, num),
                      drop_last=len(dataset) >= per_worker, num_workers=cfg.num_workers,
                      persistent_workers=cfg.num_workers > 0,
                      pin_memory=torch.cuda.is_available(),  # non_blocking copies in the step
                      generator=torch.Generator().manual_seed(cfg.seed))


@torch.no_grad()
def reconstruction_rows(model: MaskedAutoencoder, imgs: torch.Tensor, seed: int = 0):
    """imgs: (N, 3, H, W) normalised -> [original, masked, reconstructed] each (N, 3, H, W) in
    [0, 1]; visible patches are pasted into the reconstruction, removed ones greyed in 'masked'."""
    model.eval()
    p, c = model.cfg.patch_size, model.cfg.in_chans
    _, pred, mask = model(imgs, generator=torch.Generator().manual_seed(seed))  # (N, L, P), (N, L)
    target = patchify(imgs, p)  # (N, L, P)
    if model.cfg.norm_pix_loss:  # predictions are per-patch normalised: undo with the target's
        mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)
        pred = pred * (var + 1e-6) ** 0.5 + mean  # (N, L, P)
    m = mask.unsqueeze(-1)  # (N, L, 1)
    grey = torch.zeros_like(target)  # normalised 0 = ImageNet mean grey
    masked = unpatchify(target * (1 - m) + grey * m, p, c)  # (N, 3, H, W)
    recon = unpatchify(target * (1 - m) + pred.float() * m, p, c)  # (N, 3, H, W)
    return [denormalize(imgs), denormalize(masked), denormalize(recon)]


def _resume(out: Path, model, optimizer, scheduler, trainer, epochs: int) -> list[dict]:
    """Restore the train state saved in ``out`` if present; returns the history."""
    state = load_train_state(out / "train_state.pt")
    if state is None:
        return []
    history, _ = restore_train_state(
        state, model=model, optimizer=optimizer, scheduler=scheduler, engine=trainer,
        max_epochs=epochs,
        weights=lambda: load_checkpoint(out / "checkpoint")[0].state_dict())  # a state before v2
    log.info("resuming %s after epoch %d", out, trainer.state.epoch)
    return history


def plot_due(epoch: int, epochs: int) -> bool:
    """Whether the pictures are redrawn after ``epoch``: about 20 times a run and after the
    last epoch (drawing both takes ~0.5 s, a tenth of a `tiny` epoch on 2 CPU cores)."""
    return epoch >= epochs or epoch % -(-epochs // 20) == 0


def _attach_epoch_end(trainer, cfg, model, optimizer, scheduler, history, runtime, samples):
    out = Path(cfg.out)
    losses = EpochLosses(trainer)
    data_wait = DataWait().attach(trainer)

    @trainer.on(Events.EPOCH_COMPLETED)
    def _epoch_end(engine: Engine) -> None:
        loss, steps = losses.take()
        entry = {"epoch": engine.state.epoch, "loss": loss,
                 "lr": optimizer.param_groups[0]["lr"], "steps": steps, **data_wait.epoch()}
        history.append(entry)
        log.info("pretrain epoch %d loss %.4f lr %.2e, data wait %.1f%% of step time",
                 entry["epoch"], entry["loss"], entry["lr"], 100 * entry["data_wait"])
        if runtime.report is not None:
            runtime.report(entry)
        if not runtime.is_main:
            return
        net = unwrap(model)
        save_checkpoint(out / "checkpoint", net, net.cfg, {"epoch": entry["epoch"],
                                                           "loss": entry["loss"],
                                                           "pretrain": cfg.to_dict()})
        save_train_state(out / "train_state.pt", train_state(
            model=net, optimizer=optimizer, scheduler=scheduler, engine=engine, history=history))
        atomic_write_json(out / "history.json", history)
        if plot_due(entry["epoch"], cfg.epochs):
            save_curves(out / "loss.png", history, ["loss", "lr"], title="MAE pretraining")
            save_reconstruction(out / "reconstruction.png", reconstruction_rows(net, samples))
        net.train()


def pretrain(cfg: PretrainConfig, runtime: Runtime | None = None,
             dataset: Dataset | None = None) -> dict[str, Any]:
    """Pretrain an MAE; returns final loss, history and output paths.

    ``dataset`` (items ``(image (3, S, S), label)``) replaces the face sets under ``cfg.faces``.
    """
    runtime = runtime or Runtime()
    torch.manual_seed(cfg.seed + runtime.rank)
    out = Path(cfg.out)
    if dataset is None:
        check_output(out, {"--faces": cfg.faces}, what="--out")
    device = resolve_device(runtime.device or cfg.device)
    dataset = dataset if dataset is not None else faceset_union(cfg.faces, cfg.img_size)
    out.mkdir(parents=True, exist_ok=True)  # after the inputs were found: a bad one writes nothing
    loader = runtime.prepare_loader(make_loader(dataset, cfg, runtime.world_size))
    steps = min(len(loader), cfg.max_steps or len(loader))
    torch.manual_seed(cfg.seed)  # identical initial weights on every rank
    model = MaskedAutoencoder(cfg.mae_config()).to(device)
    optimizer = adamw(model, cfg.lr, cfg.weight_decay, betas=(0.9, 0.95))
    scheduler = warmup_cosine_scheduler(optimizer, cfg.warmup_epochs * steps, cfg.epochs * steps)

    def loss_of(batch) -> torch.Tensor:
        imgs = batch[0].to(device, non_blocking=True)  # (B, 3, S, S)
        with autocast(device):
            loss, _, _ = model(imgs)
        return loss

    trainer = Engine(train_step(loss_of, optimizer, scheduler))
    attach_epoch_order(trainer, loader)
    history = _resume(out, model, optimizer, scheduler, trainer, cfg.epochs)
    model = runtime.prepare_model(model)
    model.train()
    samples = torch.stack([dataset[i][0] for i in range(min(cfg.recon_images, len(dataset)))])
    _attach_epoch_end(trainer, cfg, model, optimizer, scheduler, history, runtime,
                      samples.to(device))
    attach_progress(trainer)
    if trainer.state.epoch < cfg.epochs:
        if runtime.is_main:
            attach_tensorboard(trainer, out, optimizer, lambda: history[-1])
        trainer.run(loader, max_epochs=cfg.epochs, epoch_length=steps)
    return {"final_loss": history[-1]["loss"] if history else float("nan"),
            "epochs": len(history), "history": history, "out": str(out),
            "checkpoint": str(out / "checkpoint"), "loss_curve": str(out / "loss.png"),
            "reconstruction": str(out / "reconstruction.png")}

