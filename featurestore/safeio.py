"""Bounded reads of small metadata files (JSON configs, metrics, markers).

:func:`read_json` refuses a file larger than a limit before reading it, and a file that is not
valid JSON (truncated, binary, empty, a folder) with a :class:`DataFormatError` naming the file,
the line and a short excerpt, never a bare decoder message without a path.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from featurestore.errors import DataFormatError

__all__ = ["excerpt", "read_json"]

JSON_LIMIT = 64 << 20  # bytes; metadata files are kilobytes
EXCERPT = 80  # characters of bad input quoted in an error message


def excerpt(text: str | bytes, limit: int = EXCERPT) -> str:
    """``repr`` of at most ``limit`` characters of ``text`` (with a marker when cut)."""
    cut = text[:limit]
    return repr(cut) + (f" ... ({len(text)} in all)" if len(text) > limit else "")


def read_json(path: str | os.PathLike, *, limit: int = JSON_LIMIT) -> Any:
    """Parse the JSON file ``path``; DataFormatError naming it when it cannot be."""
    path = Path(path)
    if path.is_dir():
        raise DataFormatError(path, None, "is a folder, expected a JSON file")
    size = path.stat().st_size
    if size > limit:
        raise DataFormatError(path, None, f"{size} bytes; a JSON file here holds at most {limit}")
    raw = path.read_bytes()
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise DataFormatError(path, None, f"not UTF-8 text: {excerpt(raw)}") from None
    except json.JSONDecodeError as err:
        what = "empty file" if not raw.strip() else f"not valid JSON ({err.msg}; truncated?)"
        near = excerpt(err.doc[max(0, err.pos - 40):err.pos + 40])
        raise DataFormatError(path, err.lineno, f"{what} at {near}") from None
