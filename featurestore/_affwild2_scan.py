"""Discovery half of the Aff-Wild2 reader: walks the tree once and finds frames folders, the
annotation root, test release lists and template files. Private to :mod:`featurestore.affwild2`.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from featurestore import abaw
from featurestore._affwild2_rules import frame_numbers
from featurestore.errors import DataFormatError

log = logging.getLogger(__name__)

ANNOTATION_DIRS = {**{d: t for t, d in abaw.TASK_DIRS.items()}, **abaw.TASK_DIR_ALIASES}
TEST_LIST_DIR = abaw.TEST_LIST_DIR
FRAMES_PREFIX = abaw.FRAMES_PREFIX
MAX_ANNOTATION_DEPTH = 3
_TEST_KEYWORDS = {
    "va": ({"valence", "arousal", "va"}, ()),
    "expr": ({"expr", "expression"}, ()),
    "au": ({"au"}, (("action", "unit"),)),
}


def check_video_name(path: Path | str, line: int | None, name: str) -> None:
    """:func:`featurestore.abaw.check_video_name` as a DataFormatError naming file and line."""
    try:
        abaw.check_video_name(name)
    except ValueError:
        raise DataFormatError(path, line, f"invalid video name {name!r}") from None


def test_list_task(path: Path) -> str | None:
    """Task of a test release list from keywords in its file name, None if none matches."""
    tokens = [t for t in re.split(r"[^a-z0-9]+", path.stem.lower()) if t]
    found = set()
    for task, (words, pairs) in _TEST_KEYWORDS.items():
        if any(t in words for t in tokens) or any(
            (a, b) in zip(tokens, tokens[1:], strict=False) for a, b in pairs
        ):
            found.add(task)
    if len(found) > 1:
        raise DataFormatError(path, None, f"test list name matches several tasks {sorted(found)}")
    return found.pop() if found else None


@dataclass
class Scan:
    """What one walk of the tree found."""

    # video -> (frame roots holding it, sorted frame numbers, index of the root for each number)
    frames: dict[str, tuple[tuple[Path, ...], np.ndarray, np.ndarray]] = field(default_factory=dict)
    annotation_dirs: dict[str, list[Path]] = field(default_factory=dict)
    test_lists: list[Path] = field(default_factory=list)
    template_files: list[Path] = field(default_factory=list)
    frames_roots: list[Path] = field(default_factory=list)  # every cropped_aligned* folder
    too_deep: list[Path] = field(default_factory=list)  # annotation folders below MAX_ANNOTATION_DEPTH


def _scan_frames_root(frames_root: Path, found: dict[str, list[tuple[Path, list[int]]]]) -> list[Path]:
    """Record the videos of one ``cropped_aligned*`` folder; returns nested frames roots."""
    nested = []
    with os.scandir(frames_root) as it:
        entries = sorted((e for e in it if e.is_dir() and not e.name.startswith(".")), key=lambda e: e.name)
    for e in entries:
        if e.name.startswith(FRAMES_PREFIX):
            nested.append(Path(e.path))
            continue
        numbers = frame_numbers(e.path)
        if numbers:
            found.setdefault(e.name, []).append((frames_root, numbers))
    return nested


def _merge_frames(found: dict[str, list[tuple[Path, list[int]]]]) -> dict:
    """Merge a video's jpgs over frames roots; the first root (sorted by path) wins a duplicate."""
    out = {}
    for name, parts in found.items():
        parts = sorted(parts, key=lambda p: str(p[0]))
        owner: dict[int, int] = {}
        dup = 0
        for d, (_, numbers) in enumerate(parts):
            for n in numbers:
                if n in owner:
                    dup += 1
                else:
                    owner[n] = d
        if dup:
            log.warning("video %r: %d frame(s) found in several frames folders; kept the first of %s",
                        name, dup, [str(p[0]) for p in parts])
        numbers = np.array(sorted(owner), dtype=np.int64)
        index = np.array([owner[int(n)] for n in numbers], dtype=np.int16)
        out[name] = (tuple(p[0] for p in parts), numbers, index)
    return out


def _is_template(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError:
        return False
    first = head.lstrip(b"\xef\xbb\xbf").split(b"\n", 1)[0].decode("utf-8", "replace")
    return abaw.is_template_header(first.rstrip("\r"))


def scan_tree(root: Path) -> Scan:
    """Walk ``root`` once (not inside video folders) and collect what the reader needs."""
    scan = Scan()
    found: dict[str, list[tuple[Path, list[int]]]] = {}
    frames_roots: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        here = Path(dirpath)
        depth = len(here.relative_to(root).parts)
        keep = []
        for d in sorted(dirnames):
            if d.startswith("."):
                continue
            if d.startswith(FRAMES_PREFIX):
                frames_roots.append(here / d)
            elif d in ANNOTATION_DIRS:
                if depth <= MAX_ANNOTATION_DEPTH:
                    scan.annotation_dirs.setdefault(ANNOTATION_DIRS[d], []).append(here / d)
                else:
                    scan.too_deep.append(here / d)
            elif depth < 8:  # a cap against symlink loops
                keep.append(d)
        dirnames[:] = keep
        for f in sorted(filenames):
            p = here / f
            if here.name == TEST_LIST_DIR and f.endswith(".txt"):
                scan.test_lists.append(p)
            elif f.endswith((".txt", ".csv")) and _is_template(p):
                scan.template_files.append(p)
    scan.frames_roots = list(frames_roots)
    while frames_roots:
        frames_roots.extend(_scan_frames_root(frames_roots.pop(0), found))
    scan.frames = _merge_frames(found)
    return scan
