"""Serving benchmarks of issue 11, run by bench_store.py (or alone: ``--only-serving``):

1. batched windows/s through ``read_windows`` vs the same windows sliced from a raw .npy memmap;
2. the training path (sampler batches -> read_windows) from a local S3 server (moto, loopback)
   vs local disk, with the local chunk cache cold and warm;
3. Ray Data windows/s on the machine's 2 cores vs the same windows through the local sampler.

(The single-window public-API rate is in bench_store.py's main table.) Every comparison is
measured in the same run, in interleaved rounds; medians are reported with the load average.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

import featurestore
from featurestore.reader import StoreWindows
from featurestore.sampler import WindowSampler

B = 64  # windows per batch


def _median_rounds(fns: dict, rounds: int) -> dict[str, float]:
    got: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            got[k].append(fn())
    return {k: float(np.median(v)) for k, v in got.items()}


def batched_vs_memmap(store_path: Path, memmap_path: Path, lengths: list[int], win: int,
                      stride: int, rounds: int, batches: int) -> dict:
    """windows/s of B-window batches in sampler order: store (default 64 MB LRU; and an LRU as
    large as the data) vs numpy fancy copy from the memmap of the same windows (+ pad mask)."""
    names = [f"v{i:04d}" for i in range(len(lengths))]
    sampler = WindowSampler(dict(zip(names, lengths, strict=True)), win, stride, seed=0)
    items = sampler.epoch_items(0)[:batches * B]
    mm = np.load(memmap_path, mmap_mode="r")
    starts = dict(zip(names, np.concatenate([[0], np.cumsum(lengths)])[:-1].tolist(), strict=True))
    nframes = dict(zip(names, lengths, strict=True))
    big = featurestore.open(store_path, cache_bytes=1 << 40)
    big.read_windows("emb", items, win)  # warm: every chunk decoded once

    def memmap_rate() -> float:
        t = time.perf_counter()
        for k in range(0, len(items), B):
            out = np.empty((B, win, mm.shape[1]), np.float16)
            pad = np.zeros((B, win), bool)
            for j, (v, a) in enumerate(items[k:k + B]):
                m = min(win, nframes[v] - a)
                out[j, :m] = mm[starts[v] + a:starts[v] + a + m]
                out[j, m:] = out[j, m - 1]
                pad[j, m:] = True
        return len(items) / (time.perf_counter() - t)

    def store_rate(store) -> float:
        t = time.perf_counter()
        for k in range(0, len(items), B):
            store.read_windows("emb", items[k:k + B], win)
        return len(items) / (time.perf_counter() - t)

    return _median_rounds({
        "memmap": memmap_rate,
        "store_lru64": lambda: store_rate(featurestore.open(store_path)),  # fresh LRU each round
        "store_warm": lambda: store_rate(big),
    }, rounds) | {"windows": len(items)}


def _moto_server():
    """moto's standalone S3 server in its own process on loopback (the port it prints)."""
    import re
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "0"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        found = re.search(r"Running on (http://127\.0\.0\.1:\d+)", line)
        if found:
            break
    else:
        raise RuntimeError("moto server did not start")
    threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()  # drain
    return proc, found.group(1)


def remote_vs_local(store_path: Path, names: list[str], win: int, stride: int,
                    rounds: int, work: Path) -> dict:
    """One epoch of the training path over ``names`` from S3 (moto's server in another process
    on loopback, sharing the 2 cores) vs local disk; local chunk cache cold vs warm. Each round
    opens the store first (untimed, reported apart): a training process opens it once."""
    import boto3
    import s3fs

    server, endpoint = _moto_server()
    opts = {"key": "bench", "secret": "bench", "endpoint_url": endpoint,
            "client_kwargs": {"region_name": "us-east-1"}}
    try:
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="bench",
                     aws_secret_access_key="bench").create_bucket(Bucket="bench")
        fs = s3fs.S3FileSystem(**opts)
        t = time.perf_counter()
        fs.put(str(store_path), "bench/store.zarr", recursive=True)
        upload_s = time.perf_counter() - t
        url = "s3://bench/store.zarr"
        local = featurestore.open(store_path)
        sampler = WindowSampler.from_store(local, names, win, stride, seed=0)
        items = sampler.epoch_items(0)
        cache_root = work / "s3cache"

        opens: list[float] = []

        def epoch(src: StoreWindows, cold_cache: bool = False) -> float:
            t = time.perf_counter()
            first = list({v: (v, a) for v, a in items}.values())
            src.read(first)  # open: catalog, set metadata, commit flags (untimed, once a process)
            opens.append(time.perf_counter() - t)
            src.store._cache = type(src.store._cache)(64 << 20)  # the timed epoch starts empty
            if cold_cache:  # ... and so does the local cache folder
                for sub in cache_root.iterdir():
                    shutil.rmtree(sub)
            if src.store._disk is not None:
                src.store._disk.hits = src.store._disk.misses = 0
            t = time.perf_counter()
            for k in range(0, len(items), B):
                src.read(items[k:k + B])
            return len(items) / (time.perf_counter() - t)

        def cold() -> float:
            shutil.rmtree(cache_root, ignore_errors=True)
            return epoch(StoreWindows(url, "emb", win, storage_options=opts, local_cache=cache_root),
                         cold_cache=True)

        def warm() -> float:  # a new process's view: empty memory LRU, cache folder filled
            if not cache_root.exists():
                cold()
            return epoch(StoreWindows(url, "emb", win, storage_options=opts, local_cache=cache_root))

        res = _median_rounds({"local": lambda: epoch(StoreWindows(store_path, "emb", win)),
                              "s3_cold": cold, "s3_warm": warm}, rounds)
        res.update(windows=len(items), upload_s=upload_s, open_s=float(np.median(opens)),
                   cache_mb=sum(f.stat().st_size for f in cache_root.rglob("*") if f.is_file()) / 1e6)
        return res
    finally:
        server.terminate()
        server.wait(30)


def raydata_vs_sampler(store_path: Path, names: list[str], win: int, stride: int,
                       rounds: int) -> dict:
    """windows/s of one pass: Ray Data (local Ray, 2 CPUs, read tasks + iter_batches) vs the
    local sampler + read_windows in this process. Ray start-up is excluded (timed apart)."""
    import ray

    from jobs.raydata import read_windows
    from jobs.raylocal import init_ray

    t = time.perf_counter()
    init_ray(num_cpus=2)
    start_s = time.perf_counter() - t
    local = featurestore.open(store_path)
    sampler = WindowSampler.from_store(local, names, win, stride, seed=0)
    n = len(sampler)

    def via_ray() -> float:
        t = time.perf_counter()
        ds = read_windows(store_path, "emb", win, stride, videos=names, seed=0, dtype=None)
        got = sum(len(b["start"]) for b in ds.iter_batches(batch_size=B, batch_format="numpy"))
        assert got == n
        return n / (time.perf_counter() - t)

    def via_sampler() -> float:
        src = StoreWindows(store_path, "emb", win)
        smp = WindowSampler.from_store(src.store, names, win, stride, seed=0)
        t = time.perf_counter()
        got = sum(len(src.read(batch)) for batch in smp.batches(B))
        assert got == n
        return n / (time.perf_counter() - t)

    try:
        res = _median_rounds({"sampler": via_sampler, "ray": via_ray}, rounds)
    finally:
        ray.shutdown()
    return res | {"windows": n, "ray_start_s": start_s}


def run(store_path: Path, memmap_path: Path, lengths: list[int], win: int, stride: int,
        rounds: int, work: Path | None = None) -> list[str]:
    """All three; returns markdown lines for BENCHMARKS.md."""
    work = Path(tempfile.mkdtemp(prefix="serving_", dir=work))
    load0 = os.getloadavg()[0]
    try:
        bm = batched_vs_memmap(store_path, memmap_path, lengths, win, stride, rounds, batches=20)
        sub = [f"v{i:04d}" for i in range(min(12, len(lengths)))]  # ~12 videos: S3 and Ray
        rm = remote_vs_local(store_path, sub, win, stride, rounds, work)
        try:
            rd = raydata_vs_sampler(store_path, sub, win, stride, rounds)
        except Exception as err:  # e.g. Ray's start-up timing out on an overloaded machine
            rd = {"error": f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load1 = os.getloadavg()[0]
    frames = sum(lengths[:len(sub)])
    return [
        f"Serving (medians of {rounds} interleaved rounds; load average {load0:.1f} at the start, "
        f"{load1:.1f} at the end of this part; batches of {B} windows of {win} frames):", "",
        "| measure | windows/s | ratio | baseline (same run) |", "| --- | ---: | ---: | --- |",
        f"| memmap: same windows copied into (B, L, D) + pad | {bm['memmap']:,.0f} | 1.00 | - |",
        f"| `read_windows`, fresh store, default 64 MB LRU ({bm['windows']:,} shuffled windows) "
        f"| {bm['store_lru64']:,.0f} | {bm['store_lru64'] / bm['memmap']:.2f} | memmap |",
        f"| `read_windows`, LRU holding the decoded data | {bm['store_warm']:,.0f} "
        f"| {bm['store_warm'] / bm['memmap']:.2f} | memmap |",
        f"| training path, local disk ({rm['windows']:,} windows of {len(sub)} videos, "
        f"{frames:,} frames) | {rm['local']:,.0f} | 1.00 | - |",
        f"| same from S3 (moto on loopback), local cache cold | {rm['s3_cold']:,.0f} "
        f"| {rm['s3_cold'] / rm['local']:.2f} | local disk |",
        f"| same from S3, local cache warm ({rm['cache_mb']:.0f} MB) | {rm['s3_warm']:,.0f} "
        f"| {rm['s3_warm'] / rm['local']:.2f} | local disk |",
        *([f"| local sampler + `read_windows`, one process | {rd['sampler']:,.0f} | 1.00 | - |",
           f"| Ray Data `read_windows` dataset, 2 CPUs, `iter_batches` | {rd['ray']:,.0f} "
           f"| {rd['ray'] / rd['sampler']:.2f} | local sampler |"] if "error" not in rd else
          [f"| Ray Data vs local sampler | not measured | - | Ray failed: {rd['error']} |"]), "",
        f"Upload of the store to the S3 server: {rm['upload_s']:.1f} s; opening the store before "
        f"an epoch (catalog, set metadata, commit flags; excluded above, median over local and "
        f"S3): {rm['open_s']:.2f} s; Ray start-up "
        f"(excluded above): {rd.get('ray_start_s', float('nan')):.1f} s.",
    ]
