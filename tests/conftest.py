"""Fixtures shared by the test modules.

``synth_seq_store`` builds a feature store of seqtrain's synthetic videos (features + labels,
no images) once per session per distinct request; the modules that train sequence models ask it
for their store instead of each writing its own ``store_path`` fixture.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def repo() -> Path:
    """The project's root folder."""
    return REPO


@pytest.fixture(scope="session")
def synth_seq_store(tmp_path_factory) -> Callable[..., str]:
    """``make(num_videos, seed=..., val=..., test=..., **synth_kwargs) -> store path``.

    Videos whose source is in ``val`` / ``test`` go to that split, the rest to train; the
    remaining keyword arguments go to :func:`seqtrain.synthetic.synth_videos`. Equal requests
    share one store (tests only read it).
    """
    from seqtrain.synthetic import build_store, synth_videos

    built: dict[tuple, str] = {}

    def make(num_videos: int, *, seed: int, val: Collection[str] = (),
             test: Collection[str] = (), **synth_kwargs) -> str:
        key = (num_videos, seed, tuple(sorted(val)), tuple(sorted(test)),
               tuple(sorted(synth_kwargs.items())))
        if key not in built:
            path = tmp_path_factory.mktemp("synth_seq") / "store.zarr"
            vids = synth_videos(num_videos, seed=seed, **synth_kwargs)
            split = {v.name: "test" if v.source in test else "val" if v.source in val else "train"
                     for v in vids}
            build_store(path, vids, split)
            built[key] = str(path)
        return built[key]

    return make


def tb_scalars(run_dir: str | Path) -> dict[str, list[tuple[int, float]]]:
    """tag -> [(step, value), ...] of every TensorBoard event file in ``run_dir``, read with
    tensorboard's own reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
