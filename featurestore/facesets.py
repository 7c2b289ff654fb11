"""Readers for the static face sets used to pretrain the MAE: FER2013, FER+, RAF-DB, AffectNet and
plain image folders (layouts in shared/AFFWILD2.md).

Every reader returns a random-access :class:`FaceSet` of :class:`FaceImage` (``image`` (H, W, 3)
uint8 RGB, the set's own ``label``, and ``expr`` mapped to the Aff-Wild2 EXPR_CLASSES order).
CSV files are parsed once at construction; image files are decoded lazily on access.

Label mapping to Aff-Wild2 (Neutral, Anger, Disgust, Fear, Happiness, Sadness, Surprise, Other):
Contempt maps to Other (7): Aff-Wild2's Other is "an affective state outside the six basic
expressions and neutral", which contempt is. None / Uncertain / No-Face / unknown / NF map to -1.
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

try:
    import simplejpeg as _simplejpeg
except ImportError:  # optional speed-up; PIL decodes everything
    _simplejpeg = None

from featurestore.errors import DataFormatError
from featurestore.imagelimits import check_jpeg_pixels, decode_rgb

log = logging.getLogger(__name__)

FER2013_CLASSES = ("Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral")
FER2013_TO_EXPR = (1, 2, 3, 4, 5, 6, 0)
FERPLUS_CLASSES = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear",
                   "contempt", "unknown", "NF")
FERPLUS_TO_EXPR = (0, 4, 6, 5, 1, 2, 3, 7)  # unknown / NF never become a label
RAFDB_CLASSES = ("Surprise", "Fear", "Disgust", "Happiness", "Sadness", "Anger", "Neutral")  # 1..7
RAFDB_TO_EXPR = (6, 3, 2, 4, 5, 1, 0)
AFFECTNET_CLASSES = ("Neutral", "Happy", "Sad", "Surprise", "Fear", "Disgust", "Anger", "Contempt",
                     "None", "Uncertain", "No-Face")
AFFECTNET_TO_EXPR = (0, 4, 5, 6, 3, 2, 1, 7, -1, -1, -1)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
FER_SIDE = 48


@dataclass(frozen=True, eq=False)
class FaceImage:
    """One face: ``image`` (H, W, 3) uint8 RGB, the set's ``label`` and the Aff-Wild2 ``expr``."""

    image: np.ndarray
    label: int
    expr: int


@runtime_checkable
class FaceSet(Protocol):
    """Random access to the faces of one set (so a torch Dataset can wrap it)."""

    name: str

    def __len__(self) -> int: ...

    def __getitem__(self, i: int) -> FaceImage: ...


def _map(label: int, table: Sequence[int]) -> int:
    return table[label] if 0 <= label < len(table) else -1


def load_image(path: Path) -> np.ndarray:
    """Decode an image file to (H, W, 3) uint8 RGB; DataFormatError naming the file if unreadable."""
    if _simplejpeg is not None and Path(path).suffix.lower() in (".jpg", ".jpeg"):
        try:  # ~2x faster than PIL, same pixels (BENCHMARKS.md, JPEG decoders); PIL on refusal
            data = Path(path).read_bytes()
            check_jpeg_pixels(data, path)
            return _simplejpeg.decode_jpeg(data, colorspace="RGB")
        except (OSError, ValueError):
            pass
    return decode_rgb(path, path, failure="cannot read image")  # header checked against MAX_PIXELS before decoding


class ArrayFaceSet:
    """Faces held in memory: ``images`` (N, H, W) grey or (N, H, W, 3) RGB uint8."""

    def __init__(self, name: str, images: np.ndarray, labels: np.ndarray, expr: np.ndarray):
        if not len(images) == len(labels) == len(expr):
            raise ValueError(f"{name}: {len(images)} images, {len(labels)} labels, {len(expr)} expr")
        self.name, self.images, self.labels, self.expr = name, images, labels, expr

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> FaceImage:
        img = self.images[i]
        if img.ndim == 2:
            img = np.repeat(img[:, :, None], 3, axis=2)  # (H, W) grey -> (H, W, 3)
        return FaceImage(image=img, label=int(self.labels[i]), expr=int(self.expr[i]))

    def __repr__(self) -> str:
        return f"ArrayFaceSet({self.name!r}, {len(self)} faces)"


class FileFaceSet:
    """Faces stored as image files, decoded on access."""

    def __init__(self, name: str, paths: Sequence[Path], labels: Sequence[int], expr: Sequence[int]):
        if not len(paths) == len(labels) == len(expr):
            raise ValueError(f"{name}: {len(paths)} paths, {len(labels)} labels, {len(expr)} expr")
        self.name, self.paths = name, list(paths)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.expr = np.asarray(expr, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> FaceImage:
        return FaceImage(image=load_image(self.paths[i]), label=int(self.labels[i]), expr=int(self.expr[i]))

    def __repr__(self) -> str:
        return f"FileFaceSet({self.name!r}, {len(self)} faces)"


# ---------------------------------------------------------------- CSV helpers


def _csv_rows(path: Path, required: Sequence[str]):
    """Yield (line number, row dict) of a headed CSV after checking the required columns."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = [c.strip() for c in next(reader, [])]
        missing = [c for c in required if c not in header]
        if missing:
            raise DataFormatError(path, 1, f"header lacks column(s) {missing}; got {header}")
        for row in reader:
            if not any(c.strip() for c in row):
                continue
            if len(row) != len(header):
                raise DataFormatError(path, reader.line_num, f"expected {len(header)} columns, got {len(row)}")
            yield reader.line_num, dict(zip(header, row, strict=True))


def _int(path: Path, line: int, column: str, text: str, lo: int, hi: int) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise DataFormatError(path, line, f"{column} {text.strip()!r} is not an integer") from None
    if not lo <= value <= hi:
        raise DataFormatError(path, line, f"{column} {value} out of range {lo}..{hi}")
    return value


def _pixels(path: Path, line: int, text: str) -> np.ndarray:
    try:
        px = np.array(text.split(), dtype=np.int64)
    except ValueError:
        raise DataFormatError(path, line, "pixels are not space-separated integers") from None
    if px.size != FER_SIDE * FER_SIDE:
        raise DataFormatError(path, line, f"expected {FER_SIDE * FER_SIDE} pixels, got {px.size}")
    if px.min() < 0 or px.max() > 255:
        raise DataFormatError(path, line, "pixel values out of range 0..255")
    return px.astype(np.uint8).reshape(FER_SIDE, FER_SIDE)  # (48, 48)


def _parse_fer2013(csv_path: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """images (N, 48, 48) uint8, emotion (N,) int64, usage per row."""
    images, labels, usage = [], [], []
    for line, row in _csv_rows(csv_path, ("emotion", "pixels")):
        labels.append(_int(csv_path, line, "emotion", row["emotion"], 0, len(FER2013_CLASSES) - 1))
        images.append(_pixels(csv_path, line, row["pixels"]))
        usage.append(row.get("Usage", "").strip())
    arr = np.stack(images) if images else np.zeros((0, FER_SIDE, FER_SIDE), np.uint8)
    return arr, np.asarray(labels, dtype=np.int64), usage


# ---------------------------------------------------------------- readers


def read_fer2013(csv_path: str | Path, usage: str | Sequence[str] | None = None) -> FaceSet:
    """FER2013 ``fer2013.csv``; ``usage`` keeps only rows of that Usage (e.g. "Training")."""
    csv_path = Path(csv_path)
    images, labels, usages = _parse_fer2013(csv_path)
    if usage is not None:
        keep = np.array([u in ({usage} if isinstance(usage, str) else set(usage)) for u in usages], bool)
        images, labels = images[keep], labels[keep]
    expr = np.array([_map(int(c), FER2013_TO_EXPR) for c in labels], dtype=np.int64)
    return ArrayFaceSet("fer2013", images, labels, expr)


def _ferplus_label(path: Path, line: int, row: dict) -> int:
    """Majority vote in FER+ order (ties -> the first); -1 if no votes or unknown / NF wins."""
    if not row["Image name"].strip():
        return -1  # FER+ drops this image (not a face)
    votes = [_int(path, line, c, row[c], 0, 1000) for c in FERPLUS_CLASSES]
    if not any(votes):
        return -1
    best = int(np.argmax(votes))
    return best if best < FERPLUS_CLASSES.index("unknown") else -1


def read_ferplus(fer2013_csv: str | Path, ferplus_csv: str | Path) -> FaceSet:
    """FER2013 images relabelled by ``fer2013new.csv`` (aligned row by row); labels in FER+ order."""
    fer2013_csv, ferplus_csv = Path(fer2013_csv), Path(ferplus_csv)
    images, _, _ = _parse_fer2013(fer2013_csv)
    labels, last = [], 1
    for line, row in _csv_rows(ferplus_csv, ("Image name", *FERPLUS_CLASSES)):
        labels.append(_ferplus_label(ferplus_csv, line, row))
        last = line
    if len(labels) != len(images):
        raise DataFormatError(ferplus_csv, last, f"has {len(labels)} rows but {fer2013_csv} has {len(images)}")
    expr = np.array([_map(c, FERPLUS_TO_EXPR) for c in labels], dtype=np.int64)
    return ArrayFaceSet("ferplus", images, np.asarray(labels, dtype=np.int64), expr)


def read_rafdb(root: str | Path) -> FaceSet:
    """RAF-DB basic: ``EmoLabel/list_patition_label.txt`` + ``Image/aligned`` (or ``Image/original``)."""
    root = Path(root)
    label_file = root / "EmoLabel" / "list_patition_label.txt"
    paths, labels = [], []
    with open(label_file, encoding="utf-8-sig") as f:
        for line, text in enumerate(f, start=1):
            if not text.strip():
                continue
            parts = text.split()
            if len(parts) != 2:
                raise DataFormatError(label_file, line, f"expected 'name label', got {text.strip()!r}")
            name = parts[0]
            if "/" in name or "\\" in name or name.startswith("."):
                raise DataFormatError(label_file, line, f"invalid image name {name!r}")
            label = _int(label_file, line, "label", parts[1], 1, len(RAFDB_CLASSES))
            aligned = root / "Image" / "aligned" / f"{Path(name).stem}_aligned.jpg"
            original = root / "Image" / "original" / name
            path = aligned if aligned.is_file() else original
            if not path.is_file():
                raise DataFormatError(label_file, line, f"no image {aligned} nor {original}")
            paths.append(path)
            labels.append(label)
    return FileFaceSet("rafdb", paths, labels, [RAFDB_TO_EXPR[c - 1] for c in labels])


def read_affectnet(root: str | Path, csv_name: str = "training.csv") -> FaceSet:
    """AffectNet ``<csv_name>`` with images under ``Manually_Annotated_Images/``."""
    root = Path(root)
    csv_path = root / csv_name
    images = root / "Manually_Annotated_Images"
    paths, labels = [], []
    for line, row in _csv_rows(csv_path, ("subDirectory_filePath", "expression")):
        rel = row["subDirectory_filePath"].strip()
        if not rel or rel.startswith(("/", "\\")) or ".." in Path(rel).parts:
            raise DataFormatError(csv_path, line, f"invalid image path {rel!r}")
        labels.append(_int(csv_path, line, "expression", row["expression"], 0, len(AFFECTNET_CLASSES) - 1))
        paths.append(images / rel)
    return FileFaceSet(f"affectnet-{Path(csv_name).stem}", paths, labels,
                       [AFFECTNET_TO_EXPR[c] for c in labels])


def _image_files(root: Path) -> list[Path]:
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        out.extend(Path(dirpath) / f for f in filenames
                   if f.lower().endswith(IMAGE_SUFFIXES) and not f.startswith("."))
    return sorted(out)


def read_image_folder(root: str | Path) -> FaceSet:
    """Every jpg / jpeg / png under ``root`` (recursively, sorted), label -1."""
    root = Path(root)
    paths = _image_files(root)
    return FileFaceSet(f"images-{root.name}", paths, [-1] * len(paths), [-1] * len(paths))


def discover_facesets(root: str | Path) -> list[FaceSet]:
    """Every known layout under ``root``; a plain image folder when none is found.

    ``fer2013.csv`` with a ``fer2013new.csv`` anywhere under root gives one FER+ set (the same
    images as FER2013, so they are not listed twice); alone it gives a FER2013 set.
    """
    root = Path(root)
    found: dict[str, list[Path]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")
                             and d not in ("Manually_Annotated_Images", "Image"))
        for f in filenames:
            found.setdefault(f, []).append(Path(dirpath))
        if "EmoLabel" in dirnames and (Path(dirpath) / "EmoLabel" / "list_patition_label.txt").is_file():
            found.setdefault("<rafdb>", []).append(Path(dirpath))
    sets: list[FaceSet] = []
    fer, ferplus = sorted(found.get("fer2013.csv", [])), sorted(found.get("fer2013new.csv", []))
    for i, d in enumerate(fer):
        if i < len(ferplus):
            sets.append(read_ferplus(d / "fer2013.csv", ferplus[i] / "fer2013new.csv"))
        else:
            sets.append(read_fer2013(d / "fer2013.csv"))
    sets.extend(read_rafdb(d) for d in sorted(found.get("<rafdb>", [])))
    for csv_name in ("training.csv", "validation.csv"):
        for d in sorted(found.get(csv_name, [])):
            if (d / "Manually_Annotated_Images").is_dir():
                sets.append(read_affectnet(d, csv_name))
    if not sets and _image_files(root):
        sets.append(read_image_folder(root))
    log.info("face sets under %s: %s", root, [f"{s.name} ({len(s)})" for s in sets])
    return sets
