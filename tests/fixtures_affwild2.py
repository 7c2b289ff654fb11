"""Helpers that write small Aff-Wild2 / face-set trees into a tmp_path (real layouts, tiny sizes)."""

from __future__ import annotations

import io
import zlib
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

VA_HEADER = "valence,arousal"
EXPR_HEADER = "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other"
AU_HEADER = "AU1,AU2,AU4,AU6,AU7,AU10,AU12,AU15,AU23,AU24,AU25,AU26"


@lru_cache(maxsize=64)
def jpeg_bytes(seed: int = 0, size: int = 8) -> bytes:
    """A small valid RGB JPEG whose pixels depend on ``seed``."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def write_frames(root: Path, video: str, numbers, folder: str = "cropped_aligned") -> Path:
    """Write ``<root>/<folder>/<video>/NNNNN.jpg`` for each number; returns the video folder."""
    d = root / folder / video
    d.mkdir(parents=True, exist_ok=True)
    for n in numbers:
        (d / f"{n:05d}.jpg").write_bytes(jpeg_bytes(zlib.crc32(f"{video}/{n}".encode()) % 61))
    return d


def write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def write_annotation(root: Path, task: str, split: str, video: str, rows: list[str],
                     *, header: str | None = None, expr_dir: str = "EXPR_Recognition_Challenge",
                     ann: str = "annotations") -> Path:
    """Write ``<root>/<ann>/<Task>_Challenge/<Split>_Set/<video>.txt`` with a header and rows."""
    task_dir = {"va": "VA_Estimation_Challenge", "expr": expr_dir, "au": "AU_Detection_Challenge"}[task]
    split_dir = {"train": "Train_Set", "val": "Validation_Set"}[split]
    hdr = header if header is not None else {"va": VA_HEADER, "expr": EXPR_HEADER, "au": AU_HEADER}[task]
    return write_text(root / ann / task_dir / split_dir / f"{video}.txt", "\n".join([hdr, *rows]) + "\n")


def va_rows(n: int, invalid=()) -> list[str]:
    return ["-5,-5" if i in invalid else f"{(i % 10) / 10:.2f},{-(i % 5) / 10:.2f}" for i in range(n)]


def expr_rows(n: int, invalid=()) -> list[str]:
    return ["-1" if i in invalid else str(i % 8) for i in range(n)]


def au_rows(n: int, invalid=()) -> list[str]:
    row = lambda i: ",".join(str((i >> k) & 1) for k in range(12))  # noqa: E731
    return [",".join(["-1"] * 12) if i in invalid else row(i) for i in range(n)]


def build_quirky_tree(root: Path) -> Path:
    """A tree with every quirk of shared/AFFWILD2.md; see tests/test_affwild2.py for what it holds.

    - ``gappy``: jpgs 7..12 and 15..20 (starts at 7, gap 13-14), VA train with 25 lines (more lines
      than jpgs; rows 0 and 3 are -5), EXPR val (ABAW6 folder name) with a -1 on row 1.
    - ``split``: jpgs 1..5 in ``cropped_aligned`` and 4..9 in ``cropped_aligned_new_50_vids`` (4,5
      duplicated: the first root wins), AU train with an all -1 row 2.
    - ``nested``: jpgs 1..4 under ``cropped_aligned/cropped_aligned``, no labels; a non-image file.
    - ``10-60_left`` / ``10-60_right``: a two-subject video, VA val.
    - ``test1``: test-listed for VA with frames 1..3 and a VA template naming frames 1..6.
    - ``test2``: test-listed for VA, no frames folder, template frames 1..4.
    """
    write_frames(root, "gappy", [*range(7, 13), *range(15, 21)])
    write_annotation(root, "va", "train", "gappy", va_rows(25, invalid={0, 3}))
    write_annotation(root, "expr", "val", "gappy", expr_rows(20, invalid={1}))
    write_frames(root, "split", range(1, 6))
    write_frames(root, "split", range(4, 10), folder="cropped_aligned_new_50_vids")
    write_annotation(root, "au", "train", "split", au_rows(9, invalid={2}))
    d = write_frames(root, "nested", range(1, 5), folder="cropped_aligned/cropped_aligned")
    (d / "notes.txt").write_text("not a frame")
    for side in ("left", "right"):
        write_frames(root, f"10-60_{side}", range(1, 4))
        write_annotation(root, "va", "val", f"10-60_{side}", va_rows(3))
    write_frames(root, "test1", range(1, 4))
    lists = root / "names_of_videos_in_each_test_set"
    write_text(lists / "Valence_Arousal_Estimation_Challenge_test_set_release.txt", "test1\r\ntest2\r\n")
    rows = [f"test1/{i:05d}.jpg,," for i in range(1, 7)] + [f"test2/{i:05d}.jpg,," for i in range(1, 5)]
    write_text(root / "templates" / "va_template.txt", "\n".join(["image_location,valence,arousal", *rows]))
    return root
