"""Tell a full disk from other write failures, and say so with the path.

Libraries report a full device in their own words: Python's ``OSError`` has ``errno.ENOSPC``
but often no file name, LMDB says ``mdb_txn_commit: Input/output error`` and ``torch.save``
says ``unexpected pos``. :func:`disk_full` looks at the error *and* at the free space of the
device right after the failure (before any cleanup frees it), and :func:`full_disk_error` turns
either into one ``OSError(ENOSPC)`` naming the path that could not be written.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

__all__ = ["FULL_BELOW", "disk_full", "full_disk_error"]

FULL_BELOW = 1 << 20  # bytes free under which a failed write is taken for a full device
_FULL = (errno.ENOSPC, errno.EDQUOT)


def _free(path: Path) -> int | None:
    for p in (path, *path.parents):
        try:
            return shutil.disk_usage(p).free
        except OSError:
            continue
    return None


def disk_full(err: BaseException, path: str | os.PathLike) -> bool:
    """Whether ``err``, raised while writing under ``path``, comes from a full device."""
    if isinstance(err, OSError) and err.errno in _FULL:
        return True
    free = _free(Path(path))
    return free is not None and free < FULL_BELOW


def full_disk_error(path: str | os.PathLike, what: str) -> OSError:
    """``OSError(ENOSPC)`` naming ``path``: ``<path>: No space left on device (<what>)``."""
    return OSError(errno.ENOSPC, f"No space left on device ({what})", os.fspath(path))
