"""The rules an Aff-Wild2 tree must follow beyond each file's format (private to the reader).

* Frame files: a video folder holds ``%05d.jpg`` files only — five digits, 00001 to 99999,
  lower-case ``.jpg`` (shared/AFFWILD2.md). Hidden entries (leading ``.``) are skipped; an image
  breaking the rule (``000001.jpg``, ``1.jpg``, ``00001.JPG``, ``00001.png``), ``00000.jpg`` or a
  frame name that is not a file (a folder, a broken link) is a :class:`DataFormatError` naming
  its path, never silently ignored or misread; other files are logged with their path.
* Frame numbers: frames without a face have no jpg, so numbers have gaps; but a jpg more than
  :data:`MAX_GAP` frames after the previous one *and* beyond the frames its annotations or
  templates cover is taken for a stray file (one ``99999.jpg`` would otherwise turn a video of
  300 frames into one of 99,999) and is an error naming it.
* What the reader could not use (annotation folders too deep, split folders not named
  ``Train_Set``/``Validation_Set``, stray files in a task folder) is collected as *ignored*
  entries, which ``ingest`` reports and refuses unless the user accepts a partial dataset.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import numpy as np

from featurestore import abaw
from featurestore.errors import DataFormatError

log = logging.getLogger(__name__)

FRAME_NAME = re.compile(r"^(\d{5})\.jpg$")
FRAME_RULE = "frames are named %05d.jpg (five digits, 00001 to 99999, lower-case .jpg)"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
MAX_GAP = 9000  # 5 minutes at 30 fps without a face, beyond the annotated length
SPLIT_DIRS = tuple(abaw.SPLIT_DIRS.values())  # Train_Set, Validation_Set


def frame_numbers(video_dir: str) -> list[int]:
    """The frame numbers of one video folder. An image file breaking the frame rule, a frame name
    that is not a readable file (a folder, a broken or looping link) or frame 00000 is an error
    naming its path; other files (notes, thumbnails databases) are logged and skipped."""
    out = []
    with os.scandir(video_dir) as it:
        for e in it:
            if e.name.startswith("."):
                continue
            m = FRAME_NAME.match(e.name)
            is_file = e.is_file()  # follows symlinks: False for folders and broken links
            if m and is_file and int(m.group(1)) >= 1:
                out.append(int(m.group(1)))
            elif m and is_file:
                raise DataFormatError(e.path, None, f"frame number 0: {FRAME_RULE}")
            elif m:
                what = "a folder" if e.is_dir() else "a broken or looping symlink"
                raise DataFormatError(e.path, None, f"frame name but {what}, not a file")
            elif Path(e.name).suffix.lower() in IMAGE_SUFFIXES:
                raise DataFormatError(e.path, None, f"image not named by the frame rule: {FRAME_RULE}")
            else:
                log.warning("%s: not a frame (%s); skipped", e.path, FRAME_RULE)
    return out


def check_frame_numbers(video: str, numbers: np.ndarray, covered: int, path_of) -> None:
    """Refuse a jpg more than MAX_GAP frames after the previous one and beyond ``covered``
    (the frames the video's annotations / templates cover). ``path_of(n)`` names a frame's jpg."""
    if not numbers.size:
        return
    gaps = np.diff(numbers, prepend=0)
    bad = np.flatnonzero((gaps > MAX_GAP) & (numbers > covered))
    if bad.size:
        n = int(numbers[bad[0]])
        prev = int(numbers[bad[0] - 1]) if bad[0] else 0
        raise DataFormatError(path_of(n), None, f"implausible frame number {n} in video {video!r}: "
                              f"{n - prev} frames after its previous jpg ({prev}) and beyond the "
                              f"{covered} frames its annotations cover (a stray file?)")


def unusable_in_task_dir(task_dir: Path) -> list[tuple[Path, str]]:
    """Entries of an annotation task folder that the reader does not read, with the reason."""
    out = []
    for p in sorted(task_dir.iterdir()):
        if p.name.startswith(".") or p.name in SPLIT_DIRS:
            continue
        if p.is_dir():
            near = [s for s in SPLIT_DIRS if s.lower().split("_")[0][:5] in p.name.lower()]
            hint = f" (did you mean {near[0]}?)" if near else ""
            out.append((p, f"split folder not named {' or '.join(SPLIT_DIRS)}{hint}; not read"))
        elif p.suffix == ".txt":
            out.append((p, "annotation file outside Train_Set / Validation_Set; not read"))
    return out
