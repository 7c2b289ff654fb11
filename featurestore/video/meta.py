"""Per-video face records: what the face step kept for every frame, beside the crops.

``<out>/faces/<video>.npz`` holds, for every decoded frame of the source video (frame k is jpg
number k + 1): ``present`` (bool), ``score`` (float32, NaN without a face), ``box`` (4, float32
x1 y1 x2 y2 in source pixels), ``landmarks`` (5 x 2 float32, source pixels), ``keyframe`` (bool:
the detector ran on this frame; other frames were tracked), and scalars ``fps``, ``width``,
``height``, ``source`` (the video file), ``detector``. The file is written last, atomically: a
video whose record exists is finished.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from featurestore.errors import DataFormatError

__all__ = ["FaceRecord", "FACES_DIR", "record_path", "save_record", "load_record"]

FACES_DIR = "faces"


@dataclass(frozen=True)
class FaceRecord:
    present: np.ndarray     # (n,) bool
    score: np.ndarray       # (n,) float32
    box: np.ndarray         # (n, 4) float32
    landmarks: np.ndarray   # (n, 5, 2) float32
    keyframe: np.ndarray    # (n,) bool
    fps: float
    width: int
    height: int
    source: str
    detector: str

    @property
    def num_frames(self) -> int:
        return int(len(self.present))

    @classmethod
    def empty(cls, n: int, **scalars) -> FaceRecord:
        return cls(np.zeros(n, bool), np.full(n, np.nan, np.float32),
                   np.full((n, 4), np.nan, np.float32), np.full((n, 5, 2), np.nan, np.float32),
                   np.zeros(n, bool), **scalars)


def record_path(out: str | os.PathLike, video: str) -> Path:
    return Path(out) / FACES_DIR / f"{video}.npz"


def save_record(path: str | os.PathLike, rec: FaceRecord) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, present=rec.present, score=rec.score, box=rec.box,
                     landmarks=rec.landmarks, keyframe=rec.keyframe, fps=np.float64(rec.fps),
                     width=np.int64(rec.width), height=np.int64(rec.height),
                     source=np.str_(rec.source), detector=np.str_(rec.detector))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def load_record(path: str | os.PathLike) -> FaceRecord:
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            return FaceRecord(z["present"].astype(bool), z["score"].astype(np.float32),
                              z["box"].astype(np.float32), z["landmarks"].astype(np.float32),
                              z["keyframe"].astype(bool), float(z["fps"]), int(z["width"]),
                              int(z["height"]), str(z["source"]), str(z["detector"]))
    except (OSError, KeyError, ValueError) as err:
        raise DataFormatError(path, None, f"not a face record: {err}") from None
