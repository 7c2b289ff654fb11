"""The demo's ``ablation`` stage, run the way the demo runs it, against a finished demo run.

``--mode new``: today's stage (one ``seqtrain fit --seeds`` driver per row, the ``full`` row's
seed 0 copied from main's fold 0, trained first, untimed; the head keeps ``MAX_DRIVERS`` x CPUs
idle workers). ``--mode old``: the stage before (one driver per row and
seed, every run trained). Both train the mtl model and every row of ``jobs.demo.ABLATIONS`` on
``--ref``'s store with the demo's flags, on a fresh loopback Ray head, ``MAX_DRIVERS`` at once.
Prints the wall time, the CPU seconds of the drivers and the head's processes (Ray workers
included; sampled every 0.5 s from /proc, so load from other users does not count), the Ray
workers started, and whether every run's scores, best epochs and histories (the ablation's and
the mtl run's) equal the reference run's.

    .venv/bin/python bench/bench_ablation_stage.py --ref runs/demo --out /tmp/abl-new --mode new
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import threading
import time
from pathlib import Path

from jobs import raylocal
from jobs.demo import (
    ABLATIONS,
    BIN,
    MAX_DRIVERS,
    SIZES,
    Pipeline,
    _exe,
    ablation_commands,
    reuse_main_runs,
)

TICK = os.sysconf("SC_CLK_TCK")


def old_commands(st: str, seq: Path, size, common: list[str]) -> list[list[str]]:
    """The stage's drivers before ``--seeds``: one per (row, seed)."""
    mtl = ablation_commands(st, seq, size, common)[0]
    return [mtl] + [
        [st, "fit", "--task", "all", "--fold", "0", "--features", features, "--seed", str(k),
         "--out", str(seq / "ablation" / name / f"seed{k}")] + flags + common
        for k in range(size.seeds) for name, (features, flags) in ABLATIONS.items()]


class CpuMeter(threading.Thread):
    """Last seen utime + stime of every process in the head's session or under this one."""

    def __init__(self, sessions: set[int]):
        super().__init__(daemon=True)
        self.sessions, self.seen, self.stop = sessions, {}, threading.Event()
        self.sample()
        self.base = dict(self.seen)  # what the head's processes had used before the stage

    def run(self) -> None:
        while not self.stop.wait(0.5):
            self.sample()

    def sample(self) -> None:
        for path in glob.glob("/proc/[0-9]*/stat"):
            try:
                fields = Path(path).read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) in self.sessions:
                self.seen[path] = (int(fields[11]) + int(fields[12])) / TICK

    def total(self) -> float:
        return sum(t - self.base.get(p, 0.0) for p, t in self.seen.items())


def scores(run: Path) -> dict[str, object]:
    out = {}
    paths = [*run.glob("seqtrain/ablation/*/seed*/*/fold0/metrics.json"),
             *run.glob("seqtrain/main/mtl/fold0/metrics.json")]
    for path in sorted(paths):
        m = json.loads(path.read_text())
        out[str(path.relative_to(run))] = (m["val"], m["best_epoch"], m["history"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ref", type=Path, required=True, help="a finished demo run folder")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--mode", choices=("old", "new"), required=True)
    args = ap.parse_args()
    run, size = args.out.resolve(), SIZES["demo"]
    seq = run / "seqtrain"
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    env.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    idle = MAX_DRIVERS * (os.cpu_count() or 1) if args.mode == "new" else None  # as jobs.demo
    raylocal.start_head(run, dashboard_port=None, idle_workers=idle)
    head = raylocal.read_head(run)
    env.update(head.client_env(), RAY_ADDRESS=head.address)
    common = ["--store", str(args.ref.resolve() / "store.zarr"), "--preset", "tiny", "--epochs",
              str(size.seq_epochs), "--lr", str(size.seq_lr), "--window", str(size.seq_window),
              "--stride", str(size.seq_stride), "--batch-size", str(size.seq_batch_size),
              "--patience", str(size.seq_patience)]
    try:
        if args.mode == "new":  # main's fold-0 runs, what fit-all leaves (not timed); copying
            # --ref's would not do: their config names --ref's store path: another run
            subprocess.run([_exe("seqtrain"), "fit", "--task", "all", "--fold", "0", "--features",
                            "mae-ft", "--out", str(seq / "main"), *common], check=True, env=env)
        logs = f"{head.temp_dir}/session_latest/logs/python-core-worker-*.log"
        workers = -len(glob.glob(logs))  # one log per Ray worker started
        meter = CpuMeter({head.pgid, os.getsid(0)})
        meter.start()
        t0 = time.perf_counter()
        if args.mode == "new":
            reuse_main_runs(seq)
            cmds = ablation_commands(_exe("seqtrain"), seq, size, common)
        else:
            cmds = old_commands(_exe("seqtrain"), seq, size, common)
        Pipeline(run, size, env).parallel_stage("ablation", cmds, MAX_DRIVERS)
        wall = time.perf_counter() - t0
        meter.stop.set()
        meter.join()
        meter.sample()
        workers += len(glob.glob(logs))
    finally:
        raylocal.stop_head(run)
    same = scores(run) == scores(args.ref)
    print(json.dumps({"mode": args.mode, "drivers": len(cmds), "wall_s": round(wall, 1),
                      "cpu_s": round(meter.total(), 1), "ray_workers": workers,
                      "scores_equal_ref": same, "load_end": os.getloadavg()[0]}))


if __name__ == "__main__":
    main()
