"""Outputs never touch inputs: one check every writing command runs before it writes anything.

* :func:`check_output` refuses an output that *is*, *contains* or *lies inside* one of the
  command's inputs. Paths are compared after resolving symlinks (``..``, a symlinked parent, a
  symlinked input folder) and, when both exist, by inode (hard links, bind mounts); symlinks in
  the top two levels of an input folder (``root/cropped_aligned -> elsewhere``,
  ``root/cropped_aligned/<video> -> elsewhere``) count as part of that input. URLs are skipped.
* :func:`check_replace` and :func:`mark` implement ``--overwrite``: an existing output folder is
  replaced only when it carries the marker file this library wrote into it when it made it
  (``.affstore-output.json``, naming the kind of output), never a folder someone else made.
* :func:`check_parent` gives a clear error for an output whose folder does not exist.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from featurestore.errors import FeatureStoreError

__all__ = ["MARKER", "OutputError", "OutputExistsError", "check_output", "check_parent", "check_replace", "made_by",
           "mark"]

MARKER = ".affstore-output.json"
_SCAN_LEVELS = 2  # levels of an input folder searched for symlinks that lead elsewhere
_SCAN_LIMIT = 20_000  # entries looked at per input folder (a bound, not a guess at sizes)


class OutputError(FeatureStoreError, ValueError):
    """An output would overwrite, contain or sit inside an input, or replace what it did not make."""


class OutputExistsError(OutputError, FileExistsError):
    """The output exists and may not be replaced."""


def _is_url(path: str | os.PathLike) -> bool:
    return "://" in os.fspath(path)


def _resolve(path: str | os.PathLike) -> Path:
    try:
        return Path(os.path.expanduser(os.fspath(path))).resolve(strict=False)
    except (RuntimeError, OSError) as err:  # a symlink loop (RuntimeError up to Python 3.12)
        raise OutputError(f"{path}: cannot resolve the path (a looping symlink?): {err}") from None


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _linked_targets(folder: Path) -> list[Path]:
    """Resolved targets of the symlinks in the top levels of ``folder`` (bounded scan)."""
    out: list[Path] = []
    level, seen = [folder], 0
    for _ in range(_SCAN_LEVELS):
        below: list[Path] = []
        for d in level:
            try:
                entries = list(os.scandir(d))
            except OSError:
                continue
            for e in entries:
                seen += 1
                if seen > _SCAN_LIMIT:
                    return out
                if e.is_symlink():
                    out.append(_resolve(e.path))
                elif e.is_dir(follow_symlinks=False):
                    below.append(Path(e.path))
        level = below
    return out


def _relation(out: Path, src: Path) -> str | None:
    if out == src or _same_file(out, src):
        return "is"
    if src.is_relative_to(out):
        return "contains"
    if out.is_relative_to(src):
        return "lies inside"
    return None


def check_output(output: str | os.PathLike, inputs: Mapping[str, str | os.PathLike | None]
                 | Iterable[str | os.PathLike | None], *, what: str = "output") -> None:
    """Raise :class:`OutputError` when ``output`` is, contains or lies inside any of ``inputs``.

    ``inputs`` maps a label (the option that named it, e.g. ``"--template"``) to a path, or is a
    plain list of paths; None entries are ignored. Call it before creating or deleting anything.
    """
    if _is_url(output):
        return
    items = inputs.items() if isinstance(inputs, Mapping) else ((None, p) for p in inputs)
    out = _resolve(output)
    for label, given in items:
        if given is None or _is_url(given):
            continue
        src = _resolve(given)
        candidates = [src] + (_linked_targets(src) if src.is_dir() else [])
        for target in candidates:
            relation = _relation(out, target)
            if relation is None:
                continue
            name = f"input {label} {given}" if label else f"input {given}"
            via = "" if target == src else f" (through the symlink to {target})"
            raise OutputError(f"{what} {output} {relation} the {name}{via}; refusing to write: "
                              f"the {what} must lie outside every input")


def check_parent(output: str | os.PathLike, *, what: str = "output") -> None:
    """Raise :class:`OutputError` unless the folder that will hold ``output`` exists."""
    if _is_url(output):
        return
    parent = Path(os.path.abspath(os.fspath(output))).parent
    if not parent.is_dir():
        why = "is not a folder" if parent.exists() else "does not exist"
        raise OutputError(f"{what} {output}: the folder {parent} {why}")
    if Path(output).is_dir():
        raise OutputError(f"{what} {output} is a folder; expected a file name")


def made_by(folder: str | os.PathLike, kind: str) -> bool:
    """True when ``folder`` carries this library's marker for outputs of ``kind``."""
    path = Path(folder) / MARKER
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > 4096:
            return False
        return json.loads(path.read_text(encoding="utf-8")).get("kind") == kind
    except (OSError, ValueError, AttributeError):
        return False


def mark(folder: str | os.PathLike, kind: str) -> None:
    """Record in ``folder`` (which this command just made) that it is an output of ``kind``."""
    (Path(folder) / MARKER).write_text(json.dumps({"kind": kind, "made_by": "affstore"}) + "\n",
                                       encoding="utf-8")


def check_replace(output: str | os.PathLike, kind: str, overwrite: bool) -> bool:
    """Whether ``output`` exists and may be replaced; raise :class:`OutputError` when it may not.

    Without ``overwrite`` an existing output is refused. With it, only a real folder (not a
    symlink) carrying the marker of ``kind`` may be replaced.
    """
    path = Path(output)
    if not path.exists() and not path.is_symlink():
        return False
    if not overwrite:
        raise OutputExistsError(f"{path} exists; refusing to overwrite it (--overwrite replaces a "
                          f"{kind} this command made)")
    if path.is_symlink() or not path.is_dir():
        raise OutputExistsError(f"{path} is {'a symlink' if path.is_symlink() else 'not a folder'}; "
                          f"--overwrite only replaces a {kind} folder this command made")
    if not made_by(path, kind):
        raise OutputExistsError(f"{path} was not made by this command (no {MARKER} marking it as a "
                          f"{kind}); refusing to replace it: remove it yourself if it is disposable")
    return True
