"""Fault injection for the extraction job: SIGKILLed drivers, a killed actor, a polling reader.

The real job runs as a subprocess (``python jobs/extract.py`` on its own in-process, loopback-only
Ray) over real components: a synthetic Aff-Wild2 tree packed into LMDB, an ingested store and a tiny
MAE checkpoint. The driver is SIGKILLed at seeded points (during start-up and after a seeded number
of commits), then rerun to completion; an actor is SIGKILLed mid-run
(the job replaces it). Checked:

- the final store equals an uninterrupted extraction byte for byte (every video's rows, the
  committed set, the checksums);
- no committed video is ever written again (its chunk files keep their inode, mtime and bytes
  across every later run) and none is missing;
- a reader process polling the store the whole time only ever sees complete videos;
- no process of any run survives (each run is its own session, killed as a whole).

Run as ``python tests/test_faults_extract.py reader STORE SET OUT STOP`` it is that reader.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from jobs.raylocal import proc_pids

REPO = Path(__file__).resolve().parent.parent
SET = "mae"
SEED = 20240611


# ---------------------------------------------------------------- processes


def session_pids(sid: int) -> list[int]:
    """Live (non-zombie) processes whose session id is ``sid`` (Linux /proc)."""
    return proc_pids("session", sid)


def kill_session(sid: int, timeout: float = 20.0) -> list[int]:
    """SIGKILL every process of session ``sid`` (one job run we started); returns survivors."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = session_pids(sid)
        if not pids:
            return []
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.2)
    return session_pids(sid)


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def start_job(paths: dict[str, str], log: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "jobs/extract.py", "--frames", paths["pack"], "--checkpoint", paths["ckpt"],
           "--store", paths["store"], "--set", SET, "--actors", "2", "--batch-size", "16"]
    with open(log, "ab") as out:
        return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


# ---------------------------------------------------------------- store inspection


def committed_flags(store_path: str) -> np.ndarray:
    import zarr

    root = zarr.open_group(store_path, mode="r")
    key = f"features/{SET}/committed"
    if key not in root:
        return np.zeros(0, bool)
    return np.asarray(root[key][:], dtype=bool)  # (V,)


def video_files(store_path: str, i: int) -> list[Path]:
    """Every chunk file that belongs to video ``i`` of the feature set (data, flag, checksum)."""
    import featurestore
    from featurestore import layout as L

    store = featurestore.open(store_path)
    video = store.videos()[i]
    first = store.offset(video) // L.CHUNK_FRAMES
    chunks = L.aligned_length(store.num_frames(video)) // L.CHUNK_FRAMES
    base = Path(store_path) / "features" / SET
    files = [base / "data" / "c" / str(c) / "0" for c in range(first, first + chunks)]
    files += [base / "committed" / "c" / str(i), base / "checksum" / "c" / str(i)]
    return files


def fingerprint(path: Path) -> tuple[int, int, str]:
    st = path.stat()
    return st.st_ino, st.st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(store_path: str) -> dict[int, list]:
    """video index -> fingerprints of its chunk files, for every committed video."""
    flags = committed_flags(store_path)
    return {int(i): [fingerprint(f) for f in video_files(store_path, int(i))]
            for i in np.flatnonzero(flags)}


def set_contents(store_path: str) -> dict[str, object]:
    """What must be identical between two extractions: committed set, rows, checksums."""
    import featurestore

    store = featurestore.open(store_path)
    committed = store.committed(SET)
    sums = store.set_arrays(SET).checksums()
    return {"committed": committed, "checksum": sums.tolist(),
            "rows": {v: store.features(SET, v).tobytes() for v in committed}}


# ---------------------------------------------------------------- the reader process


def reader_main(store_path: str, set_name: str, out: str, stop: str) -> None:
    """Poll the store until ``stop`` exists; every committed video must be complete."""
    import featurestore
    from featurestore.writer import checksum

    polls, checks, problems, seen = 0, 0, [], set()
    while not os.path.exists(stop):
        polls += 1
        try:
            store = featurestore.open(store_path, cache_bytes=0)
            if set_name not in store.feature_sets():
                time.sleep(0.05)
                continue
            # flags first: a checksum is written before its flag, so one read after is final
            committed = store.committed(set_name)
            sums = store.set_arrays(set_name).checksums()
            names = store.videos()
            for video in committed:
                rows = store.features(set_name, video)  # (n, dim)
                checks += 1
                seen.add(video)
                if rows.shape[0] != store.num_frames(video) or not np.isfinite(rows).all():
                    problems.append(f"{video}: shape {rows.shape} or non-finite rows")
                elif checksum(rows) != int(sums[names.index(video)]):
                    problems.append(f"{video}: checksum mismatch while committed")
        except Exception as err:  # noqa: BLE001  (every failure is a finding)
            problems.append(f"poll {polls}: {type(err).__name__}: {err}")
        time.sleep(0.05)
    tmp = f"{out}.tmp"
    Path(tmp).write_text(json.dumps({"polls": polls, "checks": checks, "problems": problems,
                                     "seen": sorted(seen)}))
    os.replace(tmp, out)


# ---------------------------------------------------------------- the test


def build_data(root: Path) -> dict[str, str]:
    """8 synthetic videos of ~120 frames at 112 px, packed; a fresh store; a tiny checkpoint.

    112 px (the real crop size) and ~120 frames make one video take a few tenths of a second to
    encode, so a kill after a commit lands while other videos are still in flight."""
    import torch

    from encoders.checkpoint import save_checkpoint
    from encoders.mae import MaskedAutoencoder
    from encoders.presets import get_preset
    from featurestore.ingest import ingest_affwild2
    from featurestore.pack import pack_frames
    from featurestore.synth import SynthConfig, generate

    generate(root / "data", SynthConfig(videos=8, frames=120, size=112, faces=0, test_videos=0,
                                        seed=3), progress=False)
    ingest_affwild2(root / "data" / "affwild2", root / "store.zarr", progress=False)
    pack_frames(root / "data" / "affwild2", root / "pack", progress=False)
    torch.manual_seed(0)
    cfg = get_preset("tiny", img_size=112)
    save_checkpoint(root / "ckpt", MaskedAutoencoder(cfg), cfg, {})
    return {"pack": str(root / "pack"), "store": str(root / "store.zarr"), "ckpt": str(root / "ckpt")}


def reference_store(paths: dict[str, str], dest: Path) -> str:
    """An uninterrupted extraction of a copy of the fresh store, without Ray (same code path as
    an actor: VideoExtractor with one torch thread and the same batch size)."""
    import shutil

    from encoders.encode import FrameEncoder
    from encoders.video import VideoExtractor

    shutil.copytree(paths["store"], dest)
    import featurestore

    enc = FrameEncoder(paths["ckpt"], batch_size=1)
    featurestore.open(str(dest), "a").create_feature_set(SET, enc.dim, provenance=enc.provenance)
    ex = VideoExtractor(paths["pack"], paths["ckpt"], str(dest), SET, batch_size=16, threads=1)
    for video in featurestore.open(str(dest)).videos():
        assert ex.run(video).written
    return str(dest)


def wait_for(proc: subprocess.Popen, cond, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if cond():
            return True
        time.sleep(0.05)
    return False


def kill_driver(proc: subprocess.Popen) -> list[int]:
    """SIGKILL the driver alone (as a crash would), then clean up its session."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    return kill_session(proc.pid)


def kill_one_actor(sid: int) -> int | None:
    for pid in session_pids(sid):
        if "ExtractActor" in cmdline(pid):
            os.kill(pid, signal.SIGKILL)
            return pid
    return None


@pytest.mark.ray
@pytest.mark.slow
def test_killed_drivers_and_actor_leave_the_store_equal_to_an_uninterrupted_run(tmp_path):
    paths = build_data(tmp_path)
    reference = set_contents(reference_store(paths, tmp_path / "reference.zarr"))
    n_videos = len(reference["committed"])
    rng = random.Random(SEED)
    stop, out = tmp_path / "reader.stop", tmp_path / "reader.json"
    reader = subprocess.Popen([sys.executable, __file__, "reader", paths["store"], SET, str(out),
                               str(stop)], cwd=REPO, start_new_session=True)
    log, snapshots, survivors, kills = tmp_path / "job.log", [], [], []
    try:
        # driver kill 1: a seeded moment after the pool starts (actors loading, first videos)
        proc = start_job(paths, log)
        assert wait_for(proc, lambda: log.read_text().count("pool:") >= 1, 240), log.read_text()
        time.sleep(rng.uniform(0.0, 1.5))
        kills.append(("after pool start", int(committed_flags(paths["store"]).sum())))
        survivors += kill_driver(proc)
        snapshots.append(snapshot(paths["store"]))
        # run 2: an actor SIGKILLed after the first new commit (the job must replace it), then
        # driver kill 2 after a seeded number of further commits plus a seeded delay (mid-video)
        before = int(committed_flags(paths["store"]).sum())
        proc = start_job(paths, log)
        assert wait_for(proc, lambda: committed_flags(paths["store"]).sum() > before, 240), \
            log.read_text()[-3000:]
        killed = kill_one_actor(proc.pid)
        assert wait_for(proc, lambda: "replacing it" in log.read_text(), 120), log.read_text()[-3000:]
        target = min(before + 1 + rng.randint(1, 2), n_videos - 2)
        assert wait_for(proc, lambda: committed_flags(paths["store"]).sum() >= target, 240), \
            log.read_text()[-3000:]
        time.sleep(rng.uniform(0.0, 0.2))
        kills.append(("after commits", int(committed_flags(paths["store"]).sum())))
        survivors += kill_driver(proc)
        snapshots.append(snapshot(paths["store"]))
        assert kills[-1][1] < n_videos, "the kill came after the last commit: nothing left to do"
        # run 3: uninterrupted, to completion
        proc = start_job(paths, log)
        assert proc.wait(timeout=300) == 0, log.read_text()[-3000:]
        survivors += kill_session(proc.pid)
        snapshots.append(snapshot(paths["store"]))
    finally:
        stop.touch()
        reader.wait(timeout=60)
        for p in (proc, reader):
            survivors += kill_session(p.pid)
    assert survivors == [], f"processes survived: {[cmdline(p) for p in survivors]}"

    final = set_contents(paths["store"])
    assert final["committed"] == reference["committed"]  # none missing
    assert final["checksum"] == reference["checksum"]
    for video in reference["committed"]:
        assert final["rows"][video] == reference["rows"][video], video  # byte for byte
    # never written twice: a committed video's chunk files never change in a later run
    for earlier, later in zip(snapshots, snapshots[1:], strict=False):
        for i, prints in earlier.items():
            assert later[i] == prints, f"video {i} was rewritten after its commit"
    # the last run's own summary: it wrote exactly the videos the killed runs left
    written = re.findall(r"done: (\d+) video\(s\) written", log.read_text())
    assert killed is not None and written == [str(n_videos - kills[-1][1])], log.read_text()[-3000:]
    # the reader saw commits happen and never an incomplete video
    seen = json.loads(out.read_text())
    assert seen["problems"] == [] and seen["checks"] > 0, seen
    print(f"kills={kills} actor={killed} reader={seen['polls']} polls, {seen['checks']} checks")


if __name__ == "__main__" and len(sys.argv) == 6 and sys.argv[1] == "reader":
    sys.path.insert(0, str(REPO))
    reader_main(*sys.argv[2:])
