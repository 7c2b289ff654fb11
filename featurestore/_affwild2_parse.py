"""Parsing half of the Aff-Wild2 reader: annotation files (the vocabulary and the template
format are in :mod:`featurestore.abaw`). Public names are re-exported by
:mod:`featurestore.affwild2`.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from featurestore.abaw import (  # noqa: F401  (re-exported by featurestore.affwild2)
    AU_NAMES,
    EXPR_CLASSES,
    HEADERS,
    MAX_LABEL_LINES,
    MAX_LINE,
    SPLITS,
    TASKS,
    iter_lines,
    read_lines,
    read_template,
)
from featurestore.errors import DataFormatError
from featurestore.safeio import excerpt


def _check_header(path: Path, line: str, expected: tuple[str, ...]) -> None:
    got = tuple(c.strip() for c in line.split(","))
    if got != expected:
        raise DataFormatError(path, 1, f"wrong header {excerpt(line.strip())}: expected {','.join(expected)!r}")


def _number(path: Path, lineno: int, text: str, kind: type) -> float | int:
    try:
        return kind(text.strip())
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise DataFormatError(path, lineno, f"{excerpt(text.strip())} is not {what}") from None


def _parse_va(path: Path, lineno: int, cells: list[str]) -> tuple[tuple[float, float], bool]:
    v, a = (_number(path, lineno, c, float) for c in cells)
    if v == -5 or a == -5:
        return (v, a), False
    for name, x in (("valence", v), ("arousal", a)):
        if not (math.isfinite(x) and -1.0 <= x <= 1.0):
            raise DataFormatError(path, lineno, f"{name} {x} out of range [-1, 1] (invalid marker is -5)")
    return (v, a), True


def _parse_expr(path: Path, lineno: int, cells: list[str]) -> tuple[int, bool]:
    c = _number(path, lineno, cells[0], int)
    if c == -1:
        return c, False
    if not 0 <= c < len(EXPR_CLASSES):
        raise DataFormatError(path, lineno, f"expression {c} out of range 0..7 (invalid marker is -1)")
    return c, True


def _parse_au(path: Path, lineno: int, cells: list[str]) -> tuple[list[int], bool]:
    row = [_number(path, lineno, c, int) for c in cells]
    for name, x in zip(AU_NAMES, row, strict=True):
        if x not in (0, 1, -1):
            raise DataFormatError(path, lineno, f"{name} value {x} is not 0, 1 or -1")
    return row, -1 not in row


_ROW_PARSERS = {"va": (_parse_va, np.float32), "expr": (_parse_expr, np.int64), "au": (_parse_au, np.int8)}


def parse_annotation(path: str | Path, task: str) -> tuple[np.ndarray, np.ndarray]:
    """Parse one annotation file; line i+1 of the file labels frame i (1-based).

    Returns ``values`` (va: (n, 2) float32, expr: (n,) int64, au: (n, 12) int8) and ``valid`` (n,)
    bool, n = number of label lines. Invalid rows keep their raw marker values (-5 / -1).
    """
    if task not in HEADERS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    path = Path(path)
    lines = [text for _, text in iter_lines(path, max_lines=MAX_LABEL_LINES + 1)]
    if not lines:
        raise DataFormatError(path, 1, "empty annotation file (expected a header line)")
    expected = HEADERS[task]
    _check_header(path, lines[0], expected)
    ncols = len(expected) if task != "expr" else 1
    fast = _parse_fast(lines[1:], task, ncols)
    if fast is not None:
        return fast
    return _parse_slow(path, lines[1:], task, ncols)


def _parse_fast(rows: list[str], task: str, ncols: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Vectorised parse of well-formed rows; None when anything is off (the slow path then
    finds the first bad line and names it)."""
    if any(r.count(",") != ncols - 1 for r in rows):
        return None
    cells = ",".join(rows).split(",") if rows else []
    try:
        raw = np.array(cells, dtype=np.float64 if task == "va" else np.int64).reshape(len(rows), ncols)
    except ValueError:
        return None
    if task == "va":
        valid = ~(raw == -5).any(axis=1)  # (n,)
        ok = np.isfinite(raw[valid]).all() and (np.abs(raw[valid]) <= 1.0).all()
        return (raw.astype(np.float32), valid) if ok else None
    if task == "expr":
        raw = raw[:, 0]  # (n,)
        return (raw, raw != -1) if ((raw >= -1) & (raw <= 7)).all() else None
    ok = ((raw >= -1) & (raw <= 1)).all()
    return (raw.astype(np.int8), ~(raw == -1).any(axis=1)) if ok else None


def _parse_slow(path: Path, rows: list[str], task: str, ncols: int) -> tuple[np.ndarray, np.ndarray]:
    """Line-by-line parse that raises DataFormatError at the first bad line."""
    parse_row, dtype = _ROW_PARSERS[task]
    values, valid = [], np.empty(len(rows), dtype=bool)
    for i, line in enumerate(rows):
        lineno = i + 2
        cells = line.split(",")
        if len(cells) != ncols:
            raise DataFormatError(path, lineno,
                                  f"expected {ncols} column(s), got {len(cells)}: {excerpt(line.strip())}")
        row, ok = parse_row(path, lineno, cells)
        values.append(row)
        valid[i] = ok
    shape = {"va": (-1, 2), "expr": (-1,), "au": (-1, len(AU_NAMES))}[task]
    return np.asarray(values, dtype=dtype).reshape(shape), valid
