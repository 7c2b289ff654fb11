"""The ``featurestore`` command line: thin wrappers that map options to plain functions.

Each command imports its implementation lazily so ``featurestore --help`` stays fast.
"""

from __future__ import annotations

import json
import logging
import sys

import click

from featurestore.errors import FeatureStoreError


def _fail(err: Exception) -> None:
    click.echo(f"error: {err}", err=True)
    sys.exit(2)


@click.group()
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
def synth(out: str, videos: int, frames: int, seed: int, faces: int) -> None:
    """Write a synthetic dataset in the real Aff-Wild2 (and FER2013 / RAF-DB) layout to OUT."""
    from featurestore.synth import SynthConfig, generate

    try:
        summary = generate(out, SynthConfig(videos=videos, frames=frames, seed=seed, faces=faces))
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
