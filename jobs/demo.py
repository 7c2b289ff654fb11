"""The README's main job: synthetic faces to the paper's tables, through the real entry points.

Every stage runs the command a user would type (``featurestore ...``, ``ray job submit ...``,
``seqtrain ...``) in a subprocess. A stage that finished writes a marker in ``RUN/stages/``;
a rerun skips it, and the tools themselves resume where a stage was interrupted (the MAE and
sequence trainers resume from checkpoints, extraction skips committed videos).

    python -m jobs.demo --run runs/demo [--size demo|smoke] [--encoder-preset tiny_tok] [--pretrain-epochs 150]

``RUN/demo.json`` records the size (and encoder preset) the folder was made with; another size
in the same folder is refused, since its finished stages would be skipped and mixed with it.

The ablations (the paper's Table 5 plus a frame-level row) run on fold 0 over ``DemoSize.seeds``
seeds (one ``seqtrain fit --seeds`` driver per row; the ``full`` row's seed 0 is main's fold 0,
copied, not trained twice), several drivers at once on the same Ray head; ``seqtrain report`` prints
them as mean +- std (``seqtrain.ablation``). The same stage trains the multi-task model
(``--task mtl``) on fold 0, whose rows the report prints under the single-task rows. The
``pixel-baseline`` stage writes the raw-pixel features ``pix16`` (``encoders.pixels``) and probes
them on fold 0: the floor an encoder must clear, as a row of the ablation table.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from encoders.presets import PRESETS
from featurestore.abaw import TASKS
from featurestore.atomic import atomic_write_json

log = logging.getLogger("demo")
REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class DemoSize:
    """How big the demo is: ``demo`` (the README's main job and the end-to-end test); ``smoke``
    (a 4-minute run that exercises every stage but is too small to learn much)."""

    videos: int
    frames: int
    faces: int
    # 75 for `demo` (464 s on 2 cores, 106 s for 15): on fold 0 it lifts `full` on all three tasks
    # over 15 epochs, and 150 (842 s) lifts VA and AU further (README, "How long the demo
    # pretrains"; `--pretrain-epochs`)
    pretrain_epochs: int
    finetune_epochs: int
    finetune_frames_per_video: int
    seq_epochs: int
    img_size: int = 64  # encoder input (the 112 px crops are resized): 2x faster on 2 CPU cores
    seq_lr: float = 1e-3  # the paper's 3e-5 is for 768-d features and hours of data
    # The paper's windows (300 frames, stride 200, batch 32) are for ~2.6M frames; on the demo's
    # ~9k training frames they make 2 optimizer steps per epoch, and the model stopped early
    # before it learned anything from weak features (mae-pt VA CCC -0.02 after 30 epochs where a
    # linear probe reads 0.16). Shorter windows and small batches give ~30 steps per epoch.
    seq_window: int = 100
    seq_stride: int = 50
    seq_batch_size: int = 8
    seq_patience: int = 10
    seed: int = 0
    seeds: int = 3  # seeds of every ablation row
    # The MAE preset of both encoder stages. `tiny_tok` (all patch tokens read out) lifts Expr
    # and AU on fold 0 but loses VA on every fold and costs 2.7x in fit-all (README,
    # "Pretraining without fine-tuning"), so the demo keeps `tiny`.
    encoder_preset: str = "tiny"

    def __post_init__(self) -> None:
        if self.encoder_preset not in PRESETS:
            raise ValueError(f"DemoSize.encoder_preset must be one of {sorted(PRESETS)}, "
                             f"got {self.encoder_preset!r}")
        for field, value in asdict(self).items():
            if field == "encoder_preset":
                continue
            if not isinstance(value, int | float) or value < 0:
                raise ValueError(f"DemoSize.{field} must be a non-negative number, got {value!r}")


SIZES = {
    "demo": DemoSize(videos=40, frames=300, faces=3000, pretrain_epochs=75, finetune_epochs=12,
                     finetune_frames_per_video=120, seq_epochs=30),
    "smoke": DemoSize(videos=24, frames=200, faces=1500, pretrain_epochs=10, finetune_epochs=10,
                   finetune_frames_per_video=100, seq_epochs=20),
}
# The paper's Table 5 plus a frame-level row, on fold 0, each row over `DemoSize.seeds` seeds:
# row -> (features, extra seqtrain flags); runs land in seqtrain/ablation/<row>/seed<k>/.
ABLATIONS = {
    "full": ("mae-ft", []),
    "no-tcn": ("mae-ft", ["--no-tcn"]),
    "no-transformer": ("mae-ft", ["--no-transformer"]),
    "frame-level": ("mae-ft", ["--no-tcn", "--no-transformer"]),  # the MLP head on each frame
    "no-finetune": ("mae-pt", []),  # without Expr fine-tuning of the encoder
}
MAX_DRIVERS = 4  # `seqtrain fit` drivers at once; each queues its runs on the shared Ray head


class Pipeline:
    """Runs the stages in order, skipping those with a marker, and times each one."""

    def __init__(self, run: Path, size: DemoSize, env: dict[str, str]):
        self.run, self.size, self.env = run, size, env
        self.markers = run / "stages"
        self.markers.mkdir(parents=True, exist_ok=True)
        self.timings: dict[str, float] = {}

    def done(self, name: str) -> bool:
        return (self.markers / f"{name}.done").exists()

    def stage(self, name: str, *commands: list[str]) -> None:
        marker = self.markers / f"{name}.done"
        if marker.exists():
            log.info("stage %-22s already done (%s)", name, marker)
            self.timings[name] = json.loads(marker.read_text())["seconds"]
            return
        t0 = time.perf_counter()
        for cmd in commands:
            log.info("stage %-22s $ %s", name, shlex.join(cmd))
            subprocess.run(cmd, check=True, env=self.env, cwd=REPO)
        self._finish(name, t0)

    def parallel_stage(self, name: str, commands: list[list[str]], max_procs: int) -> None:
        """Like :meth:`stage`, with up to ``max_procs`` of ``commands`` running at once (all are
        run; the first that failed is raised; an interrupt stops those still running)."""
        if self.done(name):
            self.stage(name)
            return
        t0 = time.perf_counter()
        pending, running, failed = list(commands), [], []
        try:
            while pending or running:
                while pending and len(running) < max_procs:
                    cmd = pending.pop(0)
                    log.info("stage %-22s $ %s &", name, shlex.join(cmd))
                    running.append((cmd, subprocess.Popen(cmd, env=self.env, cwd=REPO)))
                time.sleep(1)
                for cmd, proc in [r for r in running if r[1].poll() is not None]:
                    running.remove((cmd, proc))
                    if proc.returncode:
                        failed.append(subprocess.CalledProcessError(proc.returncode, cmd))
        finally:
            for _, proc in running:  # only left on an exception (e.g. Ctrl-C)
                proc.terminate()
                proc.wait()
        if failed:
            raise failed[0]
        self._finish(name, t0)

    def _finish(self, name: str, t0: float) -> None:
        seconds = time.perf_counter() - t0
        self.timings[name] = seconds
        atomic_write_json(self.markers / f"{name}.done", {"seconds": seconds, "finished": time.time()})
        log.info("stage %-22s done in %.1f s", name, seconds)


def _exe(name: str) -> str:
    path = BIN / name
    return str(path) if path.exists() else name


def _check_size(run: Path, size: DemoSize) -> None:
    """Record the size in ``run/demo.json``; refuse a run folder made with another size, whose
    finished stages would otherwise be skipped and mixed with this size's."""
    path = run / "demo.json"
    want = asdict(size)
    if path.is_file():
        try:
            have = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise ValueError(f"{path}: unreadable ({err}); remove it only if {run} is a demo "
                             f"run folder of this size") from None
        diff = sorted(k for k in set(want) | set(have) if want.get(k) != have.get(k))
        if diff:
            raise ValueError(f"{run} holds a demo run of another size (differs in "
                             f"{', '.join(f'{k}: {have.get(k)!r} there, {want.get(k)!r} now' for k in diff)}); "
                             f"use another --run folder")
        return
    atomic_write_json(path, want)


def run_pipeline(run: Path, size: DemoSize) -> dict[str, float]:
    """Run every stage of the demo into ``run``; returns seconds per stage."""
    run = run.resolve()
    run.mkdir(parents=True, exist_ok=True)
    _check_size(run, size)
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    env.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # loopback unless told otherwise
    p = Pipeline(run, size, env)
    data, pack, store = run / "data", run / "frames.lmdb", run / "store.zarr"
    seq = run / "seqtrain"
    fs, st = _exe("featurestore"), _exe("seqtrain")

    p.stage("synth", [fs, "synth", str(data), "--videos", str(size.videos), "--frames",
                      str(size.frames), "--faces", str(size.faces), "--seed", str(size.seed)])
    p.stage("scan", [fs, "scan", str(data / "affwild2")])
    p.stage("pack", [fs, "pack", str(data / "affwild2"), str(pack)])
    p.stage("ingest", [fs, "ingest", "--affwild2", str(data / "affwild2"), str(store)])

    ray_stages = ["pretrain", "finetune", "extract-mae-pt", "extract-mae-ft", "fit-all", "ablation"]
    if all(p.done(name) for name in ray_stages):
        for name in ray_stages:
            p.stage(name)  # logs "already done"; no head needed
    else:
        _ray_stages(p, run, size, env)
    # the two probes at once: each fits its scikit-learn models on one core (same results)
    p.parallel_stage("probe", [[st, "probe", "--task", "all", "--fold", "0", "--store", str(store),
                                "--features", name, "--out", str(seq / f"probe-{name}")]
                               for name in ("mae-ft", "mae-pt")], max_procs=2)
    # the raw-pixel baseline every encoder must beat (encoders.pixels: the face box-averaged to
    # 16 x 16 RGB), extracted in this process (a few seconds, no Ray) and probed on fold 0
    p.stage("pixel-baseline",
            [sys.executable, "jobs/extract.py", "--frames", str(pack), "--checkpoint", "pixels:16",
             "--store", str(store), "--set", "pix16", "--inline-frames", str(10**9)],
            [st, "probe", "--task", "all", "--fold", "0", "--store", str(store), "--features",
             "pix16", "--out", str(seq / "probe-pix16")])
    p.stage("predict", *[[st, "predict", "--task", t, "--checkpoint", str(seq / "main" / t / "fold0"),
                          "--store", str(store), "--template", str(_template(data, t)),
                          "--out", str(run / "submissions" / f"{t}.csv")] for t in TASKS])
    subprocess.run([st, "report", str(seq)], check=True, env=env, cwd=REPO)
    _write_timings(run, p.timings)
    return p.timings


def _ray_stages(p: Pipeline, run: Path, size: DemoSize, env: dict[str, str]) -> None:
    """The stages that run on the local Ray head (started here, stopped whatever happens)."""
    from jobs import raylocal

    data, pack, store = run / "data", run / "frames.lmdb", run / "store.zarr"
    enc, seq = run / "encoders", run / "seqtrain"
    st, py = _exe("seqtrain"), sys.executable
    # idle workers kept: each concurrent `seqtrain fit` driver is a Ray job with its own workers
    raylocal.start_head(run, dashboard_port=None, idle_workers=MAX_DRIVERS * (os.cpu_count() or 1))
    head = raylocal.read_head(run)
    env.update(head.client_env())
    env["RAY_ADDRESS"] = head.address  # drivers (seqtrain) join the head; `ray job submit` gets --address
    try:
        submit = [_exe("ray"), "job", "submit", "--address", head.dashboard_url,
                  "--working-dir", str(REPO), "--"]
        p.stage("pretrain", submit + [py, "jobs/pretrain.py", "--faces", str(data / "faces"),
                                      "--preset", size.encoder_preset,
                                      "--epochs", str(size.pretrain_epochs),
                                      "--img-size", str(size.img_size),
                                      "--out", str(enc / "pretrain")])
        p.stage("finetune", submit + [py, "jobs/finetune.py", "--affwild2", str(data / "affwild2"),
                                      "--frames", str(pack), "--pretrained",
                                      str(enc / "pretrain" / "checkpoint"),
                                      "--epochs", str(size.finetune_epochs),
                                      "--img-size", str(size.img_size), "--balanced-loss",
                                      "--max-frames-per-video",
                                      str(size.finetune_frames_per_video),
                                      "--out", str(enc / "finetune")])
        for name, ckpt in (("mae-pt", enc / "pretrain" / "checkpoint"),
                           ("mae-ft", enc / "finetune" / "best")):
            p.stage(f"extract-{name}", submit + [py, "jobs/extract.py", "--frames", str(pack),
                                                 "--checkpoint", str(ckpt), "--store", str(store),
                                                 "--set", name])
        common = ["--store", str(store), "--preset", "tiny", "--epochs", str(size.seq_epochs),
                  "--lr", str(size.seq_lr), "--window", str(size.seq_window), "--stride",
                  str(size.seq_stride), "--batch-size", str(size.seq_batch_size),
                  "--patience", str(size.seq_patience)]
        p.stage("fit-all", [st, "fit", "--task", "all", "--folds", "all", "--features", "mae-ft",
                            "--out", str(seq / "main")] + common)
        if not p.done("ablation"):
            reuse_main_runs(seq)
        p.parallel_stage("ablation", ablation_commands(st, seq, size, common), MAX_DRIVERS)
    finally:
        raylocal.stop_head(run)


def ablation_commands(st: str, seq: Path, size: DemoSize, common: list[str]) -> list[list[str]]:
    """The ``ablation`` stage's ``seqtrain fit`` drivers: first the multi-task model on fold 0
    (``seq/main/mtl/fold0``: its rows sit under the single-task rows of Table 1; one more driver
    beside the others), then one driver per ablation row over its ``size.seeds`` seeds
    (``--seeds 0,1,2``: one Ray job whose workers serve all the row's runs; a driver per seed
    paid Ray's job and worker start-up, torch imports included, three times as often)."""
    mtl = [st, "fit", "--task", "mtl", "--fold", "0", "--features", "mae-ft", "--seed",
           str(size.seed), "--out", str(seq / "main")] + common
    seeds = ",".join(str(k) for k in range(size.seeds))
    return [mtl] + [
        [st, "fit", "--task", "all", "--fold", "0", "--features", features, "--seeds", seeds,
         "--out", str(seq / "ablation" / name)] + flags + common
        for name, (features, flags) in ABLATIONS.items()]


def reuse_main_runs(seq: Path) -> list[Path]:
    """Copy main's fold-0 runs (``fit-all``: mae-ft, full model, seed 0) to the ablation's
    ``full/seed0/`` unless there: the same config, so the same run. ``seqtrain fit`` there
    compares each copy's saved config with its own (all but the folder) and returns the copy's
    metrics instead of training it again, or refuses a run of another config. Returns the
    folders copied."""
    copied = []
    for task in TASKS:
        src, dst = seq / "main" / task / "fold0", seq / "ablation" / "full" / "seed0" / task / "fold0"
        if dst.exists() or not (src / "metrics.json").is_file():
            continue
        tmp = dst.with_name(f".{dst.name}.copying")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(src, tmp)
        tmp.rename(dst)  # whole or absent: an interrupted copy leaves only the temp folder
        log.info("ablation full seed 0 %s = main %s fold 0 (same config): copied", task, task)
        copied.append(dst)
    return copied


def _template(data: Path, task: str) -> Path:
    name = {"va": "VA", "expr": "Expr", "au": "AU"}[task]
    return data / "affwild2" / "test_set_templates" / f"CVPR_6th_ABAW_{name}_test_set_sample.txt"


def _write_timings(run: Path, timings: dict[str, float]) -> None:
    lines = ["| stage | seconds |", "| --- | ---: |"]
    lines += [f"| {k} | {v:.1f} |" for k, v in timings.items()]
    lines.append(f"| **total** | {sum(timings.values()):.1f} |")
    (run / "timings.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, default=Path("runs/demo"), help="run folder")
    parser.add_argument("--size", choices=sorted(SIZES), default="demo")
    parser.add_argument("--encoder-preset", choices=sorted(PRESETS), default=None,
                        help="MAE preset of both encoder stages (default: the size's)")
    parser.add_argument("--pretrain-epochs", type=_positive_int, default=None, metavar="N",
                        help="MAE pretraining epochs (default: the size's, 75 for demo; 150 "
                             "learns better features but adds ~6 minutes on 2 cores)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s demo %(message)s", datefmt="%H:%M:%S")
    t0 = time.perf_counter()
    try:
        size = SIZES[args.size]
        if args.encoder_preset is not None:
            size = replace(size, encoder_preset=args.encoder_preset)
        if args.pretrain_epochs is not None:
            size = replace(size, pretrain_epochs=args.pretrain_epochs)
        run_pipeline(args.run, size)
    except Exception as err:  # the CLI error contract (featurestore.clierrors): one line, exit 1
        if os.environ.get("AFFSTORE_TRACEBACK") == "1":
            raise
        from featurestore.clierrors import describe

        sys.exit(f"error: {describe(err)}")
    print(f"\ndemo finished in {time.perf_counter() - t0:.0f} s; everything is in {args.run}/")


if __name__ == "__main__":
    main()
