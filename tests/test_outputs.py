"""Inputs are never written: every writing command refuses an output that is, contains or lies
inside one of its inputs (paths, symlinks, hard links) before touching anything, and --overwrite
replaces only what the command itself made (featurestore.outputs)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from bad_inputs import tree_digest
from click.testing import CliRunner

from featurestore.outputs import MARKER, OutputError, check_output, check_replace


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """A tiny synthetic Aff-Wild2 tree + faces, its store and a test template (built once)."""
    from featurestore.ingest import ingest_affwild2
    from featurestore.synth import SynthConfig, generate

    root = tmp_path_factory.mktemp("outputs")
    generate(root / "data", SynthConfig(videos=2, frames=20, size=32, faces=4, test_videos=1,
                                        seed=0, pair_fraction=0.0), progress=False)
    ingest_affwild2(root / "data" / "affwild2", root / "store.zarr", progress=False)
    return root


def _template(root: Path) -> Path:
    return sorted((root / "data" / "affwild2").rglob("*_VA_test_set_sample.txt"))[0]


def _cases(root: Path):
    """(name, call) of every writing entry point given an output that overlaps an input."""
    from encoders.finetune import FinetuneConfig, finetune
    from encoders.pretrain import PretrainConfig, pretrain
    from featurestore.ingest import ingest_affwild2
    from featurestore.pack import pack_frames
    from jobs.extract import ExtractConfig, run_extraction
    from seqtrain.predict import predict
    from seqtrain.runner import plan_runs

    aff, store, faces = root / "data" / "affwild2", root / "store.zarr", root / "data" / "faces"
    tmpl = _template(root)
    return [
        ("pack-into-itself", lambda: pack_frames(aff, aff, progress=False, overwrite=True)),
        ("pack-over-a-parent", lambda: pack_frames(aff, root / "data", progress=False, overwrite=True)),
        ("pack-inside-the-input", lambda: pack_frames(aff, aff / "cropped_aligned" / "p", progress=False)),
        ("pack-input-through-symlink", lambda: pack_frames(root / "link", aff / "p", progress=False)),
        ("pack-output-through-symlink", lambda: pack_frames(aff, root / "link" / "p", progress=False)),
        ("ingest-store-inside-input", lambda: ingest_affwild2(aff, aff / "s.zarr", progress=False)),
        ("predict-out-is-template", lambda: predict("va", root / "ckpt", store, tmpl, tmpl)),
        ("predict-out-hard-link", lambda: predict("va", root / "ckpt", store, tmpl, root / "hard.txt")),
        ("predict-out-is-store", lambda: predict("va", root / "ckpt", store, tmpl, store)),
        ("fit-out-contains-store", lambda: plan_runs(("va",), (0,), root, store=str(store))),
        ("extract-store-inside-frames", lambda: run_extraction(
            ExtractConfig(str(aff), str(root / "ckpt"), str(aff / "s.zarr"), "mae"))),
        ("finetune-out-inside-data", lambda: finetune(FinetuneConfig.for_preset(
            "tiny", affwild2=str(aff), out=str(aff / "ft")))),
        ("pretrain-out-is-faces", lambda: pretrain(PretrainConfig.for_preset(
            "tiny", faces=str(faces), out=str(faces)))),
    ]


CASE_NAMES = ["pack-into-itself", "pack-over-a-parent", "pack-inside-the-input",
              "pack-input-through-symlink", "pack-output-through-symlink",
              "ingest-store-inside-input", "predict-out-is-template", "predict-out-hard-link",
              "predict-out-is-store", "fit-out-contains-store", "extract-store-inside-frames",
              "finetune-out-inside-data", "pretrain-out-is-faces"]


@pytest.mark.parametrize("name", CASE_NAMES)
def test_an_output_overlapping_an_input_is_refused_untouched(name, data):
    link = data / "link"
    if not link.is_symlink():
        link.symlink_to(data / "data" / "affwild2")
    hard = data / "hard.txt"
    if not hard.exists():
        os.link(_template(data), hard)
    call = dict(_cases(data))[name]
    before = tree_digest(data)
    with pytest.raises(OutputError, match="is the input|contains the input|lies inside the input"):
        call()
    assert tree_digest(data) == before


def test_case_list_is_complete(data):
    assert [n for n, _ in _cases(data)] == CASE_NAMES


def test_overwrite_replaces_only_what_the_command_made(data, tmp_path):
    from featurestore.pack import LmdbFrames, pack_frames

    aff = data / "data" / "affwild2"
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("years of work")
    with pytest.raises(FileExistsError, match="not made by this command"):
        pack_frames(aff, foreign, progress=False, overwrite=True)
    assert (foreign / "thesis.tex").read_text() == "years of work"
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        check_replace(foreign, "frame pack", overwrite=False)
    pack = tmp_path / "pack"
    pack_frames(aff, pack, progress=False)
    assert (pack / MARKER).is_file()
    pack_frames(aff, pack, progress=False, overwrite=True)  # its own pack: replaced
    assert len(LmdbFrames(pack).videos()) == 3
    (tmp_path / "alias").symlink_to(pack)
    with pytest.raises(FileExistsError, match="symlink"):
        pack_frames(aff, tmp_path / "alias", progress=False, overwrite=True)


def test_symlinked_subfolders_of_an_input_count_as_the_input(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "v").mkdir(parents=True)
    root = tmp_path / "root"
    root.mkdir()
    (root / "cropped_aligned").symlink_to(elsewhere)
    with pytest.raises(OutputError, match="through the symlink"):
        check_output(elsewhere / "v" / "out", {"ROOT": root})
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    with pytest.raises(OutputError, match="looping symlink"):
        check_output(loop / "x", {"ROOT": root})
    check_output(tmp_path / "fine", {"ROOT": root, "none": None, "url": "s3://b/x"})


def test_cli_pack_into_its_own_input_is_one_error_line(data):
    from featurestore.cli import main

    aff = data / "data" / "affwild2"
    before = tree_digest(data)
    res = CliRunner().invoke(main, ["pack", str(aff), str(aff), "--overwrite", "--no-progress"])
    assert res.exit_code == 1
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(aff) in lines[0], res.output
    assert tree_digest(data) == before
