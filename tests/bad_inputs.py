"""A corpus of bad inputs: each case corrupts a copy of a small valid dataset / store in place.

Every :class:`BadInput` names the stage that must reject it (``ingest``: Aff-Wild2 reader + store
ingest, ``pack``: LMDB frame pack, ``extract``: JPEG decoding inside the extraction worker,
``write``: the feature writer, ``open``: opening a store), the file it damages (returned by
``make``), the message the error must carry and the line it must name (None: no line applies).
Used by tests/test_bad_inputs.py; also handy for trying a build by hand.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ANN = "6th_ABAW_Annotations"
TASK_DIRS = {"va": "VA_Estimation_Challenge", "expr": "EXPR_Recognition_Challenge",
             "au": "AU_Detection_Challenge"}


@dataclass(frozen=True)
class BadInput:
    name: str
    stage: str  # ingest | pack | extract | write | open
    make: Callable[[Path], Path]  # root of a fresh valid copy -> the damaged file (or folder)
    error: str  # regex the message must match
    line: int | None = None  # the line the message must name
    root: str = "affwild2"  # the folder given to ingest, relative to the copy's data folder


def tree_digest(root: Path) -> dict[str, str]:
    """relative path -> sha256 of every file under ``root`` ("<dir>" for folders, the target for
    symlinks, which are not followed)."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out[rel] = f"<link {p.readlink()}>"
        else:
            out[rel] = "<dir>" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def annotation(root: Path, task: str, split: str = "Train_Set") -> Path:
    """The first annotation file of ``task`` in ``split`` of the Aff-Wild2 tree under ``root``."""
    return sorted((root / "affwild2" / ANN / TASK_DIRS[task] / split).glob("*.txt"))[0]


def first_jpg(root: Path, k: int = 4) -> Path:
    return sorted((root / "affwild2" / "cropped_aligned").glob("*/*.jpg"))[k]


def _edit_line(task: str, lineno: int, text: str | None, split: str = "Train_Set"):
    """Replace (or with None, delete) line ``lineno`` (1-based) of an annotation file."""
    def make(root: Path) -> Path:
        path = annotation(root, task, split)
        lines = path.read_text().splitlines()
        if text is None:
            del lines[lineno - 1]
        else:
            lines[lineno - 1] = text
        path.write_text("\n".join(lines) + "\n")
        return path
    return make


def _write(rel: str, data: bytes):
    def make(root: Path) -> Path:
        path = root / "affwild2" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path
    return make


def _replace_jpg(data: Callable[[bytes], bytes]):
    def make(root: Path) -> Path:
        path = first_jpg(root)
        path.write_bytes(data(path.read_bytes()))
        return path
    return make


def _copy_to_val(root: Path) -> Path:
    src = annotation(root, "va")
    dst = src.parent.parent / "Validation_Set" / src.name
    dst.write_bytes(src.read_bytes())
    return dst


def _test_list_line(root: Path) -> Path:
    path = sorted((root / "affwild2" / "names_of_videos_in_each_test_set").glob("Valence*"))[0]
    path.write_text(path.read_text().rstrip("\n") + "\n../../etc\n")
    return path


PNG = b"\x89PNG\r\n\x1a\n" + bytes(64)
VA_HEADER, AU_ROW = "valence,arousal", ",".join(["0"] * 12)

ANNOTATION_CASES = [
    BadInput("va-missing-header", "ingest", _edit_line("va", 1, None), "wrong header", 1),
    BadInput("va-wrong-header", "ingest", _edit_line("va", 1, "arousal,valence"), "wrong header", 1),
    BadInput("expr-wrong-header", "ingest", _edit_line("expr", 1, "Neutral,Anger"), "wrong header", 1),
    BadInput("au-wrong-columns", "ingest", _edit_line("au", 3, ",".join(["0"] * 11)),
             "expected 12 column", 3),
    BadInput("va-wrong-columns", "ingest", _edit_line("va", 5, "0.1,0.2,0.3"), "expected 2 column", 5),
    BadInput("va-out-of-range", "ingest", _edit_line("va", 4, "1.5,0.0"), "out of range", 4),
    BadInput("va-nan", "ingest", _edit_line("va", 2, "nan,0.0"), "out of range", 2),
    BadInput("expr-out-of-range", "ingest", _edit_line("expr", 6, "9"), "out of range", 6),
    BadInput("au-not-binary", "ingest", _edit_line("au", 2, "2," + AU_ROW[2:]), "not 0, 1 or -1", 2),
    BadInput("va-not-a-number", "ingest", _edit_line("va", 3, "abc,0.1"), "not a number", 3),
    BadInput("expr-not-an-integer", "ingest", _edit_line("expr", 2, "1.5"), "not an integer", 2),
    BadInput("va-empty-file", "ingest", lambda r: _truncate(annotation(r, "va")), "empty annotation", 1),
    BadInput("va-not-text", "ingest", lambda r: _binary(annotation(r, "va")), "not UTF-8", None),
    BadInput("annotated-without-frames", "ingest",
             _write(f"{ANN}/VA_Estimation_Challenge/Train_Set/ghost.txt", b"valence,arousal\n0,0\n"),
             "annotated but has no frames", None),
    BadInput("duplicate-across-splits", "ingest", _copy_to_val, "also annotated", None),
    BadInput("dotdot-video-name", "ingest",
             _write(f"{ANN}/VA_Estimation_Challenge/Train_Set/..evil.txt", b"valence,arousal\n0,0\n"),
             "invalid video name", None),
    BadInput("test-list-path-name", "ingest", _test_list_line, "invalid video name", None),
]

FRAME_CASES = [
    BadInput("zero-byte-jpg-pack", "pack", _replace_jpg(lambda b: b""), "not a JPEG file"),
    BadInput("png-named-jpg-pack", "pack", _replace_jpg(lambda b: PNG), "not a JPEG file"),
    BadInput("text-named-jpg-pack", "pack", _replace_jpg(lambda b: b"hello"), "not a JPEG file"),
    BadInput("truncated-jpg-extract", "extract", _replace_jpg(lambda b: b[:len(b) // 3]),
             "cannot decode JPEG|truncated"),
    BadInput("zero-byte-jpg-extract", "extract", _replace_jpg(lambda b: b""), "empty JPEG"),
    BadInput("png-named-jpg-extract", "extract", _replace_jpg(lambda b: PNG), "not a JPEG"),
]


def _truncate(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def _binary(path: Path) -> Path:
    path.write_bytes(b"\xff\xfe\x00\x81garbage\x00")
    return path


def _frame_file(name: str, folder: bool = False):
    """Add ``name`` (a file holding a valid jpg, or a folder) to the first video's folder."""
    def make(root: Path) -> Path:
        src = first_jpg(root, 0)
        path = src.parent / name
        if folder:  # replaces a frame's jpg by a folder of that name
            path.unlink(missing_ok=True)
            path.mkdir()
        else:
            path.write_bytes(src.read_bytes())
        return path
    return make


def _move_annotations_deeper(root: Path) -> Path:
    ann = root / "affwild2" / ANN
    deep = root / "affwild2" / "a" / "b" / "c"
    deep.mkdir(parents=True)
    ann.rename(deep / ANN)
    return deep / ANN / TASK_DIRS["va"]


def _rename_split(task: str, new: str):
    def make(root: Path) -> Path:
        split = root / "affwild2" / ANN / TASK_DIRS[task] / "Validation_Set"
        split.rename(split.parent / new)
        return split.parent / new
    return make


def _empty_folder(root: Path) -> Path:
    (root / "empty").mkdir()
    return root / "empty"


# one frame-name rule (%05d.jpg), plausible frame numbers; the tree where and how it is expected
FRAME_NAME_CASES = [
    BadInput("six-digit-frame-name", "ingest", _frame_file("000001.jpg"), "frame rule"),
    BadInput("unpadded-frame-name", "ingest", _frame_file("7.jpg"), "frame rule"),
    BadInput("upper-case-extension", "ingest", _frame_file("00002.JPG"), "frame rule"),
    BadInput("png-frame", "ingest", _frame_file("00003.png"), "frame rule"),
    BadInput("frame-number-zero", "ingest", _frame_file("00000.jpg"), "frame number 0"),
    BadInput("folder-named-like-a-frame", "ingest", _frame_file("00004.jpg", folder=True),
             "a folder, not a file"),
    BadInput("stray-huge-frame-number", "ingest", _frame_file("99999.jpg"),
             "implausible frame number 99999"),
]
TREE_CASES = [
    BadInput("annotations-one-level-too-deep", "ingest", _move_annotations_deeper,
             "more than 3 levels below the root"),
    BadInput("misspelled-split-folder", "ingest", _rename_split("va", "validation_set"),
             "split folder not named.*did you mean Validation_Set"),
    BadInput("missing-split-of-a-task", "ingest",
             lambda r: _rename_split("au", ".hidden")(r).parents[2],  # names the root
             "task au: no labelled videos in split val"),
    BadInput("root-is-the-frames-folder", "ingest", lambda r: r / "affwild2" / "cropped_aligned",
             "looks like a frames folder", root="affwild2/cropped_aligned"),
    BadInput("root-is-an-empty-folder", "ingest", _empty_folder, "not an Aff-Wild2 root",
             root="empty"),
]


# feature rows for the writer: (name, rows(n_present, dim) -> bad rows, message)
FEATURE_CASES: list[tuple[str, Callable[[int, int], np.ndarray], str]] = [
    ("nan", lambda n, d: _with(np.ones((n, d), np.float32), np.nan), "NaN or inf"),
    ("inf", lambda n, d: _with(np.ones((n, d), np.float32), np.inf), "NaN or inf"),
    ("float16-overflow", lambda n, d: _with(np.ones((n, d), np.float32), 1e6), "overflow"),
    ("wrong-width", lambda n, d: np.ones((n, d + 1), np.float32), "shape"),
    ("wrong-rows", lambda n, d: np.ones((n + 1, d), np.float32), "feature rows"),
    ("not-2d", lambda n, d: np.ones((n,), np.float32), "shape"),
]


def _with(rows: np.ndarray, value: float) -> np.ndarray:
    rows[len(rows) // 2, 1] = value
    return rows


def huge_header(jpg: bytes, width: int = 20000, height: int = 20000) -> bytes:
    """``jpg`` with its frame header (SOF0/SOF2) claiming ``width`` x ``height`` pixels."""
    data = bytearray(jpg)
    for marker in (b"\xff\xc0", b"\xff\xc2"):
        i = data.find(marker)
        if i > 0:
            data[i + 5:i + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
            return bytes(data)
    raise ValueError("no SOF marker")


def _long_line(root: Path) -> Path:
    path = annotation(root, "va")
    path.write_text(VA_HEADER + "\n0.1," + "9" * 2_000_000 + "\n")
    return path


def _too_many_lines(root: Path) -> Path:
    path = annotation(root, "expr")
    path.write_text(path.read_text().splitlines()[0] + "\n" + "0\n" * 100_000)
    return path


BOUND_CASES = [
    BadInput("annotation-line-of-2-mb", "ingest", _long_line, "line longer than 4096", 2),
    BadInput("annotation-of-100000-lines", "ingest", _too_many_lines, "more than 100000 lines",
             100_001),
]
FRAME_CASES += [
    BadInput("jpeg-header-claims-20000x20000", "extract", _replace_jpg(huge_header),
             "claims 20000 x 20000 pixels"),  # the header is read before any decoder runs
    BadInput("jpeg-header-claims-5000x5000", "extract",
             _replace_jpg(lambda b: huge_header(b, 5000, 5000)), "claims 5000 x 5000 pixels"),
]
