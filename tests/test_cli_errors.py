"""Every command line (featurestore, seqtrain, jobs) answers bad arguments with one
``error: <what and where>`` line on stderr, exit code 1 (2 for usage errors), no traceback
unless -v (featurestore.clierrors). No case starts Ray or writes anything."""

from __future__ import annotations

from pathlib import Path

import pytest
from bad_inputs import tree_digest
from click.testing import CliRunner

from featurestore.cli import main as fs
from jobs.extract import main as extract
from jobs.finetune import main as finetune
from jobs.pretrain import main as pretrain
from jobs.raylocal.cli import cli as raylocal
from jobs.seqfit import main as seqtrain  # the `seqtrain` console script


@pytest.fixture(scope="module")
def t(tmp_path_factory) -> Path:
    """Tiny Aff-Wild2 tree + store, an empty folder, a looping symlink, a plain file, a run
    folder whose metrics.json is truncated."""
    from featurestore.ingest import ingest_affwild2
    from featurestore.synth import SynthConfig, generate

    root = tmp_path_factory.mktemp("cli_errors")
    generate(root / "data", SynthConfig(videos=2, frames=20, size=32, faces=4, test_videos=1,
                                        seed=0, pair_fraction=0.0), progress=False)
    ingest_affwild2(root / "data" / "affwild2", root / "store.zarr", progress=False)
    (root / "empty").mkdir()
    (root / "loop").symlink_to(root / "loop")
    (root / "file.txt").write_text("x")
    run = root / "run" / "va" / "fold0"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text('{"task": "va", "val": {"sco')
    return root


A, S = "data/affwild2", "store.zarr"
TMPL = "data/affwild2/test_set_templates/CVPR_6th_ABAW_VA_test_set_sample.txt"
# (command, arguments with {} for the fixture folder, exit code, what the line must say)
CASES = [
    (fs, ["pack"], 2, "Missing argument 'ROOT'"),
    (fs, ["pack", "{}/file.txt", "{}/p"], 2, "is a file"),
    (fs, ["pack", "{}/empty", "{}/p"], 1, "{}/empty: not an Aff-Wild2 root"),
    (fs, ["pack", "{}/" + A, "{}/" + A, "--overwrite"], 1, "is the input"),
    (fs, ["ingest", "--affwild2", "{}/empty", "{}/s"], 1, "not an Aff-Wild2 root"),
    (fs, ["ingest", "--affwild2", "{}/" + A + "/cropped_aligned", "{}/s"], 1, "looks like a frames folder"),
    (fs, ["ingest", "--affwild2", "{}/" + A, "{}/file.txt"], 1, "{}/file.txt: exists and is not"),
    (fs, ["ingest", "--affwild2", "{}/" + A, "{}/" + A + "/s.zarr"], 1, "lies inside the input"),
    (fs, ["ls", "{}/loop"], 1, "{}/loop: no feature store"),
    (fs, ["ls", "{}/file.txt"], 1, "{}/file.txt: no feature store"),
    (fs, ["info", "{}/" + S, "nosuch"], 1, "unknown video 'nosuch'"),
    (fs, ["get", "{}/" + S, "--set", "x", "--video", "v", "-o", "{}/missing/x.npy"], 1,
     "the folder {}/missing does not exist"),
    (fs, ["get", "{}/" + S, "--set", "x", "--video", "v", "-o", "{}/empty"], 2, "is a directory"),
    (fs, ["get", "{}/" + S, "--set", "x", "--video", "v", "-o", "{}/" + S + "/x.npy"], 1,
     "lies inside the input STORE"),
    (fs, ["verify", "{}/empty"], 1, "{}/empty: no feature store"),
    (fs, ["scan", "{}/loop"], 2, "does not exist"),
    (fs, ["synth", "{}/data"], 1, "{}/data: exists and is not an empty folder"),
    (fs, ["synth", "{}/x", "--videos", "-1"], 1, "SynthConfig.videos must be"),
    (seqtrain, ["predict", "--task", "va", "--checkpoint", "{}/empty", "--store", "{}/" + S,
                "--template", "{}/" + TMPL, "--out", "{}/o.txt"], 1, "{}/empty: no checkpoint"),
    (seqtrain, ["predict", "--task", "va", "--checkpoint", "{}/loop", "--store", "{}/" + S,
                "--template", "{}/" + TMPL, "--out", "{}/o.txt"], 1, "{}/loop: cannot resolve"),
    (seqtrain, ["predict", "--task", "va", "--checkpoint", "{}/file.txt", "--store", "{}/" + S,
                "--template", "{}/" + TMPL, "--out", "{}/" + TMPL], 1, "is the input --template"),
    (seqtrain, ["predict", "--task", "va", "--checkpoint", "{}/empty", "--store", "{}/nostore",
                "--template", "{}/" + TMPL, "--out", "{}/o.txt"], 1, "no feature store at {}/nostore"),
    (seqtrain, ["predict", "--task", "xx"], 2, "Invalid value for '--task'"),
    (seqtrain, ["report", "{}/run"], 1, "{}/run/va/fold0/metrics.json:1: not valid JSON"),
    (seqtrain, ["report", "{}/empty"], 1, "{}/empty: no metrics.json"),
    (seqtrain, ["report", "{}/file.txt"], 2, "is a file"),
    (seqtrain, ["fit", "--epochs", "abc"], 2, "'abc' is not a valid integer"),
    (seqtrain, ["fit", "--store", "{}/empty", "--no-ray"], 1, "{}/empty: no feature store"),
    (seqtrain, ["fit", "--store", "{}/" + S, "--out", "{}", "--no-ray"], 1, "contains the input --store"),
    (extract, ["--frames", "{}/empty", "--checkpoint", "{}/empty", "--store", "{}/" + S, "--set", "m"],
     1, "{}/empty/config.json: no checkpoint config"),
    (extract, ["--frames", "{}/" + A, "--checkpoint", "{}/file.txt", "--store", "{}/" + A + "/s",
               "--set", "m"], 1, "lies inside the input --frames"),
    (extract, ["--frames", "{}/" + A], 2, "Missing option"),
    (pretrain, ["--faces", "{}/empty", "--out", "{}/pt", "--no-ray"], 1, "{}/empty: no face set"),
    (pretrain, ["--faces", "{}/data/faces", "--out", "{}/data/faces/pt", "--no-ray"], 1, "lies inside"),
    (finetune, ["--affwild2", "{}/empty", "--out", "{}/ft", "--no-ray"], 1, "not an Aff-Wild2 root"),
    (finetune, ["--affwild2", "{}/" + A, "--out", "{}/data", "--no-ray"], 1, "contains the input"),
    (raylocal, ["env", "--run-dir", "{}/norun"], 1, "{}/norun/ray/head.json: no Ray head"),
    (raylocal, ["bogus"], 2, "No such command 'bogus'"),
]


def _ids():
    return [f"{c[0].name}-{i}-{c[1][0]}" for i, c in enumerate(CASES)]


@pytest.mark.parametrize("cli,args,code,says", CASES, ids=_ids())
def test_every_cli_error_is_one_line(cli, args, code, says, t):
    before = tree_digest(t)
    res = CliRunner().invoke(cli, [a.format(t) for a in args])
    lines = res.stderr.strip().splitlines()
    assert res.exit_code == code, res.output
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert says.format(t) in lines[0], lines[0]
    assert "Traceback" not in res.output
    assert tree_digest(t) == before  # nothing written, nothing deleted


def test_verbose_shows_the_traceback(t, monkeypatch):
    args = ["--frames", f"{t}/empty", "--checkpoint", f"{t}/empty", "--store", f"{t}/{S}", "--set", "m"]
    monkeypatch.setenv("AFFSTORE_TRACEBACK", "1")
    res = CliRunner().invoke(extract, args)
    assert res.exit_code == 1 and "Traceback" in res.stderr and res.stderr.strip().splitlines()[-1] \
        .startswith("error: ")
    res = CliRunner().invoke(fs, ["-v", "ls", f"{t}/empty"])
    assert res.exit_code == 1 and "error: " in res.stderr


def test_unexpected_exceptions_become_one_line_too():
    import click

    from featurestore.clierrors import ErrorCommand

    @click.command(cls=ErrorCommand)
    def boom() -> None:
        raise KeyError("fill")

    res = CliRunner().invoke(boom, [])
    assert res.exit_code == 1 and res.stderr.strip() == "error: KeyError: 'fill'"
