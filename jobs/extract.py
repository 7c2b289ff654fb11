"""Extraction job: encode every frame of every video into a named feature set of the store.

    python -m jobs.raylocal start --run-dir runs/ray
    eval "$(python -m jobs.raylocal env --run-dir runs/ray)"
    ray job submit --working-dir . -- python jobs/extract.py --frames /abs/pack \\
        --checkpoint /abs/ckpt/mae-pt --store /abs/store.zarr --set mae-pt

Use absolute paths under `ray job submit`: the job runs in a copy of the working directory.
Without `ray job submit` the job connects to ``--address`` / ``RAY_ADDRESS`` or starts a local
loopback-only Ray. A pool of actors (one per GPU, else CPU shares) encodes videos longest first;
each actor writes the videos it encoded to the store itself (each video owns whole chunks, so
parallel writers are safe). Committed videos are skipped, so a rerun resumes; a dead actor is
replaced and its video redone. Extract ``mae-pt`` and ``mae-ft`` into one store by running the
job twice with different ``--checkpoint`` / ``--set``. A short job (at most ``--inline-frames``
frames, 1024 by default, and no ``--actors``) runs in the driver process without Ray: starting
Ray and an actor would cost more than the work.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

if __package__ in (None, ""):  # run as `python jobs/extract.py`: make `jobs` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import click

from featurestore.clierrors import ErrorCommand
from jobs.extract_pool import (
    ActorPlan,
    ExtractStats,
    InlineBackend,
    WorkerDied,
    plan_actors,
    schedule,
)

if TYPE_CHECKING:
    from encoders.video import VideoWrite

log = logging.getLogger("jobs.extract")


@dataclass(frozen=True)
class ExtractConfig:
    """What to extract where. ``videos=None``: every video of the store."""

    frames: str  # Aff-Wild2 root or LMDB pack
    checkpoint: str  # encoders checkpoint folder (pretrained or fine-tuned), or pixels:SIDE[g]
    store: str  # path or fsspec URL of an ingested store
    set_name: str
    actors: int | None = None  # None: one per GPU, else one per CPU
    batch_size: int = 64
    videos: tuple[str, ...] | None = None
    address: str | None = None
    every_s: float = 5.0  # progress log period
    max_retries: int = 3  # per video, on dead actors
    inline_frames: int = 1024  # jobs this small (and actors=None) run in this process, no Ray
    in_flight: int = 2  # videos per actor at once: one is written while the next is encoded

    def __post_init__(self) -> None:
        for name in ("frames", "checkpoint", "store", "set_name"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"ExtractConfig.{name} must be a non-empty str, got "
                                 f"{getattr(self, name)!r}")  # fmt: skip
        if self.actors is not None and self.actors < 1:
            raise ValueError(f"ExtractConfig.actors must be >= 1, got {self.actors!r}")
        if self.batch_size < 1:
            raise ValueError(f"ExtractConfig.batch_size must be >= 1, got {self.batch_size!r}")
        if self.every_s <= 0:
            raise ValueError(f"ExtractConfig.every_s must be > 0, got {self.every_s!r}")
        if self.inline_frames < 0:
            raise ValueError(f"ExtractConfig.inline_frames must be >= 0, got {self.inline_frames!r}")
        if self.in_flight not in (1, 2):  # the actor runs at most two calls at once
            raise ValueError(f"ExtractConfig.in_flight must be 1 or 2, got {self.in_flight!r}")
        if self.max_retries < 0:
            raise ValueError(f"ExtractConfig.max_retries must be >= 0, got {self.max_retries!r}")


def _actor_class():
    import ray

    @ray.remote(max_restarts=0, max_concurrency=2)  # write of video k || encode of video k+1
    class ExtractActor:
        """Ray shell over :class:`encoders.video.VideoExtractor`; reports the node it ran on."""

        def __init__(self, worker: int, *args, **kwargs):
            from encoders.video import VideoExtractor

            self.worker, self.inner = worker, VideoExtractor(*args, **kwargs)

        def run(self, video: str) -> VideoWrite:
            node = ray.get_runtime_context().get_node_id()
            return replace(self.inner.run(video), node=node, worker=self.worker)

    return ExtractActor


class RayBackend:
    """:class:`jobs.extract_pool.Backend` over named Ray actors (names end in a generation)."""

    def __init__(self, cfg: ExtractConfig, plan: ActorPlan):
        self.cfg, self.plan = cfg, plan
        self.cls = _actor_class()
        self.actors: dict[int, object] = {}
        self.generation: dict[int, int] = {}

    def start(self, worker: int) -> None:
        gen = self.generation[worker] = self.generation.get(worker, -1) + 1
        cfg, plan = self.cfg, self.plan
        self.actors[worker] = self.cls.options(
            name=f"extract:{cfg.set_name}:{worker}:{gen}",
            num_cpus=plan.num_cpus, num_gpus=plan.num_gpus,
        ).remote(worker, cfg.frames, cfg.checkpoint, cfg.store, cfg.set_name, plan.device,
                 batch_size=cfg.batch_size, threads=plan.threads)  # fmt: skip

    def replace(self, worker: int) -> None:
        import ray

        try:
            ray.kill(self.actors[worker], no_restart=True)
        except Exception as err:  # noqa: BLE001  (already dead is fine)
            log.debug("kill of dead actor %d: %s", worker, err)
        self.start(worker)

    def submit(self, worker: int, video: str) -> Hashable:
        return self.actors[worker].run.remote(video)

    def wait(self, tickets: list[Hashable], timeout: float) -> list[Hashable]:
        import ray

        ready, rest = ray.wait(tickets, num_returns=1, timeout=timeout)
        if ready and rest:
            more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
            ready += more
        return ready

    def result(self, ticket: Hashable) -> VideoWrite:
        import ray

        try:
            return ray.get(ticket)
        except ray.exceptions.RayActorError as err:  # ActorDiedError included
            raise WorkerDied(str(err).splitlines()[0]) from err

    def close(self) -> None:
        import ray

        for actor in self.actors.values():
            ray.kill(actor, no_restart=True)


def inline_backend(cfg: ExtractConfig) -> InlineBackend:
    """One in-process :class:`VideoExtractor` (CUDA when this process sees a GPU)."""
    import torch

    from encoders.video import VideoExtractor

    device = "cuda" if torch.cuda.is_available() else "cpu"
    return InlineBackend(lambda: VideoExtractor(cfg.frames, cfg.checkpoint, cfg.store,
                                                cfg.set_name, device, batch_size=cfg.batch_size))


def cluster_plan(requested: int | None) -> ActorPlan:
    """:func:`plan_actors` over the alive nodes of the connected Ray cluster."""
    import ray

    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    return plan_actors([n.get("CPU", 0.0) for n in nodes], [n.get("GPU", 0.0) for n in nodes],
                       requested)  # fmt: skip


def todo_videos(cfg: ExtractConfig, store, writer, source_videos: set[str]) -> dict[str, int]:
    """video -> frames with a face, for the uncommitted videos to extract (in store order)."""
    missing = writer.missing()
    if cfg.videos is not None:
        unknown = sorted(set(cfg.videos) - set(store.videos()))
        if unknown:
            raise ValueError(f"--videos names videos not in {store.path}: {unknown[:5]}")
        missing = [v for v in missing if v in set(cfg.videos)]
    sizes = {v: int(store.present(v).sum()) for v in missing}
    absent = [v for v, n in sizes.items() if n and v not in source_videos]
    if absent:
        raise ValueError(f"{cfg.frames}: no frames for {len(absent)} video(s) that have faces "
                         f"in the store: {absent[:5]}")  # fmt: skip
    return sizes


def _run_pool(cfg: ExtractConfig, sizes: dict[str, int],
              on_result: Callable[[VideoWrite], None] | None) -> ExtractStats:
    import ray

    from jobs.raylocal import init_ray

    # after every input was checked (a bad argument never starts Ray); left connected: the
    # caller may run more work on this Ray
    init_ray(cfg.address)
    plan = cluster_plan(cfg.actors)
    log.info("pool: %d actor(s) x (%.2f CPU, %.2f GPU, %d threads) on %s", plan.count,
             plan.num_cpus, plan.num_gpus, plan.threads, plan.device)  # fmt: skip
    backend = RayBackend(cfg, plan)
    try:
        return schedule(list(sizes), sizes, backend, plan.count, max_retries=cfg.max_retries,
                        every_s=cfg.every_s, in_flight=cfg.in_flight,
                        on_result=on_result)  # fmt: skip
    finally:
        if ray.is_initialized():
            backend.close()


def run_extraction(cfg: ExtractConfig,
                   on_result: Callable[[VideoWrite], None] | None = None) -> ExtractStats:  # fmt: skip
    """Extract the uncommitted videos of ``cfg.set_name`` on the connected (or a local) Ray;
    videos another driver is extracting at the same time are left to it (jobs.claims).

    A short job (at most ``cfg.inline_frames`` frames, no ``actors`` asked) runs in this process
    without starting Ray or an actor: for a few hundred frames their start-up is most of the wall
    clock (BENCHMARKS.md).
    """
    import featurestore
    from encoders.encode import feature_provenance
    from encoders.pixels import is_pixel_spec
    from featurestore.frames import open_frames
    from featurestore.outputs import check_output
    from jobs.claims import Claims

    inputs = {"--frames": cfg.frames}
    if not is_pixel_spec(cfg.checkpoint):  # pixels:SIDE names no file
        inputs["--checkpoint"] = cfg.checkpoint
    check_output(cfg.store, inputs, what="--store")
    provenance = feature_provenance(cfg.checkpoint)  # the checkpoint's JSON: width, no model
    store = featurestore.open(cfg.store, mode="a")
    claims = Claims(cfg.store, cfg.set_name)  # a second driver on this set: disjoint videos
    with claims.creating():
        writer = store.create_feature_set(cfg.set_name, provenance["dim"], provenance=provenance)
    sizes = todo_videos(cfg, store, writer, set(open_frames(cfg.frames).videos()))
    with claims:
        mine = set(claims.take(sizes))
        done = set(store.committed(cfg.set_name))  # after claiming: what a driver finished
        sizes = {v: n for v, n in sizes.items() if v in mine and v not in done}
        log.info("extract %s: %d video(s), %d frames to encode (%d already committed)",
                 cfg.set_name, len(sizes), sum(sizes.values()), len(done))  # fmt: skip
        if not sizes:
            return ExtractStats()
        if cfg.actors is None and sum(sizes.values()) <= cfg.inline_frames:
            log.info("short job: extracting in this process (no Ray actor)")
            return schedule(list(sizes), sizes, inline_backend(cfg), 1,
                            max_retries=cfg.max_retries, every_s=cfg.every_s,
                            on_result=on_result)  # fmt: skip
        stats = _run_pool(cfg, sizes, on_result)
    log.info("done: %d video(s) written, %d frames in %.1f s (%.1f frames/s) on %d node(s), "
             "%d actor(s) replaced", len(stats.written), stats.frames, stats.seconds,
             stats.frames_per_s, len(stats.nodes), stats.replaced_workers)  # fmt: skip
    return stats


@click.command(cls=ErrorCommand)
@click.option("--frames", required=True, help="Aff-Wild2 root or LMDB pack.")
@click.option("--checkpoint", required=True,
              help="Encoder checkpoint folder, or pixels:SIDE / pixels:SIDEg for the raw-pixel "
                   "baseline (the face box-averaged to SIDE x SIDE, RGB or grey).")
@click.option("--store", required=True, help="Feature store path or URL (ingested).")
@click.option("--set", "set_name", required=True, help="Feature set name, e.g. mae-pt.")
@click.option("--actors", type=int, default=None, help="Default: one per GPU, else per CPU.")
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--videos", multiple=True, help="Only these videos (repeatable).")
@click.option("--address", default=None, help="Ray address (default: RAY_ADDRESS or local).")
@click.option("--inline-frames", type=int, default=1024, show_default=True,
              help="Jobs this small run in this process, without Ray (unless --actors).")
@click.option("--in-flight", type=click.IntRange(1, 2), default=2, show_default=True,
              help="Videos per actor at once: 2 writes one while encoding the next.")
def main(frames: str, checkpoint: str, store: str, set_name: str, actors: int | None,
         batch_size: int, videos: Sequence[str], address: str | None,
         inline_frames: int, in_flight: int) -> None:  # fmt: skip
    """Encode every frame of every video into feature set SET of the store."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    cfg = ExtractConfig(frames, checkpoint, store, set_name, actors, batch_size,
                        tuple(videos) or None, address, inline_frames=inline_frames,
                        in_flight=in_flight)  # fmt: skip
    stats = run_extraction(cfg)
    click.echo(f"{len(stats.written)} video(s) written, {stats.frames} frames, "
               f"{stats.frames_per_s:.1f} frames/s")  # fmt: skip


if __name__ == "__main__":
    main()
