"""Following one or two subjects through a video.

:class:`SubjectTracker` decides which detected face belongs to which subject: the most prominent
face (size times score) starts a track, later detections join it by overlap with the last box (or
a short centre distance, for fast motion), and a subject is chosen anew only after it has been
missing for ``reacquire_after`` frames. With two subjects the tracks are named by their side of
the frame (``left``, ``right``) when they start.

:func:`flow_track` carries a face from one frame to the next without a detector: Lucas-Kanade
optical flow of a grid of points inside the box, checked forwards and backwards, gives a
similarity transform that moves the box and the five landmarks.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from featurestore.video.detect import Face

__all__ = ["SubjectTracker", "flow_track", "iou", "SIDES"]

SIDES = ("left", "right")
MATCH_IOU = 0.2          # a detection continues a track from this overlap with its last box
MATCH_CENTRE = 0.5       # ... or when its centre is this many face sizes from the last centre
_LK = dict(winSize=(21, 21), maxLevel=3,
           criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03))


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two (4,) x1, y1, x2, y2 boxes."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def _matches(track: Face, face: Face) -> float:
    """How well ``face`` continues ``track`` (0 = not at all)."""
    overlap = iou(track.box, face.box)
    if overlap >= MATCH_IOU:
        return 1.0 + overlap
    dist = float(np.linalg.norm(track.center - face.center))
    return 0.5 if dist <= MATCH_CENTRE * track.size else 0.0


def _prominence(face: Face) -> float:
    return face.size * face.score


@dataclass
class _Track:
    face: Face | None = None
    missing: int = 0


class SubjectTracker:
    """Assign detections to ``subjects`` (1 or 2) persistent tracks."""

    def __init__(self, subjects: int = 1, reacquire_after: int = 30):
        if subjects not in (1, 2):
            raise ValueError(f"subjects must be 1 or 2, got {subjects!r}")
        if reacquire_after < 0:
            raise ValueError(f"reacquire_after must be >= 0, got {reacquire_after!r}")
        self.subjects = subjects
        self.reacquire_after = reacquire_after
        self.tracks = [_Track() for _ in range(subjects)]

    def last(self, k: int) -> Face | None:
        """The last face of subject ``k`` (None while it is missing)."""
        t = self.tracks[k]
        return t.face if t.missing == 0 else None

    def update(self, faces: list[Face]) -> list[Face | None]:
        """One frame's detections -> the face of each subject (None where it has none)."""
        free = list(faces)
        out: list[Face | None] = [None] * self.subjects
        for k, t in enumerate(self.tracks):  # continue the live tracks first
            if t.face is None or t.missing > self.reacquire_after:
                continue
            score = [_matches(t.face, f) for f in free]
            if score and max(score) > 0:
                out[k] = free.pop(int(np.argmax(score)))
        for k in self._unset(out):  # then start or restart tracks from what is left
            pick = self._choose(k, free, out)
            if pick is not None:
                out[k] = pick
                free.remove(pick)
        self.set(out)
        return out

    def set(self, faces: list[Face | None]) -> None:
        """Record each subject's face of this frame (from a detection or from flow tracking)."""
        for t, f in zip(self.tracks, faces, strict=True):
            if f is None:
                t.missing += 1
            else:
                t.face, t.missing = f, 0

    def _unset(self, out: list[Face | None]) -> list[int]:
        return [k for k, t in enumerate(self.tracks)
                if out[k] is None and (t.face is None or t.missing >= self.reacquire_after)]

    def _choose(self, k: int, free: list[Face], out: list[Face | None]) -> Face | None:
        if not free:
            return None
        if self.subjects == 1:
            return max(free, key=_prominence)
        other = out[1 - k] or self.tracks[1 - k].face
        if other is None:  # neither side known yet: the two most prominent, split by position
            best = sorted(free, key=_prominence, reverse=True)[:2]
            if len(best) == 1:
                return None  # wait for a frame that shows both subjects
            best.sort(key=lambda f: f.center[0])
            return best[k]
        side = [f for f in free if (f.center[0] < other.center[0]) == (k == 0)]
        return max(side, key=_prominence) if side else None


def _grid(box: np.ndarray, n: int = 6) -> np.ndarray:
    """(n*n, 1, 2) float32 points over the inner part of the box."""
    x1, y1, x2, y2 = box
    xs = np.linspace(x1 + 0.2 * (x2 - x1), x2 - 0.2 * (x2 - x1), n)
    ys = np.linspace(y1 + 0.15 * (y2 - y1), y2 - 0.15 * (y2 - y1), n)
    return np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 1, 2).astype(np.float32)


def flow_track(prev_gray: np.ndarray, gray: np.ndarray, face: Face,
               max_error: float = 1.0, min_points: int = 10) -> Face | None:
    """Move ``face`` from ``prev_gray`` to ``gray`` ((H, W) uint8); None when the flow is lost."""
    pts = np.concatenate([_grid(face.box), face.landmarks.reshape(-1, 1, 2).astype(np.float32)])
    fwd, ok1, _ = cv2.calcOpticalFlowPyrLK(prev_gray, gray, pts, None, **_LK)
    if fwd is None:
        return None
    back, ok2, _ = cv2.calcOpticalFlowPyrLK(gray, prev_gray, fwd, None, **_LK)
    err = np.linalg.norm((back - pts).reshape(-1, 2), axis=1)  # forward-backward error, pixels
    good = (ok1.ravel() == 1) & (ok2.ravel() == 1) & (err <= max_error)
    if good.sum() < min_points:
        return None
    m, _ = cv2.estimateAffinePartial2D(pts[good], fwd[good], method=cv2.LMEDS)
    if m is None:
        return None
    corners = np.array([[face.box[0], face.box[1]], [face.box[2], face.box[3]]])
    c = corners @ m[:, :2].T + m[:, 2]  # (2, 2), box corners under the similarity
    box = np.array([c[:, 0].min(), c[:, 1].min(), c[:, 0].max(), c[:, 1].max()], np.float32)
    marks = (face.landmarks @ m[:, :2].T + m[:, 2]).astype(np.float32)  # (5, 2)
    h, w = gray.shape
    if box[2] < 0 or box[3] < 0 or box[0] > w or box[1] > h:
        return None  # left the frame
    return Face(box, face.score, marks)
