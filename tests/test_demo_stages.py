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


def test_ablation_stage_trains_the_mtl_model_beside_the_rows(tmp_path):
    """One `seqtrain fit --task mtl` on fold 0 into seqtrain/main (Table 1), first, so it runs in
    the first wave of drivers; then every ablation row once per seed."""
    from click.testing import CliRunner

    from jobs.demo import ABLATIONS, ablation_commands
    from seqtrain.cli import fit

    size = SIZES["demo"]
    common = ["--store", str(tmp_path / "store.zarr"), "--preset", "tiny"]
    cmds = ablation_commands("seqtrain", tmp_path / "seqtrain", size, common)
    assert len(cmds) == 1 + size.seeds * len(ABLATIONS)
    mtl = cmds[0]
    assert mtl[:6] == ["seqtrain", "fit", "--task", "mtl", "--fold", "0"]
    assert mtl[mtl.index("--out") + 1] == str(tmp_path / "seqtrain" / "main")
    assert sum("mtl" in c for c in cmds) == 1 and all(c[-len(common):] == common for c in cmds)
    # the command line is one the real `seqtrain fit` parses (it stops at the missing store)
    res = CliRunner().invoke(fit, mtl[2:], obj=None)
    assert res.exit_code == 1 and "no feature store at" in res.output
