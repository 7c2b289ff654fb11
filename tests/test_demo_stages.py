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
    the first wave of drivers; then one driver per ablation row over all its seeds."""
    from click.testing import CliRunner

    from jobs.demo import ABLATIONS, ablation_commands
    from seqtrain.cli import fit

    size = SIZES["demo"]
    common = ["--store", str(tmp_path / "store.zarr"), "--preset", "tiny"]
    cmds = ablation_commands("seqtrain", tmp_path / "seqtrain", size, common)
    assert len(cmds) == 1 + len(ABLATIONS)
    for cmd, row in zip(cmds[1:], ABLATIONS, strict=True):
        assert cmd[cmd.index("--seeds") + 1] == ",".join(map(str, range(size.seeds)))
        assert cmd[cmd.index("--out") + 1] == str(tmp_path / "seqtrain" / "ablation" / row)
    mtl = cmds[0]
    assert mtl[:6] == ["seqtrain", "fit", "--task", "mtl", "--fold", "0"]
    assert mtl[mtl.index("--out") + 1] == str(tmp_path / "seqtrain" / "main")
    assert sum("mtl" in c for c in cmds) == 1 and all(c[-len(common):] == common for c in cmds)
    # the command line is one the real `seqtrain fit` parses (it stops at the missing store)
    for cmd in (mtl, cmds[1]):
        res = CliRunner().invoke(fit, cmd[2:], obj=None)
        assert res.exit_code == 1 and "no feature store at" in res.output


def test_the_ablations_full_seed0_is_mains_fold0_copied(tmp_path):
    """Main's fold-0 runs are copied whole into ablation/full/seed0 (seqtrain fit checks their
    config there); a folder already there is left alone, and a missing main run is not faked."""
    from jobs.demo import ABLATIONS, SIZES, reuse_main_runs

    assert ABLATIONS["full"] == ("mae-ft", []) and SIZES["demo"].seed == 0  # = fit-all's runs
    seq = tmp_path / "seqtrain"
    for task in ("va", "expr"):
        (seq / "main" / task / "fold0" / "best").mkdir(parents=True)
        (seq / "main" / task / "fold0" / "metrics.json").write_text(f'{{"task": "{task}"}}')
        (seq / "main" / task / "fold0" / "best" / "model.safetensors").write_text(task)
    kept = seq / "ablation" / "full" / "seed0" / "expr" / "fold0"
    kept.mkdir(parents=True)
    copied = reuse_main_runs(seq)
    assert copied == [seq / "ablation" / "full" / "seed0" / "va" / "fold0"]
    assert (copied[0] / "best" / "model.safetensors").read_text() == "va"
    assert list(kept.iterdir()) == [] and not (copied[0].parent.parent / "au").exists()
    assert sorted(p.name for p in copied[0].parent.iterdir()) == ["fold0"]  # no temp left
    assert reuse_main_runs(seq) == []


def test_a_run_folder_of_another_size_is_refused(tmp_path):
    """demo.json records the size; another size (e.g. another encoder preset) in the same folder
    would skip the finished stages and mix two runs, so the CLI refuses it in one line."""
    from dataclasses import replace

    from jobs.demo import _check_size, main

    _check_size(tmp_path, SIZES["demo"])
    _check_size(tmp_path, SIZES["demo"])  # the same size resumes
    other = replace(SIZES["demo"], encoder_preset="tiny_p8")
    with pytest.raises(ValueError, match="encoder_preset: 'tiny' there, 'tiny_p8' now"):
        _check_size(tmp_path, other)
    with pytest.raises(SystemExit, match="^error: .*another size.*seq_epochs"):
        main(["--run", str(tmp_path), "--size", "smoke"])
    assert not (tmp_path / "stages").exists()  # refused before any stage ran
    with pytest.raises(SystemExit, match="^error: .*another size.*pretrain_epochs: 75 there, 150 now"):
        main(["--run", str(tmp_path), "--pretrain-epochs", "150"])  # the longer pretraining too
    assert not (tmp_path / "stages").exists()
    with pytest.raises(ValueError, match="encoder_preset"):
        replace(SIZES["demo"], encoder_preset="huge")
