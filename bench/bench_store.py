"""Feature store vs the public ABAW layout (one .npy per frame + one .npz per window) vs one raw
.npy memmap, on the same embedding-like float16 data (smooth random walks per video + noise).

    .venv/bin/python bench/bench_store.py [--frames 200000] [--videos 40] [--dir /tmp/x]
    .venv/bin/python bench/bench_store.py --scale        # 3,000,000 x 768, about 550 videos

Prints a table with ratios against the baselines and updates the "bench_store" section of
BENCHMARKS.md (other sections are kept).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import click
import numpy as np

import featurestore
from featurestore import layout as L
from featurestore.ingest import VideoRecord, create_store
from featurestore.verify import verify

DIM = 768
WIN, STRIDE = 300, 200
ROUNDS = 3
BEGIN, END = "<!-- bench_store:begin -->", "<!-- bench_store:end -->"


def video_lengths(frames: int, videos: int, seed: int) -> list[int]:
    rng = np.random.default_rng(seed)
    w = rng.uniform(0.5, 1.5, videos)
    n = np.maximum(WIN + 1, (w / w.sum() * frames).astype(int))
    n[-1] += frames - n.sum()
    return n.tolist()


def video_features(i: int, n: int) -> np.ndarray:
    """(n, DIM) float16: a smooth random walk plus small noise, like per-frame embeddings."""
    rng = np.random.default_rng(1000 + i)
    x = rng.standard_normal((n, DIM), dtype=np.float32)
    x *= 0.05
    np.cumsum(x, axis=0, out=x)
    x += rng.standard_normal(DIM, dtype=np.float32)  # per-video mean
    x += 0.02 * rng.standard_normal((n, DIM), dtype=np.float32)
    return x.astype(np.float16)


def du(path: Path) -> tuple[int, int]:
    files, size = 0, 0
    for root, _, names in os.walk(path):
        for f in names:
            files += 1
            size += os.path.getsize(os.path.join(root, f))
    return size, files


def build_store(path: Path, lengths: list[int]) -> float:
    catalog = [VideoRecord(f"v{i:04d}", f"v{i:04d}", n, np.ones(n, bool), {"va": "train"}, {})
               for i, n in enumerate(lengths)]
    t = time.perf_counter()
    create_store(path, catalog)
    w = featurestore.open(path, mode="a").create_feature_set("emb", DIM)
    for i, n in enumerate(lengths):
        w.write_video(f"v{i:04d}", video_features(i, n))
    return time.perf_counter() - t


def build_memmap(path: Path, lengths: list[int]) -> float:
    t = time.perf_counter()
    mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(sum(lengths), DIM))
    pos = 0
    for i, n in enumerate(lengths):
        mm[pos:pos + n] = video_features(i, n)
        pos += n
    mm.flush()
    del mm
    return time.perf_counter() - t


def build_per_frame(root: Path, lengths: list[int]) -> float:
    """The public ABAW code's layout: <video>/<frame>.npy plus windows/<video>_<k>.npz."""
    t = time.perf_counter()
    for i, n in enumerate(lengths):
        x = video_features(i, n)
        d = root / "frames" / f"v{i:04d}"
        d.mkdir(parents=True)
        for f in range(n):
            np.save(d / f"{f + 1:05d}.npy", x[f])
        wd = root / "windows"
        wd.mkdir(exist_ok=True)
        for k, s in enumerate(range(0, max(1, n - WIN + 1), STRIDE)):
            np.savez(wd / f"v{i:04d}_{k}.npz", feature=x[s:s + WIN])
    return time.perf_counter() - t


def windows_per_s(read, lengths: list[int], count: int, rng: np.random.Generator) -> float:
    vids = rng.integers(0, len(lengths), count)
    starts = [int(rng.integers(0, lengths[v] - WIN + 1)) for v in vids]
    t = time.perf_counter()
    for v, s in zip(vids, starts, strict=True):
        read(int(v), s)
    return count / (time.perf_counter() - t)


def interleaved(readers: dict, lengths: list[int], counts: dict, rounds: int = ROUNDS) -> dict:
    """Median windows/s of each reader over ``rounds`` interleaved rounds (the machine is shared:
    interleaving exposes every reader to the same load)."""
    rng = np.random.default_rng(3)
    got: dict[str, list[float]] = {k: [] for k in readers}
    for _ in range(rounds):
        for key, read in readers.items():
            got[key].append(windows_per_s(read, lengths, counts[key], rng))
    return {k: float(np.median(v)) for k, v in got.items()}


def fold(lengths: list[int]) -> list[int]:
    return [i for i in range(len(lengths)) if i % 5 != 0]  # 80% of the videos


def load_store_fold(path: Path, lengths: list[int]) -> tuple[featurestore.FeatureStore, object, dict]:
    t = time.perf_counter()
    s = featurestore.open(path)
    open_s = time.perf_counter() - t
    tracemalloc.start()
    t = time.perf_counter()
    loaded = s.load("emb", [f"v{i:04d}" for i in fold(lengths)])
    load_s = time.perf_counter() - t
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return s, loaded, {"open_s": open_s, "load_s": load_s, "peak_ratio": peak / loaded.array.nbytes}


def load_memmap_fold(path: Path, lengths: list[int]) -> tuple[np.ndarray, np.ndarray, float]:
    mm = np.load(path, mmap_mode="r")
    starts = np.concatenate([[0], np.cumsum(lengths)])
    t = time.perf_counter()
    arr = np.concatenate([np.asarray(mm[starts[i]:starts[i + 1]]) for i in fold(lengths)])
    del arr
    return mm, starts, time.perf_counter() - t


def per_frame_fold_s(root: Path, lengths: list[int]) -> float:
    t = time.perf_counter()
    for i in fold(lengths)[:4]:  # whole fold is minutes: time 4 videos and scale by frames
        d = root / "frames" / f"v{i:04d}"
        np.stack([np.load(d / f"{f + 1:05d}.npy") for f in range(lengths[i])])
    part = sum(lengths[i] for i in fold(lengths)[:4])
    return (time.perf_counter() - t) * sum(lengths[i] for i in fold(lengths)) / part


def measure(paths: dict, lengths: list[int], windows: int) -> dict:
    s, loaded, st = load_store_fold(paths["store"], lengths)
    mm, starts, mm_load = load_memmap_fold(paths["memmap"], lengths)
    pf_load = per_frame_fold_s(paths["per_frame"], lengths)
    idx = fold(lengths)
    pos = [loaded.spans[f"v{i:04d}"][0] for i in idx]
    fl = [lengths[i] for i in idx]

    def npz_window(v: int, a: int) -> np.ndarray:  # the public code reads a precomputed window
        k = min(a // STRIDE, max(0, (lengths[v] - WIN) // STRIDE))
        with np.load(paths["per_frame"] / "windows" / f"v{v:04d}_{k}.npz") as z:
            return z["feature"]

    readers = {  # train path: slice the bulk-loaded fold (store) / the memmap (baseline)
        "store_train": lambda v, a: np.array(loaded.array[pos[v] + a:pos[v] + a + WIN]),
        "memmap_train": lambda v, a: np.array(mm[starts[idx[v]] + a:starts[idx[v]] + a + WIN]),
        "per_frame": lambda v, a: npz_window(idx[v], a),
        "store_single": lambda v, a: s.features("emb", f"v{idx[v]:04d}", a, a + WIN),
        "store_nocache": lambda v, a: cold.features("emb", f"v{idx[v]:04d}", a, a + WIN),
        "zarr_slice": lambda v, a: zdata[zoff[v] + a:zoff[v] + a + WIN],  # the pre-issue-11 read
    }
    cold = featurestore.open(paths["store"], cache_bytes=0)
    zdata = cold.set_arrays("emb").data
    zoff = [cold.offset(f"v{i:04d}") for i in idx]
    counts = {"store_train": windows * 20, "memmap_train": windows * 20, "per_frame": windows,
              "store_single": windows, "store_nocache": windows, "zarr_slice": windows}
    wps = interleaved(readers, fl, counts)
    return {"store": {**st, "train_wps": wps["store_train"], "single_wps": wps["store_single"],
                      "nocache_wps": wps["store_nocache"], "zarr_wps": wps["zarr_slice"]},
            "memmap": {"load_s": mm_load, "train_wps": wps["memmap_train"],
                       "single_wps": wps["memmap_train"]},
            "per_frame": {"load_s": pf_load, "train_wps": wps["per_frame"],
                          "single_wps": wps["per_frame"]}}


CODECS = [(256, 5, "shuffle"), (512, 5, "shuffle"), (256, 3, "shuffle"), (256, 1, "shuffle"),
          (256, 3, "bitshuffle"), (512, 3, "bitshuffle"), (256, 5, "bitshuffle")]


def codec_sweep(lengths: list[int], work: Path) -> list[str]:
    """Bytes ratio, write speed and window reads/s of chunk/codec settings on the first videos."""
    import zarr
    from zarr.codecs import BloscCodec

    x = np.concatenate([video_features(i, n) for i, n in enumerate(lengths[:4])])  # (rows, DIM)
    arrays, rows = {}, {}
    for chunk, level, shuffle in CODECS:
        p = work / f"codec_{chunk}_{shuffle}_{level}.zarr"
        a = zarr.create_array(p, shape=x.shape, chunks=(chunk, DIM), dtype="float16",
                              compressors=BloscCodec(cname="zstd", clevel=level, shuffle=shuffle,
                                                     typesize=2),
                              config={"write_empty_chunks": True})
        t = time.perf_counter()
        a[:] = x
        rows[(chunk, level, shuffle)] = (du(p)[0] / x.nbytes, x.nbytes / (time.perf_counter() - t) / 1e6)
        arrays[(chunk, level, shuffle)] = lambda v, s, a=a: a[s:s + WIN]
    wps = interleaved(arrays, [len(x)], {k: 60 for k in arrays})
    return [f"| {c} | zstd {lv} {sh} | {rows[(c, lv, sh)][0]:.3f} | {rows[(c, lv, sh)][1]:.0f} "
            f"| {wps[(c, lv, sh)]:.0f} |" for c, lv, sh in CODECS]


def report(lengths, res, sizes, writes, codec_rows, cmd) -> str:
    raw = sum(lengths) * DIM * 2
    st, mm, pf = res["store"], res["memmap"], res["per_frame"]
    lines = [BEGIN, "## Feature store (bench/bench_store.py)", "", f"Command: `{cmd}`", "",
             f"{sum(lengths):,} frames x {DIM} float16 in {len(lengths)} videos "
             f"(raw {raw / 1e6:.0f} MB); fold = 80% of the videos; windows of {WIN} frames. "
             f"2 shared CPU cores (load average {os.getloadavg()[0]:.1f} at the end of the run), so "
             "rates are noisy; ratios are taken within this run.", "",
             "| layout | MB on disk | x raw | files | write s | train-path windows/s | fold load s "
             "| single-window reads/s |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for key, name in (("store", "this store (zarr)"), ("memmap", "one raw .npy memmap"),
                      ("per_frame", "public ABAW (.npy/frame + .npz/window)")):
        r, (b, f) = res[key], sizes[key]
        lines.append(f"| {name} | {b / 1e6:.0f} | {b / raw:.3f} | {f:,} | {writes[key]:.1f} "
                     f"| {r['train_wps']:,.0f} | {r['load_s']:.2f} | {r['single_wps']:,.0f} |")
    lines += ["", "Ratios:",
              f"- bytes: store / raw float16 = {sizes['store'][0] / raw:.3f} (target <= 0.87)",
              f"- files: per-frame / store = {sizes['per_frame'][1] / sizes['store'][1]:,.0f}x "
              "(target >= 100x)",
              f"- train-path windows/s: store / memmap = {st['train_wps'] / mm['train_wps']:.2f} "
              "(target >= 1)",
              f"- fold load: per-frame / store = {pf['load_s'] / st['load_s']:.0f}x slower "
              "(per-frame timed on 4 videos, scaled by frames)",
              f"- single-window `FeatureStore.features` reads/s: {st['single_wps']:.0f} with the default "
              f"64 MB chunk LRU, {st['nocache_wps']:.0f} with no cache (target >= 1,000); "
              f"baseline in the same run: one zarr slice per window (how `features` read before "
              f"issue 11, no LRU) {st['zarr_wps']:.0f}/s, so {st['nocache_wps'] / st['zarr_wps']:.2f}x "
              f"without and {st['single_wps'] / st['zarr_wps']:.2f}x with the LRU",
              f"- store open {st['open_s'] * 1e3:.0f} ms; fold load peak traced memory = "
              f"{st['peak_ratio']:.2f}x the fold's feature bytes (target <= 1.3)", "",
              f"Chunk/codec sweep on the first 4 videos (the store uses {L.CHUNK_FRAMES} frames, zstd "
              f"{L.BLOSC_CLEVEL} {L.BLOSC_SHUFFLE}; reads/s are medians of {ROUNDS} interleaved rounds):",
              "", "| chunk frames | codec | bytes / raw | write MB/s | window reads/s |",
              "| ---: | --- | ---: | ---: | ---: |",
              *codec_rows, "", END]
    return "\n".join(lines)


BENCHMARKS = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"


def update_benchmarks(text: str, path: Path = BENCHMARKS, marks: tuple = (BEGIN, END)) -> None:
    """Replace (or append) this benchmark's section of BENCHMARKS.md, atomically."""
    begin, end = marks
    old = path.read_text() if path.exists() else "# Benchmarks\n"
    if begin in old and end in old:
        new = old[:old.index(begin)] + text + old[old.index(end) + len(end):]
    else:
        new = old.rstrip("\n") + "\n\n" + text + "\n"
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    tmp.write_text(new)
    os.replace(tmp, path)


def add_scale_line(line: str, path: Path = BENCHMARKS) -> None:
    """Put the --scale result inside this benchmark's section (replacing an older one)."""
    old = path.read_text() if path.exists() else ""
    if END not in old:
        return update_benchmarks(f"{BEGIN}\n{line}\n{END}", path)
    head, tail = old[:old.index(END)], old[old.index(END):]
    head = "\n".join(x for x in head.split("\n") if not x.startswith("Scale (")).rstrip("\n")
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    tmp.write_text(f"{head}\n\n{line}\n\n{tail}")
    os.replace(tmp, path)


SERVING = ("<!-- bench_serving:begin -->", "<!-- bench_serving:end -->")


def run_serving(lengths: list[int], paths: dict, work: Path) -> str:
    """Issue 11's serving benchmarks (bench_serving.py) as their own BENCHMARKS.md section."""
    import bench_serving

    lines = bench_serving.run(paths["store"], paths["memmap"], lengths, WIN, STRIDE, ROUNDS, work)
    return "\n".join([SERVING[0], "### Serving other models (bench/bench_store.py)", "",
                      f"Command: `{' '.join(sys.argv)}`", "", *lines, SERVING[1]])


def run_default(frames: int, videos: int, work: Path, windows: int,
                serving_out: list | None = None) -> str:
    lengths = video_lengths(frames, videos, 0)
    paths = {"store": work / "store.zarr", "memmap": work / "raw.npy", "per_frame": work / "abaw"}
    writes = {"store": build_store(paths["store"], lengths),
              "memmap": build_memmap(paths["memmap"], lengths)}
    if serving_out is not None and serving_out == ["only"]:
        serving_out[0] = run_serving(lengths, paths, work)
        return ""
    writes["per_frame"] = build_per_frame(paths["per_frame"], lengths)
    sizes = {k: (os.path.getsize(p), 1) if p.is_file() else du(p) for k, p in paths.items()}
    res = measure(paths, lengths, windows)
    if serving_out is not None:
        serving_out.append(run_serving(lengths, paths, work))
    return report(lengths, res, sizes, writes, codec_sweep(lengths, work), " ".join(sys.argv))


def run_scale(work: Path) -> str:
    import resource

    lengths = video_lengths(3_000_000, 550, 1)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    build_s = build_store(work / "store.zarr", lengths)
    t = time.perf_counter()
    s = featurestore.open(work / "store.zarr")
    open_s = time.perf_counter() - t
    t = time.perf_counter()
    ok = verify(s, progress=False)["ok"]
    verify_s = time.perf_counter() - t
    s, loaded, res = load_store_fold(work / "store.zarr", lengths)
    del loaded
    res["single_wps"] = interleaved({"s": lambda v, a: s.features("emb", f"v{v:04d}", a, a + WIN)},
                                    lengths, {"s": 200})["s"]
    size, files = du(work / "store.zarr")
    fold_bytes = sum(lengths[i] for i in fold(lengths)) * DIM * 2
    return "\n".join([
        f"Scale (`{' '.join(sys.argv)}`): {sum(lengths):,} x {DIM} float16, {len(lengths)} videos: "
        f"build {build_s:.0f} s, {size / 1e9:.2f} GB ({size / (sum(lengths) * DIM * 2):.3f}x raw) in "
        f"{files:,} files, open {open_s * 1e3:.0f} ms, verify {verify_s:.0f} s (ok={ok}), fold load "
        f"{res['load_s']:.1f} s of {fold_bytes / 1e9:.2f} GB, traced peak {res['peak_ratio']:.2f}x the "
        f"fold bytes, single-window reads {res['single_wps']:.0f}/s, max RSS before build {rss0 / 1e3:.0f} MB."])


@click.command()
@click.option("--frames", default=200_000, show_default=True)
@click.option("--videos", default=40, show_default=True)
@click.option("--windows", default=300, show_default=True, help="Random windows per read test.")
@click.option("--dir", "work", default=None, help="Work folder (default: a temp folder, deleted).")
@click.option("--scale", is_flag=True, help="Build a 3,000,000 x 768 store instead (about 4 GB).")
@click.option("--no-write", is_flag=True, help="Print only; leave BENCHMARKS.md alone.")
@click.option("--serving/--no-serving", default=True, show_default=True,
              help="Also run the serving benchmarks (batched, S3, Ray Data).")
@click.option("--only-serving", is_flag=True, help="Run only the serving benchmarks.")
def main(frames: int, videos: int, windows: int, work: str | None, scale: bool, no_write: bool,
         serving: bool, only_serving: bool):
    base = Path(tempfile.mkdtemp(prefix="bench_store_", dir=work))
    extra = ["only"] if only_serving else [] if serving else None
    try:
        text = run_scale(base) if scale else run_default(frames, videos, base, windows, extra)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    for part in ([text] if text else []) + (extra or []):
        click.echo(part)
    if no_write:
        return
    if scale:
        add_scale_line(text)
    elif text:
        update_benchmarks(text)
    if extra:
        update_benchmarks(extra[0], marks=SERVING)


if __name__ == "__main__":
    main()
