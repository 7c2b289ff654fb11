"""The data order of an epoch as a pure function of (seed, epoch).

A DataLoader with ``shuffle=True`` draws each epoch's order from its own generator when the
engine asks for the epoch's first batch, after the previous epoch's state was saved; that
generator is not in :mod:`trainkit.state`, so a resumed run read other batches than an
uninterrupted one. :class:`EpochShuffle` draws the order from (seed, epoch) alone and
:func:`attach_epoch_order` tells it the engine's epoch when each epoch starts (as seqtrain's
``featurestore.sampler.WindowSampler`` does for windows): a run interrupted after an epoch and
resumed reads exactly the batches of the uninterrupted run.

With ``num_samples`` the sampler yields one epoch's worth (``max_steps`` x batch) and the loader
ends with the epoch, so an epoch never continues the previous epoch's iterator. A data-parallel
launcher may replace the sampler with a ``DistributedSampler`` (Ray Train does): its order is a
function of the epoch set here too. Randomness drawn inside DataLoader worker processes
(augmentations with ``num_workers > 0``) is not in the resume state.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from ignite.engine import Engine, Events
from torch.utils.data import Sampler

__all__ = ["EpochShuffle", "attach_epoch_order"]


class EpochShuffle(Sampler[int]):
    """Indices of a dataset of ``n`` items: the first ``num_samples`` (all by default) of a
    permutation drawn from ``(seed, epoch)``; set the epoch with :meth:`set_epoch`."""

    def __init__(self, n: int, seed: int = 0, num_samples: int | None = None):
        if int(n) < 1:
            raise ValueError(f"EpochShuffle needs n >= 1 items, got n={n!r}")
        num = int(n) if num_samples is None else int(num_samples)
        if not 1 <= num <= int(n):
            raise ValueError(f"num_samples must be in [1, n={n}], got {num_samples!r}")
        self.n, self.seed, self.num_samples = int(n), int(seed), num
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def order(self, epoch: int | None = None) -> np.ndarray:
        """(num_samples,) int64: the indices of ``epoch`` (default: the current one) in order."""
        epoch = self.epoch if epoch is None else int(epoch)
        return np.random.default_rng((self.seed, epoch)).permutation(self.n)[:self.num_samples]

    def __iter__(self) -> Iterator[int]:
        return iter(self.order().tolist())

    def __len__(self) -> int:
        return self.num_samples


def attach_epoch_order(engine: Engine, loader) -> None:
    """At every EPOCH_STARTED (before the epoch's first batch is asked for), give ``loader``'s
    sampler the engine's epoch, if it takes one (:class:`EpochShuffle`, ``DistributedSampler``)."""
    sampler = getattr(loader, "sampler", None)
    if not callable(getattr(sampler, "set_epoch", None)):
        return

    @engine.on(Events.EPOCH_STARTED)
    def _set_epoch(e: Engine) -> None:
        sampler.set_epoch(e.state.epoch)
