"""DataWait: the share of a real ignite Engine's iteration time spent in next(loader)."""

import time

from ignite.engine import Engine, Events

from encoders.training import DataWait


class SlowData:
    """An iterable whose every item takes ``delay`` seconds to produce."""

    def __init__(self, n: int, delay: float):
        self.n, self.delay = n, delay

    def __iter__(self):
        for i in range(self.n):
            time.sleep(self.delay)
            yield i


def _run(monkeypatch, load_s: float, step_s: float, steps: int = 4) -> list[dict]:
    clock = {"t": 0.0}  # a fake clock: sleeps advance it exactly, so the share is exact
    monkeypatch.setattr(time, "sleep", lambda s: clock.update(t=clock["t"] + s))
    engine = Engine(lambda e, b: time.sleep(step_s))
    wait = DataWait(clock=lambda: clock["t"]).attach(engine)
    epochs = []
    engine.add_event_handler(Events.EPOCH_COMPLETED, lambda e: epochs.append(wait.epoch()))
    engine.run(SlowData(steps, load_s), max_epochs=2)
    return epochs


def test_share_is_wait_over_wait_plus_step_per_epoch(monkeypatch):
    epochs = _run(monkeypatch, load_s=1.0, step_s=3.0)
    assert len(epochs) == 2
    for e in epochs:
        assert abs(e["data_wait"] - 0.25) < 1e-9 and abs(e["step_s"] - 4.0) < 1e-9
    fast = _run(monkeypatch, load_s=0.0, step_s=1.0)
    assert fast[0]["data_wait"] == 0.0 and fast[1]["step_s"] == 1.0
