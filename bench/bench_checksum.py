"""What checking every chunk costs: read throughput of a store with the crc32c codec (layout
version 2) against the same store with the checksum stripped (the layout-1 chain), in the same
run, in interleaved rounds.

    .venv/bin/python bench/bench_checksum.py [--frames 40000] [--videos 10] [--rounds 5]

The stripped copy is a benchmark artefact (the same chunk bytes without their last 4 bytes and
the codec entry): the library reads either chain, since it follows each array's metadata.
Measured: ``read_windows`` with no chunk LRU (every call fetches and decodes its chunks: the
fast path, crc32c checked by featurestore.chunks), and ``load`` of every video (zarr's codec
pipeline, crc32c checked by zarr). Prints medians and the ratio with / without.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import click
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import bench_store  # noqa: E402

import featurestore  # noqa: E402
from featurestore.sampler import WindowSampler  # noqa: E402

B = 64


def strip_checksums(src: Path, dst: Path) -> None:
    """Copy ``src`` to ``dst`` with every array's trailing crc32c codec (and its 4 bytes) removed."""
    shutil.copytree(src, dst)
    for meta in dst.rglob("zarr.json"):
        doc = json.loads(meta.read_text())
        if doc.get("node_type") != "array" or doc["codecs"][-1]["name"] != "crc32c":
            continue
        doc["codecs"] = doc["codecs"][:-1]
        meta.write_text(json.dumps(doc))
        for f in (meta.parent / "c").rglob("*"):
            if f.is_file():
                f.write_bytes(f.read_bytes()[:-4])


def rates(path: Path, lengths: list[int], batches: int) -> dict[str, float]:
    names = [f"v{i:04d}" for i in range(len(lengths))]
    s = featurestore.open(path, cache_bytes=0)  # no LRU: every read decodes its chunks
    items = WindowSampler(dict(zip(names, lengths, strict=True)), bench_store.WIN,
                          bench_store.STRIDE, seed=0).epoch_items(0)[:batches * B]
    t = time.perf_counter()
    for k in range(0, len(items), B):
        s.read_windows("emb", items[k:k + B], bench_store.WIN)
    windows = len(items) / (time.perf_counter() - t)
    t = time.perf_counter()
    rows = s.load("emb", names).array.shape[0]
    return {"read_windows": windows, "load": rows / (time.perf_counter() - t)}


@click.command()
@click.option("--frames", default=40_000, show_default=True)
@click.option("--videos", default=10, show_default=True)
@click.option("--rounds", default=5, show_default=True)
@click.option("--batches", default=10, show_default=True, help="Batches of 64 windows per round.")
def main(frames: int, videos: int, rounds: int, batches: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench_checksum_"))
    try:
        lengths = bench_store.video_lengths(frames, videos, 0)
        bench_store.build_store(work / "crc.zarr", lengths)
        strip_checksums(work / "crc.zarr", work / "plain.zarr")
        load0 = os.getloadavg()[0]
        got: dict[str, list[dict]] = {"crc": [], "plain": []}
        for _ in range(rounds):
            for key in got:
                got[key].append(rates(work / f"{key}.zarr", lengths, batches))
        load1 = os.getloadavg()[0]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    med = {k: {m: float(np.median([r[m] for r in v])) for m in v[0]} for k, v in got.items()}
    click.echo(f"{sum(lengths):,} x {bench_store.DIM} float16, {videos} videos; medians of "
               f"{rounds} interleaved rounds; load average {load0:.1f} -> {load1:.1f}")
    click.echo("| read | with crc32c | without | ratio |\n| --- | ---: | ---: | ---: |")
    for m, unit in (("read_windows", "windows/s"), ("load", "rows/s")):
        click.echo(f"| {m} ({unit}) | {med['crc'][m]:,.0f} | {med['plain'][m]:,.0f} | "
                   f"{med['crc'][m] / med['plain'][m]:.3f} |")


if __name__ == "__main__":
    main()
