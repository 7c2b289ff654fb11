"""The ``affvideo`` command line: from video files to face crops and per-frame emotions.

    affvideo setup                                   # fetch the MTCNN weights once
    affvideo faces VIDEO_OR_FOLDER OUT               # crops in the Aff-Wild2 layout + face records
    affvideo emotions VIDEO_OR_FOLDER OUT            # + per-frame CSV, timeline and contact sheet
    affvideo table STORE OUT --split val --task va   # the same table for videos in a store
    affvideo emotions VIDEO OUT --mtl RUN/mtl/fold0  # one multi-task model instead of 3 heads

Thin: options become configs, one function does the work; errors are one ``error:`` line.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from featurestore.abaw import SPLITS, TASKS
from featurestore.errors import FeatureStoreError
from jobs.video_predict import DEFAULT_ENCODER, DEFAULT_HEADS

MTL_HELP = ("One multi-task checkpoint (`seqtrain fit --task mtl`: a run folder or its best/) "
            "instead of the three heads (--heads and its fold are then unused).")
_ERRORS = (FeatureStoreError, ValueError, FileNotFoundError, KeyError, OSError)


def _fail(err: Exception) -> None:
    click.echo(f"error: {err}", err=True)
    sys.exit(2)


def _report_failed(failed: dict[str, str]) -> None:
    for msg in failed.values():
        click.echo(f"error: {msg}", err=True)
    if failed:
        sys.exit(1)


def _face_options(f):
    opts = [
        click.option("--subjects", type=click.IntRange(1, 2), default=1, show_default=True,
                     help="2: write <video>_left and <video>_right as Aff-Wild2 does."),
        click.option("--detect-every", type=click.IntRange(1, 1000), default=1, show_default=True,
                     help="Run the detector on every k-th frame; optical-flow tracking between."),
        click.option("--min-score", type=click.FloatRange(0, 1), default=0.9, show_default=True,
                     help="Ignore detections scored below this."),
        click.option("--min-face", type=click.IntRange(12, 4096), default=40, show_default=True,
                     help="Smallest face side searched, pixels (after --max-side)."),
        click.option("--max-side", type=click.IntRange(48, 8192), default=640, show_default=True,
                     help="Detect on frames downscaled to this longer side."),
        click.option("--detector", default="mtcnn", show_default=True,
                     help="'mtcnn' or the path of an OpenCV face detector file (YuNet .onnx)."),
        click.option("--device", default="cpu", show_default=True),
        click.option("--no-progress", is_flag=True, help="No progress bars."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def _setup(subjects, detect_every, min_score, min_face, max_side, detector, device):
    from featurestore.video.faces import FacesConfig
    from jobs.video_emotions import make_detector

    cfg = FacesConfig(subjects=subjects, detect_every=detect_every, min_score=min_score)
    return cfg, make_detector(detector, device, min_face, max_side)


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log at INFO level.")
def main(verbose: bool) -> None:
    """Face crops and per-frame emotions from video files."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")


@main.command()
def setup() -> None:
    """Fetch the MTCNN weights from the facenet-pytorch wheel into the cache (once)."""
    from encoders.mtcnn_nets import fetch_mtcnn_weights

    try:
        click.echo(str(fetch_mtcnn_weights()))
    except _ERRORS as err:
        _fail(err)


@main.command()
@click.argument("inputs", type=click.Path(exists=True))
@click.argument("out", type=click.Path(file_okay=False))
@_face_options
@click.option("--pack", type=click.Path(file_okay=False), default=None,
              help="Also pack every crop of OUT into this LMDB frame pack.")
def faces(inputs, out, subjects, detect_every, min_score, min_face, max_side, detector, device,
          no_progress, pack) -> None:
    """Aligned 112x112 face crops of a video (or a folder of videos) in OUT/cropped_aligned/."""
    from featurestore.video.faces import extract_faces

    try:
        cfg, det = _setup(subjects, detect_every, min_score, min_face, max_side, detector, device)
        results, failed = extract_faces(inputs, out, det, cfg, progress=not no_progress)
        summary = {"videos": len(results), "skipped": sum(r.skipped for r in results),
                   "failed": len(failed),
                   "faces": {n: c for r in results for n, c in r.faces.items()}}
        if pack:
            from featurestore.pack import pack_frames

            summary["pack"] = pack_frames(out, pack, progress=not no_progress)
    except _ERRORS as err:
        _fail(err)
    click.echo(json.dumps(summary, indent=2, default=str))
    _report_failed(failed)


@main.command()
@click.argument("inputs", type=click.Path(exists=True))
@click.argument("out", type=click.Path(file_okay=False))
@_face_options
@click.option("--encoder", type=click.Path(), default=str(DEFAULT_ENCODER), show_default=True,
              help="Encoder checkpoint (crops -> features).")
@click.option("--heads", type=click.Path(), default=str(DEFAULT_HEADS), show_default=True,
              help="Folder of the sequence heads: <heads>/<task>/fold<K>.")
@click.option("--fold", type=click.IntRange(0), default=0, show_default=True)
@click.option("--mtl", type=click.Path(), default=None, help=MTL_HELP)
def emotions(inputs, out, subjects, detect_every, min_score, min_face, max_side, detector,
             device, no_progress, encoder, heads, fold, mtl) -> None:
    """Per-frame emotions of a video (or a folder of videos): OUT/<video>.csv (every frame a
    row), OUT/<video>.timeline.png and OUT/<video>.crops.png."""
    from jobs.video_emotions import EmotionsConfig, video_emotions

    try:
        fcfg, det = _setup(subjects, detect_every, min_score, min_face, max_side, detector, device)
        cfg = EmotionsConfig(Path(encoder), Path(heads), fold, device, faces=fcfg,
                             mtl=Path(mtl) if mtl else None)
        tables, failed = video_emotions(inputs, out, det, cfg, progress=not no_progress)
    except _ERRORS as err:
        _fail(err)
    for t in tables:
        click.echo(str(t))
    _report_failed(failed)


@main.command()
@click.argument("store", type=click.Path())
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--video", "videos", multiple=True, help="A video of the store (repeatable).")
@click.option("--split", type=click.Choice(list(SPLITS)), default=None,
              help="Every video of this split (of --task).")
@click.option("--task", type=click.Choice(list(TASKS)), default="va", show_default=True,
              help="Task whose split --split / --fold select.")
@click.option("--fold", "fold_k", type=click.IntRange(0), default=None,
              help="Every validation video of this fold (the project's folds).")
@click.option("--heads", type=click.Path(), default=str(DEFAULT_HEADS), show_default=True)
@click.option("--head-fold", type=click.IntRange(0), default=0, show_default=True,
              help="Which fold's heads predict.")
@click.option("--features", default=None, help="Feature set (default: the heads' own).")
@click.option("--fps", type=click.FloatRange(min=0, min_open=True), default=30.0, show_default=True,
              help="Frame rate for the time column.")
@click.option("--device", default="cpu", show_default=True)
@click.option("--mtl", type=click.Path(), default=None, help=MTL_HELP)
def table(store, out, videos, split, task, fold_k, heads, head_fold, features, fps,
          device, mtl) -> None:
    """Per-frame tables and timelines of videos already in a STORE, into OUT."""
    import featurestore
    from jobs.video_emotions import store_tables

    try:
        chosen = list(videos)
        if split:
            chosen += featurestore.open(store).videos(split=split, task=task)
        if fold_k is not None:
            from seqtrain.folds import fold_videos

            chosen += fold_videos(featurestore.open(store), task, fold_k)[1]
        chosen = list(dict.fromkeys(chosen))
        if not chosen:
            raise ValueError("no videos chosen: give --video, --split or --fold")
        for p in store_tables(store, chosen, out, heads=heads, fold=head_fold,
                              features=features, fps=fps, device=device, mtl=mtl):
            click.echo(str(p))
    except _ERRORS as err:
        _fail(err)


if __name__ == "__main__":
    main()
