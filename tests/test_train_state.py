"""trainkit.state: the one resume dict of every loop. A tiny ignite loop interrupted after
epoch k and resumed from the saved dict ends bit for bit where the uninterrupted loop ends
(weights, optimizer, schedule, engine counters, history, global RNG draws)."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from ignite.engine import Engine, Events
from torch.utils.data import DataLoader, TensorDataset

from trainkit.schedule import warmup_cosine_scheduler
from trainkit.state import (
    load_train_state,
    restore_train_state,
    save_train_state,
    state_extra,
    train_state,
)
from trainkit.step import train_step

torch.set_num_threads(1)
EPOCHS = 4


class Stop(Exception):
    pass


def run(path, stop_after: int | None = None):
    """A dropout model; state saved every epoch into ``path``."""
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(40, 6), torch.randn(40, 1))
    loader = DataLoader(data, batch_size=8)
    model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Dropout(0.3), torch.nn.Linear(16, 1))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    sched = warmup_cosine_scheduler(opt, 3, EPOCHS * len(loader))

    def loss_of(batch):
        # draws from every global RNG, as augmentations and masking do
        noise = float(np.random.rand()) + random.random()
        return torch.nn.functional.mse_loss(model(batch[0]) * (1 + 0.1 * noise), batch[1])

    engine = Engine(train_step(loss_of, opt, sched))
    history, extra = [], {"best": None}
    state = load_train_state(path)
    if state is not None:
        history, extra = restore_train_state(state, model=model, optimizer=opt, scheduler=sched,
                                             engine=engine, max_epochs=EPOCHS)

    @engine.on(Events.EPOCH_COMPLETED)
    def _save(e):
        history.append({"epoch": e.state.epoch, "loss": e.state.output,
                        "draw": float(np.random.rand()) + random.random()})
        extra["best"] = e.state.epoch
        save_train_state(path, train_state(model=model, optimizer=opt, scheduler=sched, engine=e,
                                           history=history, extra=extra))
        if e.state.epoch == stop_after:
            raise Stop

    engine.run(loader, max_epochs=EPOCHS)
    return model, history


def test_interrupted_and_resumed_run_equals_uninterrupted(tmp_path):
    np.random.seed(5)
    random.seed(5)
    full, full_history = run(tmp_path / "a.pt")
    np.random.seed(5)
    random.seed(5)
    with pytest.raises(Stop):
        run(tmp_path / "b.pt", stop_after=2)
    np.random.seed(99)  # the new process starts with other RNG states: the saved ones win
    random.seed(99)
    torch.manual_seed(99)
    resumed, history = run(tmp_path / "b.pt")
    assert history == full_history and [h["epoch"] for h in history] == [1, 2, 3, 4]
    for (k, a), (_, b) in zip(full.state_dict().items(), resumed.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    state = load_train_state(tmp_path / "b.pt")
    assert state_extra(state) == {"best": 4} and state["version"] == 2


def test_a_state_from_before_version_2_restores(tmp_path):
    """Old states: the loop's entries at the top level, weights elsewhere (encoder loops)."""
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    engine = Engine(lambda e, b: 0.0)
    engine.state.epoch, engine.state.iteration, engine.state.epoch_length = 2, 10, 5
    old = {"optimizer": opt.state_dict(), "scheduler": {}, "engine": dict(engine.state_dict()),
           "history": [{"epoch": 1}, {"epoch": 2}], "best": {"epoch": 2}}
    save_train_state(tmp_path / "old.pt", old)
    weights = {"weight": torch.ones(2, 3), "bias": torch.zeros(2)}
    fresh = Engine(lambda e, b: 0.0)
    history, extra = restore_train_state(load_train_state(tmp_path / "old.pt"), model=model,
                                         optimizer=opt, scheduler=None, engine=fresh,
                                         max_epochs=5, weights=lambda: weights)
    assert history == [{"epoch": 1}, {"epoch": 2}] and extra == {"best": {"epoch": 2}}
    assert torch.equal(model.weight, torch.ones(2, 3)) and fresh.state.epoch == 2
    with pytest.raises(ValueError, match="no model weights"):
        restore_train_state(old, model=model, optimizer=opt, scheduler=None, engine=fresh,
                            max_epochs=5)
