"""The demo's stage runner: parallel stages run every command, record a marker, and fail loudly."""

import os
import subprocess
import sys

import pytest

from jobs.demo import SIZES, Pipeline


def _touch(path) -> list[str]:
    return [sys.executable, "-c", f"import pathlib, time; time.sleep(0.2); pathlib.Path({str(path)!r}).touch()"]


def test_parallel_stage_runs_every_command_once_and_resumes(tmp_path):
    p = Pipeline(tmp_path / "run", SIZES["smoke"], dict(os.environ))
    outs = [tmp_path / f"out{k}" for k in range(5)]
    p.parallel_stage("many", [_touch(o) for o in outs], max_procs=2)
    assert all(o.exists() for o in outs) and p.done("many")
    for o in outs:
        o.unlink()
    p.parallel_stage("many", [_touch(o) for o in outs], max_procs=2)  # marker: nothing reruns
    assert not any(o.exists() for o in outs)


def test_parallel_stage_failure_runs_the_rest_and_leaves_no_marker(tmp_path):
    p = Pipeline(tmp_path / "run", SIZES["smoke"], dict(os.environ))
    fail = [sys.executable, "-c", "raise SystemExit(3)"]
    with pytest.raises(subprocess.CalledProcessError) as err:
        p.parallel_stage("bad", [fail, _touch(tmp_path / "ok")], max_procs=1)
    assert err.value.returncode == 3
    assert (tmp_path / "ok").exists() and not p.done("bad")
