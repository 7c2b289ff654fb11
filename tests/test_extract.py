"""Extraction: the Ray-free scheduler, VideoExtractor without Ray, and the job on Ray.

Real components end to end: a synthetic Aff-Wild2 tree, an ingested store, an LMDB pack and a
tiny (32 px) MAE checkpoint. Ray runs twice: an in-process instance (init_ray) and a simulated
three-node cluster on loopback.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

import featurestore
from encoders.video import VideoWrite
from jobs import raylocal
from jobs.extract_pool import (
    ExtractionError,
    WorkerDied,
    longest_first,
    plan_actors,
    schedule,
)

torch.set_num_threads(1)


def build_tiny_data(root: Path) -> dict[str, str]:
    """Synthetic frames (tree + LMDB pack), an ingested store and a tiny checkpoint under root."""
    from encoders.checkpoint import save_checkpoint
    from encoders.mae import MaskedAutoencoder
    from encoders.presets import get_preset
    from featurestore.ingest import ingest_affwild2
    from featurestore.pack import pack_frames
    from featurestore.synth import SynthConfig, generate

    generate(root / "data", SynthConfig(videos=4, frames=20, size=32, faces=0, test_videos=1,
                                        seed=1), progress=False)  # fmt: skip
    ingest_affwild2(root / "data" / "affwild2", root / "store.zarr", progress=False)
    pack_frames(root / "data" / "affwild2", root / "pack", progress=False)
    torch.manual_seed(0)
    cfg = get_preset("tiny", img_size=32)
    save_checkpoint(root / "ckpt", MaskedAutoencoder(cfg), cfg, {})
    return {"tree": str(root / "data" / "affwild2"), "pack": str(root / "pack"),
            "store": str(root / "store.zarr"), "ckpt": str(root / "ckpt")}  # fmt: skip


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, str]:
    return build_tiny_data(tmp_path_factory.mktemp("extract"))


def direct_features(paths: dict[str, str], video: str) -> np.ndarray:
    """(n_present, D) float16 of a plain encoder forward, the reference for every store."""
    from encoders.encode import FrameEncoder
    from featurestore.frames import open_frames

    enc = FrameEncoder(paths["ckpt"], batch_size=7)
    return enc.encode_video(open_frames(paths["pack"]), video).astype(np.float16)


def assert_set_equals_direct(paths: dict[str, str], name: str) -> None:
    store = featurestore.open(paths["store"])
    assert sorted(store.committed(name)) == sorted(store.videos())
    for video in store.videos():
        present = store.present(video)
        got = store.features(name, video)[present]  # (n_present, D)
        np.testing.assert_allclose(got.astype(np.float32),
                                   direct_features(paths, video).astype(np.float32),
                                   rtol=2e-3, atol=2e-3)  # fmt: skip


# ---------------------------------------------------------------- pure scheduling (no Ray)


class ListBackend:
    """In-process workers over a function; ``die`` maps video -> attempts that die first."""

    def __init__(self, fn, die=None):
        self.fn, self.die, self.started, self.attempts = fn, dict(die or {}), [], {}
        self._next, self.outcome, self.submitted = 0, {}, []

    def start(self, worker):
        self.started.append(worker)

    def replace(self, worker):
        self.start(worker)

    def submit(self, worker, video):
        self._next += 1
        self.submitted.append(video)
        self.attempts[video] = self.attempts.get(video, 0) + 1
        self.outcome[self._next] = (worker, video)
        return self._next

    def wait(self, tickets, timeout):
        return tickets[:1]

    def result(self, ticket):
        worker, video = self.outcome.pop(ticket)
        if self.die.get(video, 0) >= self.attempts[video]:
            raise WorkerDied(f"worker {worker} killed")
        return self.fn(video, worker)


def test_schedule_runs_longest_first_and_redoes_videos_of_dead_workers():
    sizes = {"a": 3, "b": 10, "c": 0, "d": 7}
    backend = ListBackend(lambda v, w: VideoWrite(v, sizes[v], 0.1, True, "n", w), die={"d": 2})
    stats = schedule(list(sizes), sizes, backend, workers=2, every_s=0.01)
    assert sorted(r.video for r in stats.results) == ["a", "b", "c", "d"]
    assert list(dict.fromkeys(backend.submitted)) == ["b", "d", "a", "c"]  # longest first
    assert backend.attempts == {"a": 1, "b": 1, "c": 1, "d": 3}  # d's worker died twice
    assert stats.replaced_workers == 2 and len(backend.started) == 4 and stats.frames == 20
    assert longest_first(["x", "y"], {"x": 1, "y": 2}) == ["y", "x"]


def test_schedule_collects_failures_and_gives_up_after_max_retries():
    def fn(video, worker):
        if video == "bad":
            raise ValueError("bad.jpg: cannot decode JPEG")
        return VideoWrite(video, 1, 0.0, True)

    backend = ListBackend(fn, die={"doomed": 99})
    with pytest.raises(ExtractionError) as err:
        schedule(["ok", "bad", "doomed"], {}, backend, workers=1, max_retries=2)
    assert set(err.value.failures) == {"bad", "doomed"}
    assert [r.video for r in err.value.stats.results] == ["ok"]  # the others still ran
    assert backend.attempts["doomed"] == 3


class DyingPool:
    """Workers holding several videos at once; a video in ``kill`` kills its worker, and every
    other video that worker held fails with it (as when an actor process dies)."""

    def __init__(self, kill):
        self.kill, self.gen, self.tickets, self.log, self._next = set(kill), {}, {}, [], 0
        self.replaced = []

    def start(self, worker):
        self.gen[worker] = self.gen.get(worker, -1) + 1

    def replace(self, worker):
        self.replaced.append(worker)
        self.start(worker)

    def submit(self, worker, video):
        self._next += 1
        self.tickets[self._next] = (worker, self.gen[worker], video)
        self.log.append((worker, video))
        return self._next

    def wait(self, tickets, timeout):
        return tickets[:1]

    def result(self, ticket):
        worker, gen, video = self.tickets.pop(ticket)
        if video in self.kill:
            self.kill.discard(video)
            self.gen[worker] += 1  # the process is gone: its other calls fail too
            raise WorkerDied(f"worker {worker} killed on {video}")
        if gen != self.gen[worker]:
            raise WorkerDied(f"worker {worker} died with {video} queued")
        return VideoWrite(video, 1, 0.0, True, "", worker)


def test_two_videos_in_flight_per_worker_and_a_death_redoes_both_with_one_replacement():
    videos = [f"v{i}" for i in range(6)]
    pool = DyingPool(kill={"v0"})
    stats = schedule(videos, {}, pool, workers=1, in_flight=2, max_retries=1)
    assert sorted(r.video for r in stats.results) == videos  # v1 died with v0 and was redone
    assert pool.log[:2] == [(0, "v0"), (0, "v1")]  # the worker held two videos at once
    assert pool.replaced == [0] and stats.replaced_workers == 1  # one death, one replacement
    assert [v for _, v in pool.log].count("v1") == 2
    with pytest.raises(ValueError, match="in_flight"):
        schedule(videos, {}, pool, workers=1, in_flight=0)


def test_plan_actors_fits_the_nodes():
    assert plan_actors([2], [0]).count == 2 and plan_actors([2], [0]).device == "cpu"
    four = plan_actors([2], [0], requested=4)
    assert four.num_cpus == 0.5 and four.threads == 1
    one = plan_actors([1, 1, 1], [0, 0, 0], requested=1)
    assert one.num_cpus == 1.0  # never more than one node holds: it would stay pending
    gpu = plan_actors([16, 16], [1, 1])
    assert gpu.count == 2 and gpu.num_gpus == 1.0 and gpu.device == "cuda"
    with pytest.raises(ValueError, match="actors"):
        plan_actors([2], [0], requested=0)


# ---------------------------------------------------------------- VideoExtractor without Ray


def test_video_extractor_writes_a_direct_forward_once(data):
    from encoders.encode import FrameEncoder
    from encoders.video import VideoExtractor

    enc = FrameEncoder(data["ckpt"])
    featurestore.open(data["store"], "a").create_feature_set("plain", enc.dim,
                                                             provenance=enc.provenance)  # fmt: skip
    ex = VideoExtractor(data["tree"], data["ckpt"], data["store"], "plain", batch_size=5)
    store = featurestore.open(data["store"])
    video = max(store.videos(), key=lambda v: (~store.present(v)).sum())  # one with gaps
    assert (~store.present(video)).any()
    first = ex.run(video)
    assert first.written and first.frames == store.present(video).sum()
    assert not ex.run(video).written  # committed: never rewritten
    got = featurestore.open(data["store"]).features("plain", video)[store.present(video)]
    np.testing.assert_allclose(got.astype(np.float32),
                               direct_features(data, video).astype(np.float32), rtol=2e-3,
                               atol=2e-3)  # fmt: skip


def test_overlapping_runs_of_one_extractor_write_what_one_at_a_time_writes(data):
    """Two run() calls at once (the actor's max_concurrency=2): the same bytes as one by one."""
    from concurrent.futures import ThreadPoolExecutor

    from encoders.encode import FrameEncoder
    from encoders.video import VideoExtractor

    enc = FrameEncoder(data["ckpt"])
    store = featurestore.open(data["store"], "a")
    for name in ("serial", "overlap"):
        store.create_feature_set(name, enc.dim, provenance=enc.provenance)
    videos = featurestore.open(data["store"]).videos()
    serial = VideoExtractor(data["pack"], data["ckpt"], data["store"], "serial", batch_size=4)
    for video in videos:
        assert serial.run(video).written
    overlap = VideoExtractor(data["pack"], data["ckpt"], data["store"], "overlap", batch_size=4)
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(overlap.run, videos))
    assert [r.written for r in results] == [True] * len(videos)
    store = featurestore.open(data["store"])
    for video in videos:
        np.testing.assert_array_equal(store.features("overlap", video), store.features("serial", video))


def test_short_job_runs_in_process_without_ray_and_equals_a_direct_forward(data):
    import ray

    from jobs.extract import ExtractConfig, run_extraction

    if ray.is_initialized():
        pytest.skip("a Ray session of another test is open in this process")
    cfg = ExtractConfig(data["pack"], data["ckpt"], data["store"], "inline", batch_size=6,
                        inline_frames=10_000)  # fmt: skip
    stats = run_extraction(cfg)
    assert not ray.is_initialized()  # no Ray, no actor: the driver did the work
    assert stats.frames > 0 and {r.worker for r in stats.results} == {0}
    assert_set_equals_direct(data, "inline")
    assert run_extraction(cfg).frames == 0  # a rerun resumes: nothing left
    with pytest.raises(ValueError, match="inline_frames"):
        ExtractConfig("f", "c", "s", "x", inline_frames=-1)


# ---------------------------------------------------------------- the job on Ray


@pytest.fixture(scope="module")
def local_ray():
    import ray

    from jobs.raylocal import init_ray

    saved = os.environ.pop("RAY_ADDRESS", None)
    init_ray(num_cpus=2)
    yield ray
    ray.shutdown()
    if saved is not None:
        os.environ["RAY_ADDRESS"] = saved


@pytest.mark.ray
def test_job_writes_every_video_and_a_rerun_writes_nothing(data, local_ray):
    from jobs.extract import ExtractConfig, run_extraction

    cfg = ExtractConfig(data["pack"], data["ckpt"], data["store"], "mae-pt", actors=2,
                        batch_size=8, every_s=1.0)  # fmt: skip
    stats = run_extraction(cfg)
    # init_ray's in-process instance (raylet, GCS: children in our process group) is loopback-only
    sockets = raylocal.listening_sockets(os.getpgrp())
    assert sockets and all(ip in raylocal.LOOPBACK_HOSTS for _, ip, _ in sockets), sockets
    store = featurestore.open(data["store"])
    assert sorted(stats.written) == sorted(store.videos())
    assert_set_equals_direct(data, "mae-pt")
    again = run_extraction(cfg)
    assert again.written == [] and again.frames == 0


@pytest.mark.ray
def test_job_on_ray_writes_the_pixel_baseline(data, local_ray):
    """``--checkpoint pixels:SIDE`` goes through the same actors: no checkpoint, no torch model."""
    from encoders.pixels import PixelEncoder
    from featurestore.frames import open_frames
    from jobs.extract import ExtractConfig, run_extraction

    stats = run_extraction(ExtractConfig(data["pack"], "pixels:3g", data["store"], "pix3g",
                                         actors=2, every_s=1.0))
    store = featurestore.open(data["store"])
    assert sorted(stats.written) == sorted(store.videos())
    assert store.feature_info("pix3g").provenance["preset"] == "pixels-grey"
    frames = open_frames(data["pack"])
    for video in store.videos():
        present = store.present(video)
        want = PixelEncoder("pixels:3g").encode_video(frames, video).astype(np.float16)
        np.testing.assert_array_equal(store.features("pix3g", video)[present], want)


def kill_one_other_actor(ray, set_name: str, killed: list[str]):
    """on_result hook: once, kill a named extraction actor of another slot (busy or starting)."""

    def hook(result: VideoWrite) -> None:
        if killed:
            return
        mine = f"extract:{set_name}:{result.worker}:"
        for name in ray.util.list_named_actors():
            if name.startswith(f"extract:{set_name}:") and not name.startswith(mine):
                ray.kill(ray.get_actor(name), no_restart=True)
                killed.append(name)
                return

    return hook


@pytest.mark.ray
@pytest.mark.slow
def test_three_node_job_spreads_and_survives_a_killed_actor(data):
    """Three nodes on loopback: features equal a direct forward, work ran on >1 node, and an
    actor killed mid-run is replaced with every video still committed exactly once."""
    import ray
    from ray.cluster_utils import Cluster

    from jobs.extract import ExtractConfig, run_extraction

    ray.shutdown()  # the in-process instance of the tests above, if any
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        for i in (2, 3):
            cluster.add_node(num_cpus=1, resources={f"node{i}": 1})
        cluster.wait_for_nodes()
        ray.init(address=cluster.address)
        killed: list[str] = []
        cfg = ExtractConfig(data["pack"], data["ckpt"], data["store"], "spread", actors=2,
                            batch_size=8, every_s=1.0, address=cluster.address)  # fmt: skip
        stats = run_extraction(cfg, on_result=kill_one_other_actor(ray, "spread", killed))
        assert len(stats.nodes) > 1, stats.nodes  # 1 CPU per node: two actors, two nodes
        assert killed and stats.replaced_workers >= 1
        written = [r.video for r in stats.results if r.written]
        assert len(written) == len(set(written))  # no video written twice
        assert_set_equals_direct(data, "spread")
    finally:
        ray.shutdown()
        cluster.shutdown()
