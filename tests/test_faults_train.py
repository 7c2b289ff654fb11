"""Training interruption: `seqtrain fit` SIGKILLed mid-epoch resumes to the uninterrupted result.

Both runs are the real CLI in a subprocess (``--no-ray``, tiny preset, one torch thread) over a
small real store whose synthetic features went through the real writer. The interrupted run is
killed at a seeded moment after its first epoch's resume state appeared (so inside epoch 2),
then started again with the same options: it must resume from that state and end with the same
``metrics.json`` (val score, best epoch, per-epoch history) as a run that was never killed.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EPOCHS = 4
SEED = 7


@pytest.fixture(scope="module")
def store_path(synth_seq_store) -> str:
    return synth_seq_store(10, seed=1, val={"vid001", "vid006"}, min_frames=120, max_frames=220)


def fit_cmd(store: str, out: Path) -> list[str]:
    return [str(Path(sys.executable).parent / "seqtrain"), "fit", "--no-ray", "--task", "va",
            "--store", store, "--features", "synth", "--out", str(out), "--preset", "tiny", "--epochs", str(EPOCHS),
            "--window", "32", "--stride", "16", "--lr", "3e-3", "--batch-size", "8",
            "--patience", "10", "--threads", "1", "--seed", "0"]


def start(cmd: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    with open(log, "ab") as f:
        return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT,
                                start_new_session=True)


def metrics(out: Path) -> dict:
    return json.loads((out / "va" / "fold0" / "metrics.json").read_text())


def test_sigkill_mid_epoch_then_rerun_equals_uninterrupted_run(store_path, tmp_path):
    log = tmp_path / "fit.log"
    ref_out, out = tmp_path / "ref", tmp_path / "killed"
    ref = start(fit_cmd(store_path, ref_out), log)
    assert ref.wait(timeout=300) == 0, log.read_text()[-3000:]

    proc = start(fit_cmd(store_path, out), log)
    state = out / "va" / "fold0" / "state.pt"
    deadline = time.monotonic() + 300
    while not state.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be killed:\n" + log.read_text()[-3000:]
    time.sleep(random.Random(SEED).uniform(0.05, 0.3))  # inside epoch 2
    os.killpg(proc.pid, signal.SIGKILL)  # the run's own session: the CLI and nothing else
    proc.wait(timeout=30)
    half = metrics(out)
    assert not half["finished"] and 1 <= len(half["history"]) < EPOCHS, half["history"]

    again = start(fit_cmd(store_path, out), log)
    assert again.wait(timeout=300) == 0, log.read_text()[-3000:]
    done, want = metrics(out), metrics(ref_out)
    assert done["finished"] and [h["epoch"] for h in done["history"]] == list(range(1, EPOCHS + 1))
    assert done["best_epoch"] == want["best_epoch"]
    assert done["val"]["score"] == pytest.approx(want["val"]["score"], abs=1e-6)
    assert [h["loss"] for h in done["history"]] == pytest.approx(
        [h["loss"] for h in want["history"]], abs=1e-6)
    assert (out / "va" / "fold0" / "best" / "model.safetensors").is_file()
