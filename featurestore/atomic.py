"""Atomic file writes for every package: a unique temp file in the target's folder, then
``os.replace``. No half-written file is ever visible at the target, and two processes writing
the same target never share a temp file (``mkstemp`` names are unique)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from featurestore.diskfull import disk_full, full_disk_error

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_json", "atomic_write_text"]


def atomic_write(path: str | os.PathLike, write: Callable[[str], None], suffix: str = "",
                 mode: int | None = None) -> Path:
    """Call ``write(tmp_path)`` then rename the temp file onto ``path`` (parents are created).

    ``suffix`` ends the temp name (for writers that pick the format from it, e.g. ``.png``);
    ``mode`` sets the file's permissions (``mkstemp`` creates it 0600). The temp file is removed
    on error; a full device is an ``OSError(ENOSPC)`` naming ``path`` (featurestore.diskfull).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + suffix, dir=path.parent)
    os.close(fd)
    try:
        if mode is not None:
            os.chmod(tmp, mode)
        write(tmp)
        os.replace(tmp, path)
    except BaseException as err:
        full = isinstance(err, Exception) and disk_full(err, path.parent)  # before the cleanup
        Path(tmp).unlink(missing_ok=True)
        if full:
            raise full_disk_error(path, "not written; the previous file, if any, is unchanged") from err
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes, mode: int | None = None) -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(data), mode=mode)


def atomic_write_text(path: str | os.PathLike, text: str, mode: int | None = None) -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"), mode=mode)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")
