"""Ray-free scheduling of extraction: videos (longest first) over a pool of replaceable workers.

The loop in :func:`schedule` only sees a :class:`Backend` (start/submit/wait/result/replace), so
it runs the same over Ray actors (jobs/extract.py) and over plain in-process workers (tests).
A worker that dies mid-video (:class:`WorkerDied`) is replaced and its video queued again: an
uncommitted video is simply rewritten from scratch, and one that was committed just before the
worker died comes back as ``written=False`` (the store never commits a video twice).
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # the result type of extraction; importing it at run time would load torch
    from encoders.video import VideoWrite

log = logging.getLogger(__name__)


class WorkerDied(RuntimeError):
    """The worker running a video died; the video must be redone on a fresh worker."""


class ExtractionError(RuntimeError):
    """Some videos failed for reasons other than a dead worker (bad frames, bad store...)."""

    def __init__(self, failures: Mapping[str, BaseException], stats: ExtractStats | None = None):
        self.failures = dict(failures)
        self.stats = stats
        first = next(iter(self.failures.items()))
        super().__init__(
            f"{len(self.failures)} video(s) failed: {sorted(self.failures)[:5]}; "
            f"first: {first[0]}: {first[1]}"
        )


@dataclass
class ExtractStats:
    """Summary of one :func:`schedule` run."""

    results: list[VideoWrite] = field(default_factory=list)
    seconds: float = 0.0
    replaced_workers: int = 0

    @property
    def frames(self) -> int:
        return sum(r.frames for r in self.results)

    @property
    def written(self) -> list[str]:
        return [r.video for r in self.results if r.written]

    @property
    def nodes(self) -> set[str]:
        return {r.node for r in self.results}

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


class Backend(Protocol):
    """A pool of workers, each able to run one video at a time."""

    def start(self, worker: int) -> None: ...
    def replace(self, worker: int) -> None: ...
    def submit(self, worker: int, video: str) -> Hashable: ...
    def wait(self, tickets: list[Hashable], timeout: float) -> list[Hashable]: ...
    def result(self, ticket: Hashable) -> VideoWrite: ...  # may raise WorkerDied


class InlineBackend:
    """Workers in this process, no Ray: for short jobs, where starting Ray and an actor (a new
    process importing torch and loading the model) costs more than the work. ``make()`` builds
    one worker (an object with ``run(video) -> VideoWrite``); each video runs when submitted."""

    def __init__(self, make: Callable[[], object]):
        self.make, self.workers, self.done, self._next = make, {}, {}, 0

    def start(self, worker: int) -> None:
        self.workers[worker] = self.make()

    def replace(self, worker: int) -> None:
        self.start(worker)

    def submit(self, worker: int, video: str) -> Hashable:
        self._next += 1
        try:
            self.done[self._next] = replace(self.workers[worker].run(video), worker=worker)
        except Exception as err:  # noqa: BLE001  (raised again by result(), as from an actor)
            self.done[self._next] = err
        return self._next

    def wait(self, tickets: list[Hashable], timeout: float) -> list[Hashable]:
        return list(tickets)

    def result(self, ticket: Hashable) -> VideoWrite:
        out = self.done.pop(ticket)
        if isinstance(out, BaseException):
            raise out
        return out


class Progress:
    """Plain log lines (they show in `ray job logs`) every ``every_s`` seconds and at the end."""

    def __init__(self, total_videos: int, total_frames: int, every_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic):  # fmt: skip
        self.total_videos, self.total_frames = total_videos, total_frames
        self.every_s, self.clock = every_s, clock
        self.start = self.last = clock()
        self.videos = self.frames = 0

    def update(self, result: VideoWrite) -> None:
        self.videos += 1
        self.frames += result.frames

    def line(self) -> str:
        elapsed = max(self.clock() - self.start, 1e-9)
        rate = self.frames / elapsed
        left = self.total_frames - self.frames
        eta = _hms(left / rate) if rate > 0 else "?"
        return (f"extract: {self.videos}/{self.total_videos} videos, "
                f"{self.frames}/{self.total_frames} frames, {rate:.1f} frames/s, ETA {eta}")  # fmt: skip

    def maybe_log(self) -> None:
        if self.clock() - self.last >= self.every_s:
            self.last = self.clock()
            log.info(self.line())


def _hms(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def longest_first(videos: Sequence[str], sizes: Mapping[str, int]) -> list[str]:
    """Videos by decreasing size (ties keep the given order): long ones first balance the pool."""
    return sorted(videos, key=lambda v: -int(sizes.get(v, 0)))


def schedule(videos: Sequence[str], sizes: Mapping[str, int], backend: Backend, workers: int, *,
             max_retries: int = 3, every_s: float = 5.0, in_flight: int = 1,
             on_result: Callable[[VideoWrite], None] | None = None) -> ExtractStats:  # fmt: skip
    """Run every video once on ``workers`` workers of ``backend``, longest first.

    sizes: video -> frames to encode (for the order and the ETA). ``in_flight``: videos handed
    to one worker at a time (2 lets a worker write one video while it encodes the next). A video
    whose worker died is retried on a replacement worker up to ``max_retries`` times (the other
    videos the dead worker held are queued again without counting against them). Other errors
    are collected and raised together as :class:`ExtractionError` after the remaining videos ran.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers!r}")
    if in_flight < 1:
        raise ValueError(f"in_flight must be >= 1, got {in_flight!r}")
    queue = deque(longest_first(videos, sizes))
    stats, progress = ExtractStats(), Progress(len(queue), sum(sizes.get(v, 0) for v in queue), every_s)
    if not queue:
        return stats
    workers = min(workers, len(queue))
    for w in range(workers):
        backend.start(w)
    # free slots, worker 0 first; a worker has `in_flight` slots
    idle = [w for _ in range(in_flight) for w in range(workers)][::-1]
    generation = dict.fromkeys(range(workers), 0)  # bumped when a worker is replaced
    running: dict[Hashable, tuple[int, int, str]] = {}  # ticket -> (worker, generation, video)
    deaths: dict[str, int] = {}
    failures: dict[str, BaseException] = {}
    while queue or running:
        while idle and queue:
            w, video = idle.pop(), queue.popleft()
            running[backend.submit(w, video)] = (w, generation[w], video)
        for ticket in backend.wait(list(running), timeout=min(every_s, 1.0)):
            w, gen, video = running.pop(ticket)
            try:
                result = backend.result(ticket)
            except WorkerDied as err:
                if gen != generation[w]:  # a second video of a worker already replaced
                    queue.appendleft(video)
                    idle.append(w)
                    continue
                deaths[video] = deaths.get(video, 0) + 1
                log.warning("worker %d died on %s (%s); replacing it and redoing the video",
                            w, video, err)  # fmt: skip
                if deaths[video] > max_retries:
                    failures[video] = err
                else:
                    queue.appendleft(video)
                backend.replace(w)
                generation[w] += 1
                stats.replaced_workers += 1
            except Exception as err:  # noqa: BLE001  (reported together at the end)
                log.error("%s failed: %s", video, err)
                failures[video] = err
            else:
                stats.results.append(result)
                progress.update(result)
                if on_result is not None:
                    on_result(result)
            idle.append(w)
        progress.maybe_log()
    stats.seconds = progress.clock() - progress.start
    log.info(progress.line())
    if failures:
        raise ExtractionError(failures, stats)
    return stats


@dataclass(frozen=True)
class ActorPlan:
    """How many extraction actors to run and what each one asks Ray for."""

    count: int
    num_cpus: float
    num_gpus: float
    threads: int  # torch threads of one actor (its CPU share, at least 1)

    @property
    def device(self) -> str:
        return "cuda" if self.num_gpus > 0 else "cpu"


def plan_actors(node_cpus: Sequence[float], node_gpus: Sequence[float],
                requested: int | None = None) -> ActorPlan:  # fmt: skip
    """One actor per GPU when the cluster has GPUs, else one per CPU (fractional shares allowed).

    node_cpus / node_gpus: the resources of each alive node. The CPU share of an actor is the
    cluster's CPUs over the actor count, shrunk until that many actors fit on the nodes (an actor
    asking for more than any node has would stay pending forever).
    """
    if requested is not None and requested < 1:
        raise ValueError(f"actors must be >= 1, got {requested!r}")
    cpus, gpus = [float(c) for c in node_cpus], [float(g) for g in node_gpus]
    if not cpus or sum(cpus) <= 0:
        raise ValueError(f"the cluster has no CPUs (node_cpus={list(node_cpus)!r})")
    if sum(gpus) >= 1:
        count = requested or int(sum(gpus))
        per_gpu = min(1.0, int(sum(gpus)) / count)
        share = _fit(cpus, min(4.0, sum(cpus) / count), count)  # a few cores to decode jpgs
        return ActorPlan(count, share, per_gpu, max(1, int(share)))
    count = requested or max(1, int(sum(cpus)))
    share = _fit(cpus, sum(cpus) / count, count)
    return ActorPlan(count, share, 0.0, max(1, int(share)))


def _fit(cpus: list[float], share: float, count: int) -> float:
    """The largest share <= ``share`` (halving) such that ``count`` actors fit on the nodes."""
    share = min(share, max(cpus))
    while share > 0.01 and sum(math.floor(c / share + 1e-9) for c in cpus) < count:
        share /= 2
    return round(share, 4)
