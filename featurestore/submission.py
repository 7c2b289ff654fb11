"""A submission file checked against its template, with the rules of shared/AFFWILD2.md: the
task's exact header, one row per template frame in the template's order (face or not), and every
value in its domain (VA finite floats in [-1, 1], an expression class 0-7, AUs 0/1). One checker
for the four files a model writes: va, expr, au and the multi-task (mtl) file.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

from featurestore import abaw
from featurestore.abaw import MTL, TemplateRow
from featurestore.errors import DataFormatError
from featurestore.safeio import excerpt

__all__ = ["FIELDS", "check_submission"]

# the values after image_location, one letter a field: v = VA float, c = class index, b = 0/1
FIELDS = {"va": "vv", "expr": "c", "au": "b" * abaw.NUM_AUS}
FIELDS[MTL] = FIELDS["va"] + FIELDS["expr"] + FIELDS["au"]


def _bad_value(kind: str, text: str) -> str | None:
    """Why ``text`` is not a value of ``kind``, None when it is."""
    if kind == "v":
        try:
            x = float(text)
        except ValueError:
            return "not a number"
        return None if math.isfinite(x) and -1.0 <= x <= 1.0 else "outside [-1, 1]"
    allowed = range(len(abaw.EXPR_CLASSES)) if kind == "c" else (0, 1)
    return None if text.isdigit() and int(text) in allowed else f"not one of {list(allowed)}"


def check_submission(path: str | os.PathLike, task: str,
                     template: str | os.PathLike | Sequence[TemplateRow]) -> int:
    """Check the submission ``path`` of ``task`` (va, expr, au or mtl) against ``template`` (a
    template file or its rows) and return its number of rows.

    Raises DataFormatError naming the file and line of the first problem: another header, a
    missing, extra or reordered frame, a wrong number of values or a value out of its domain.
    """
    path = Path(path)
    if task not in FIELDS:
        raise ValueError(f"task must be one of {sorted(FIELDS)}, got {task!r}")
    rows = template if isinstance(template, Sequence) else abaw.read_template_rows(template)
    kinds = FIELDS[task]
    lines = abaw.iter_lines(path)
    header = abaw.submission_header(task)
    lineno, first = next(lines, (1, ""))
    if first.strip() != header:
        raise DataFormatError(path, lineno, f"header must be {header!r}, got {excerpt(first)}")
    count = 0
    for lineno, line in lines:
        fields = [f.strip() for f in line.split(",")]
        if count >= len(rows):
            raise DataFormatError(path, lineno, f"more rows than the {len(rows)} template frames")
        want = rows[count].location
        if fields[0] != want:
            raise DataFormatError(path, lineno, f"expected the template's frame {want!r} here "
                                  f"(template line {rows[count].line}), got {excerpt(fields[0])}")
        if len(fields) - 1 != len(kinds):
            raise DataFormatError(path, lineno, f"{len(kinds)} values expected after the frame, "
                                  f"got {len(fields) - 1}")
        for i, (kind, text) in enumerate(zip(kinds, fields[1:], strict=True)):
            why = _bad_value(kind, text)
            if why:
                raise DataFormatError(path, lineno, f"value {i + 1} {excerpt(text)}: {why}")
        count += 1
    if count < len(rows):
        missing = rows[count]
        raise DataFormatError(path, None, f"{len(rows) - count} template frame(s) have no row, "
                              f"from {missing.location!r} (template line {missing.line})")
    return count
