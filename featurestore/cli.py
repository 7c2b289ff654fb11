"""The ``featurestore`` command line: thin wrappers that map options to plain functions.

Each command imports its implementation lazily so ``featurestore --help`` stays fast.
"""

from __future__ import annotations

import json
import logging
import sys

import click

from featurestore.abaw import SPLITS
from featurestore.atomic import atomic_write
from featurestore.clierrors import ErrorGroup
from featurestore.errors import FeatureStoreError


def _fail(err: Exception) -> None:
    click.echo(f"error: {err}", err=True)
    sys.exit(1)


@click.group(cls=ErrorGroup)
@click.option("-v", "--verbose", is_flag=True, help="Log at INFO level.")
def main(verbose: bool) -> None:
    """Aff-Wild2 feature store: synthetic data, ingest, LMDB packs, and store inspection."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")


@main.command()
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--videos", default=12, show_default=True, help="Number of annotated videos.")
@click.option("--frames", default=400, show_default=True, help="Mean frames per video.")
@click.option("--seed", default=0, show_default=True)
@click.option("--faces", default=2000, show_default=True, help="Images in the static face sets.")
@click.option("--lag", default=1.0, show_default=True,
              help="Annotation lag strength: VA labels trail the face by LAG*U(0.5,1.5) s (0: off).")
@click.option("--bursts", default=0.05, show_default=True,
              help="Share of frames in occlusion / blur / turned-away bursts (0: off).")
@click.option("--motion-arousal", default=0.5, show_default=True,
              help="Share of arousal shown as head-motion speed instead of in the face (0: off).")
@click.option("--expr-ramp", default=1.0, show_default=True,
              help="Expression onset/offset length scale: EXPR_RAMP*U(0.2,0.6) s (0: off).")
@click.option("--no-temporal", is_flag=True, help="All four temporal settings 0 (the old data).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Processes drawing frames and faces (default: one per CPU, at most 8; same bytes "
                   "for any).")
def synth(out: str, videos: int, frames: int, seed: int, faces: int, lag: float, bursts: float,
          motion_arousal: float, expr_ramp: float, no_temporal: bool, workers: int | None) -> None:
    """Write a synthetic dataset in the real Aff-Wild2 (and FER2013 / RAF-DB) layout to OUT."""
    from featurestore.synth import SynthConfig, generate

    if no_temporal:
        lag = bursts = motion_arousal = expr_ramp = 0.0
    try:
        summary = generate(out, SynthConfig(videos=videos, frames=frames, seed=seed, faces=faces,
                                            lag=lag, bursts=bursts, motion_arousal=motion_arousal,
                                            expr_ramp=expr_ramp), workers=workers)
    except (FeatureStoreError, ValueError, FileExistsError) as err:
        _fail(err)
    click.echo(json.dumps(summary, indent=2))


@main.command()
@click.argument("root", type=click.Path(exists=True, file_okay=False))
def scan(root: str) -> None:
    """Read an Aff-Wild2 tree with the reader and print a summary (videos, frames, labels)."""
    from featurestore.affwild2 import read_affwild2, summarize

    try:
        click.echo(summarize(read_affwild2(root)))
    except FeatureStoreError as err:
        _fail(err)


@main.command()
@click.argument("root", type=click.Path(exists=True, file_okay=False))
@click.argument("pack", type=click.Path(file_okay=False))
@click.option("--overwrite", is_flag=True, help="Replace PACK if it exists.")
@click.option("--progress/--no-progress", default=True, show_default=True)
def pack(root: str, pack: str, overwrite: bool, progress: bool) -> None:
    """Pack every face jpg of the Aff-Wild2 tree ROOT into the LMDB folder PACK."""
    from featurestore.pack import pack_frames

    try:
        summary = pack_frames(root, pack, progress=progress, overwrite=overwrite)
    except (FeatureStoreError, FileExistsError) as err:
        _fail(err)
    click.echo(json.dumps(summary, indent=2))


# ---------------------------------------------------------------- the Zarr feature store


@main.command()
@click.option("--affwild2", "root", required=True, type=click.Path(exists=True, file_okay=False),
              help="Aff-Wild2 dataset root.")
@click.argument("store")
@click.option("--accept-partial", is_flag=True,
              help="Ingest even when a task or split has no labels or folders could not be read.")
@click.option("--invalidate-changed", is_flag=True,
              help="When a video's face mask changed, uncommit its features (default: refuse).")
def ingest(root: str, store: str, accept_partial: bool, invalidate_changed: bool) -> None:
    """Create STORE (or update it after new annotations) from the Aff-Wild2 tree at ROOT."""
    from featurestore.ingest import ingest_affwild2

    try:
        summary = ingest_affwild2(root, store, progress=sys.stderr.isatty(),
                                  accept_partial=accept_partial,
                                  invalidate_changed=invalidate_changed)
    except (FeatureStoreError, ValueError) as err:
        _fail(err)
    click.echo(json.dumps(summary, indent=2))


@main.command(name="ls")
@click.argument("store")
def ls_(store: str) -> None:
    """List the videos and feature sets of STORE."""
    import featurestore

    try:
        s = featurestore.open(store)
        click.echo(f"{len(s.videos())} videos")
        for name in s.feature_sets():
            info = s.feature_info(name)
            click.echo(f"feature set {name}: dim {info.dim} {info.dtype} fill {info.fill}, "
                       f"{len(s.committed(name))} committed")
    except FeatureStoreError as err:
        _fail(err)


@main.command()
@click.argument("store")
@click.argument("video", required=False)
def info(store: str, video: str | None) -> None:
    """Print STORE's catalog summary, or one VIDEO's frames, splits and committed sets (JSON)."""
    import featurestore
    from featurestore.layout import TASKS

    try:
        s = featurestore.open(store)
        if video is None:
            out = {"store": s.path, "videos": len(s.videos()),
                   "splits": {t: {sp: len(s.videos(split=sp, task=t)) for sp in SPLITS}
                              for t in TASKS},
                   "feature_sets": {n: vars(s.feature_info(n)) for n in s.feature_sets()}}
        else:
            out = {"video": video, "source": s.source(video), "num_frames": s.num_frames(video),
                   "present": int(s.present(video).sum()), "offset": s.offset(video),
                   "splits": {t: s.split(video, t) for t in TASKS},
                   "committed": [n for n in s.feature_sets() if video in s.committed(n)]}
    except FeatureStoreError as err:
        _fail(err)
    click.echo(json.dumps(out, indent=2, default=str))


@main.command()
@click.argument("store")
@click.option("--set", "name", required=True, help="Feature set name.")
@click.option("--video", required=True)
@click.option("--start", type=int, default=None, help="First frame index (0-based).")
@click.option("--stop", type=int, default=None, help="One past the last frame index.")
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False), help="Output .npy.")
def get(store: str, name: str, video: str, start: int | None, stop: int | None, out: str) -> None:
    """Write the features of one VIDEO (frames [start, stop)) of set NAME to a .npy file."""

    import numpy as np

    import featurestore
    from featurestore.outputs import check_output, check_parent

    try:
        check_output(out, {"STORE": store}, what="--out")
        check_parent(out, what="--out")
        rows = featurestore.open(store).features(name, video, start, stop)
    except FeatureStoreError as err:
        _fail(err)
    atomic_write(out, lambda tmp: np.save(tmp, rows), suffix=".npy")
    click.echo(f"{out}: {rows.shape[0]} x {rows.shape[1]} {rows.dtype}")


@main.command()
@click.argument("store")
def verify(store: str) -> None:
    """Re-read every committed video of STORE and check shapes, values and checksums."""
    import featurestore
    from featurestore.verify import verify as run_verify

    try:
        report = run_verify(featurestore.open(store), progress=sys.stderr.isatty())
    except FeatureStoreError as err:
        _fail(err)
    click.echo(json.dumps(report, indent=2))
    if not report["ok"]:
        sys.exit(1)


@main.command(name="rm-set")
@click.argument("store")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Really delete (without it, only say what would go).")
def rm_set(store: str, name: str, yes: bool) -> None:
    """Delete feature set NAME of STORE (no writer may be running)."""
    import featurestore
    from featurestore.sets import remove_feature_set

    try:
        s = featurestore.open(store, mode="r+" if yes else "r")
        committed = len(s.committed(name))
        if not yes:
            click.echo(f"would delete feature set {name} ({committed} committed videos); "
                       "add --yes to delete it")
            return
        count = remove_feature_set(s, name)
    except FeatureStoreError as err:
        _fail(err)
    click.echo(f"deleted feature set {name} ({committed} committed videos, {count} objects)")


@main.command(name="rename-set")
@click.argument("store")
@click.argument("old")
@click.argument("new")
def rename_set(store: str, old: str, new: str) -> None:
    """Rename feature set OLD of STORE to NEW (no writer may be running)."""
    import featurestore
    from featurestore.sets import rename_feature_set

    try:
        rename_feature_set(featurestore.open(store, mode="r+"), old, new)
    except FeatureStoreError as err:
        _fail(err)
    click.echo(f"renamed feature set {old} to {new}")


@main.command()
@click.argument("old")
@click.argument("new")
def migrate(old: str, new: str) -> None:
    """Write a copy of the older-layout store OLD with chunk checksums (the current layout) at
    NEW, which must not exist. OLD is never written; a failed migration leaves nothing at NEW."""
    from featurestore.migrate import migrate_store

    try:
        summary = migrate_store(old, new)
    except FeatureStoreError as err:
        _fail(err)
    click.echo(json.dumps(summary, indent=2))
