"""The ABAW / Aff-Wild2 vocabulary, written once for every package: task names, the expression
classes and action units in file order, splits, the annotation and template file formats, and
the rule for video names.

    annotation file   <Task_Dir>/<Split_Dir>/<video>.txt: a header (``HEADERS[task]``), then one
                      line per frame (line k+1 = frame ``0000k.jpg``); invalid rows hold -5 (va)
                      or -1 (expr, au)
    template file     ``image_location[,<columns>]`` then ``<video>/<00001>.jpg[,...]`` per frame;
                      a submission is a template with the columns filled in
    multi-task file   header ``image,valence,arousal,expression,aus`` (:data:`MTL_HEADER`), rows
                      ``<video>/<00001>.jpg,<v>,<a>,<class 0-7>,<12 AU 0/1>``: ONE file for the
                      three tasks. No official document is at hand; this is the format of the ABAW
                      multi-task track (ABAW3-ABAW7) as the teams' public submission code writes it
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np

from featurestore.errors import DataFormatError
from featurestore.safeio import excerpt

TASKS = ("va", "expr", "au")
MTL = "mtl"  # the multi-task challenge (ABAW3 on, the only track of ABAW7): the three tasks at once
SPLITS = ("train", "val", "test")
VA_COLUMNS = ("valence", "arousal")
EXPR_CLASSES = ("Neutral", "Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise", "Other")
AU_NAMES = ("AU1", "AU2", "AU4", "AU6", "AU7", "AU10", "AU12", "AU15", "AU23", "AU24", "AU25", "AU26")
NUM_AUS = len(AU_NAMES)
HEADERS = {"va": VA_COLUMNS, "expr": EXPR_CLASSES, "au": AU_NAMES}  # columns of each task's files
VA_INVALID = -5.0  # marker of an unannotated va row
INVALID = -1  # marker of an unannotated expr / au row
TEMPLATE_HEADER = "image_location"
MTL_HEADER = ("image", "valence", "arousal", "expression", "aus")  # "aus" names the 12 AU columns

# Folder names of an Aff-Wild2 release (shared/AFFWILD2.md)
FRAMES_PREFIX = "cropped_aligned"  # cropped_aligned/, cropped_aligned_new_50_vids/, ...
TASK_DIRS = {"va": "VA_Estimation_Challenge", "expr": "EXPR_Recognition_Challenge",
             "au": "AU_Detection_Challenge"}
TASK_DIR_ALIASES = {"EXPR_Classification_Challenge": "expr"}  # older releases
SPLIT_DIRS = {"train": "Train_Set", "val": "Validation_Set"}
TEST_LIST_DIR = "names_of_videos_in_each_test_set"


def frame_location(video: str, number: int) -> str:
    """``image_location`` of frame ``number`` (1-based) of ``video``: ``video/00001.jpg``."""
    return f"{video}/{int(number):05d}.jpg"


def submission_header(task: str) -> str:
    """The header line of ``task``'s submission file (va, expr, au: one file each; mtl: one file
    of the three)."""
    if task == MTL:
        return ",".join(MTL_HEADER)
    if task not in HEADERS:
        raise ValueError(f"task must be one of {sorted(HEADERS)} or {MTL!r}, got {task!r}")
    return ",".join((TEMPLATE_HEADER, *HEADERS[task]))


def is_template_header(line: str) -> bool:
    """Whether ``line`` is the header of a template or submission file: ``image_location`` first
    (one task's file), or exactly :data:`MTL_HEADER` (the multi-task file)."""
    fields = tuple(f.strip() for f in line.split(","))
    return fields[0] == TEMPLATE_HEADER or fields == MTL_HEADER


def check_video_name(name: object) -> str:
    """Return ``name`` if it is a safe video name, else raise ValueError.

    Names become paths and keys (``<video>/00001.jpg`` in frame packs and submissions): no
    ``/``, ``\\``, ``..``, leading ``.``, or control characters, and not empty.
    """
    if (not isinstance(name, str) or not name or "/" in name or "\\" in name or ".." in name
            or name.startswith(".") or any(ord(c) < 32 for c in name)):
        raise ValueError(f"video name {name!r} is invalid: no '/', '\\', '..', leading '.' or "
                         "control characters")
    return name


class TemplateRow(NamedTuple):
    """One frame of a template: its video, 1-based frame number, the ``image_location`` exactly
    as written, and the file's line number."""

    video: str
    frame: int
    location: str
    line: int


MAX_LINE = 4096  # characters of one line of an annotation, test list or template file
MAX_LABEL_LINES = 99_999  # label lines of one annotation file (frames are %05d.jpg)


def iter_lines(path: Path, max_lines: int | None = None) -> Iterator[tuple[int, str]]:
    """Stream ``(line number, text without line end)`` of a UTF-8 file (LF, CRLF or CR, BOM
    dropped); trailing blank lines are dropped. Memory stays bounded whatever the file holds: a
    line longer than :data:`MAX_LINE` or more than ``max_lines`` lines is a DataFormatError
    quoting a short excerpt."""
    blank: list[int] = []
    try:
        with open(path, encoding="utf-8-sig", newline=None) as f:
            for lineno in itertools.count(1):
                line = f.readline(MAX_LINE + 1)
                if not line:
                    return
                if len(line) > MAX_LINE and not line.endswith("\n"):
                    raise DataFormatError(path, lineno, f"line longer than {MAX_LINE} characters: "
                                          f"{excerpt(line)}")
                if max_lines is not None and lineno > max_lines:
                    raise DataFormatError(path, lineno, f"more than {max_lines} lines")
                text = line.rstrip("\n")
                if not text.strip():
                    blank.append(lineno)  # only kept if a non-blank line follows
                    continue
                for b in blank:
                    yield b, ""
                blank.clear()
                yield lineno, text
    except UnicodeDecodeError as err:
        raise DataFormatError(path, None, f"not UTF-8 text ({err.reason})") from None


def read_lines(path: Path) -> list[str]:
    """Lines of a text file without line ends (BOM and CRLF tolerated), trailing blank lines
    dropped; bounded as :func:`iter_lines`."""
    return [text for _, text in iter_lines(path)]


def read_template_rows(path: str | os.PathLike) -> list[TemplateRow]:
    """Every frame row of a template / submission file, in file order (see the module doc).

    Raises DataFormatError naming the file and line of a missing header, a location that is not
    ``video/NNNNN.jpg`` or an invalid video name.
    """
    path = Path(path)
    lines = iter_lines(path)
    first = next(lines, (1, ""))[1]
    if not is_template_header(first):
        raise DataFormatError(path, 1, f"a template starts with an {TEMPLATE_HEADER!r} header "
                              f"(or {submission_header(MTL)!r}, the multi-task one), got "
                              f"{excerpt(first)}")
    rows = []
    for lineno, line in lines:
        loc = line.split(",", 1)[0].strip()
        video, sep, fname = loc.rpartition("/")
        stem = fname[:-4] if fname.endswith(".jpg") else ""
        if not sep or not stem.isdigit() or int(stem) < 1:
            raise DataFormatError(path, lineno, f"expected 'video/NNNNN.jpg', got {excerpt(loc)}")
        try:
            check_video_name(video)
        except ValueError:
            raise DataFormatError(path, lineno, f"invalid video name {excerpt(video)}") from None
        rows.append(TemplateRow(video, int(stem), loc, lineno))
    return rows


def read_template(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """video -> (k,) int64 frame numbers of a template, videos and frames in file order."""
    frames: dict[str, list[int]] = {}
    for row in read_template_rows(path):
        frames.setdefault(row.video, []).append(row.frame)
    return {v: np.asarray(n, dtype=np.int64) for v, n in frames.items()}
