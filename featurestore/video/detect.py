"""The face detector interface, and a detector read from a file through OpenCV.

A detector takes one RGB frame and returns every face it finds as a :class:`Face` (box, score and
five landmarks). The project's default is MTCNN (``encoders.mtcnn``, torch, weights from the
facenet-pytorch wheel); :class:`OpenCVDetector` runs a face detector file a user already has
(YuNet ONNX, as read by ``cv2.FaceDetectorYN``), so this module stays free of torch.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["Face", "FaceDetector", "OpenCVDetector", "LANDMARK_NAMES", "faces_from_arrays"]

log = logging.getLogger(__name__)

# Image left / right as seen in the frame (the subject's right eye is the image's left eye).
LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


@dataclass(frozen=True, eq=False)  # identity equality: faces hold arrays
class Face:
    """One detected face. box: (4,) x1, y1, x2, y2 in pixels; landmarks: (5, 2) x, y in pixels,
    in :data:`LANDMARK_NAMES` order; score in [0, 1]."""

    box: np.ndarray
    score: float
    landmarks: np.ndarray

    def __post_init__(self):
        if np.shape(self.box) != (4,) or np.shape(self.landmarks) != (5, 2):
            raise ValueError(f"Face needs box (4,) and landmarks (5, 2), got "
                             f"{np.shape(self.box)} and {np.shape(self.landmarks)}")

    @property
    def center(self) -> np.ndarray:
        return np.array([(self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2])

    @property
    def size(self) -> float:
        return float(max(self.box[2] - self.box[0], self.box[3] - self.box[1]))


@runtime_checkable
class FaceDetector(Protocol):
    """Anything with ``detect(image) -> list[Face]``; image: (H, W, 3) uint8 RGB."""

    name: str

    def detect(self, image: np.ndarray) -> list[Face]:
        ...


def faces_from_arrays(boxes: np.ndarray, scores: np.ndarray, landmarks: np.ndarray) -> list[Face]:
    """boxes (n, 4), scores (n,), landmarks (n, 5, 2) -> faces, best score first."""
    order = np.argsort(-np.asarray(scores), kind="stable")
    return [Face(np.asarray(boxes[i], np.float32), float(scores[i]),
                 np.asarray(landmarks[i], np.float32)) for i in order]


class OpenCVDetector:
    """A YuNet-style ONNX face detector file run by ``cv2.FaceDetectorYN``.

    Its output rows are ``x, y, w, h``, five landmark pairs (right eye, left eye, nose tip, right
    and left mouth corner, as YuNet names them from the subject's side, which is the image's
    left-eye-first order used here) and a score.
    """

    def __init__(self, path: str | os.PathLike, score_threshold: float = 0.7,
                 nms_threshold: float = 0.3):
        import cv2

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: no detector file here")
        self.name = f"opencv:{self.path.name}"
        try:
            self._net = cv2.FaceDetectorYN.create(str(self.path), "", (320, 320),
                                                  score_threshold, nms_threshold)
        except cv2.error as err:
            raise ValueError(f"{self.path}: OpenCV cannot load this face detector: "
                             f"{str(err).strip().splitlines()[-1]}") from None
        self._size: tuple[int, int] | None = None

    def detect(self, image: np.ndarray) -> list[Face]:
        import cv2

        h, w = image.shape[:2]
        if self._size != (w, h):
            self._net.setInputSize((w, h))
            self._size = (w, h)
        _, rows = self._net.detect(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        if rows is None or len(rows) == 0:
            return []
        rows = np.asarray(rows, np.float32)  # (n, 15)
        boxes = np.stack([rows[:, 0], rows[:, 1], rows[:, 0] + rows[:, 2],
                          rows[:, 1] + rows[:, 3]], axis=1)  # (n, 4)
        return faces_from_arrays(boxes, rows[:, 14], rows[:, 4:14].reshape(-1, 5, 2))
