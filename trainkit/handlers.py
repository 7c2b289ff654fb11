"""Engine handlers every loop attaches: the epoch's step losses, the progress bar, and
TensorBoard event files in the run folder (``tensorboard --logdir runs/`` shows every run)."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable

import torch
from ignite.engine import Engine, Events
from ignite.handlers import ProgressBar

log = logging.getLogger(__name__)


class EpochLosses:
    """The step losses (engine outputs) of the running epoch."""

    def __init__(self, engine: Engine):
        self.values: list[float] = []
        engine.add_event_handler(Events.ITERATION_COMPLETED, lambda e: self.values.append(e.state.output))

    def mean(self) -> float:
        return sum(self.values) / max(1, len(self.values))

    def take(self) -> tuple[float, int]:
        """(mean loss, steps) of the epoch so far, and start a new epoch."""
        out = self.mean(), len(self.values)
        self.values = []
        return out


def attach_progress(engine: Engine, with_loss: bool = True) -> None:
    """A tqdm bar on a terminal (none in logs and pipes)."""
    bar = ProgressBar(persist=False, disable=not sys.stderr.isatty())
    if with_loss:
        bar.attach(engine, output_transform=lambda loss: {"loss": loss})
    else:
        bar.attach(engine)


def attach_tensorboard(engine: Engine, log_dir: str | os.PathLike, optimizer: torch.optim.Optimizer,
                       epoch_metrics: Callable[[], dict] | None = None):
    """Event files in ``log_dir``: the loss and LR of every step and, at each epoch end, the
    numbers of ``epoch_metrics()`` (attach after the handler that computes them). Returns the
    ignite ``TensorboardLogger`` (closed when the run completes or is terminated)."""
    from ignite.handlers.tensorboard_logger import (
        OptimizerParamsHandler,
        OutputHandler,
        TensorboardLogger,
    )

    tb = TensorboardLogger(log_dir=str(log_dir))
    tb.attach(engine, log_handler=OutputHandler(tag="train", output_transform=lambda loss: {"loss": loss}),
              event_name=Events.ITERATION_COMPLETED)
    tb.attach(engine, log_handler=OptimizerParamsHandler(optimizer, param_name="lr", tag="train"),
              event_name=Events.ITERATION_COMPLETED)
    if epoch_metrics is not None:
        @engine.on(Events.EPOCH_COMPLETED)
        def _epoch(e: Engine) -> None:
            for key, value in epoch_metrics().items():
                if isinstance(value, int | float) and key != "epoch":
                    tb.writer.add_scalar(f"epoch/{key}", value, e.state.epoch)
            tb.writer.flush()

    closed = []

    def close(_: Engine) -> None:
        if not closed:
            closed.append(True)
            tb.close()

    engine.add_event_handler(Events.COMPLETED, close)
    engine.add_event_handler(Events.TERMINATE, close)
    return tb
