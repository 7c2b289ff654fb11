"""Video in, aligned face crops out, in the real Aff-Wild2 layout.

For each video: decode frame by frame, detect faces (every ``detect_every``-th frame; optical-flow
tracking in between), keep one subject (or two, ``<video>_left`` / ``<video>_right``) tracked over
time, align each face to 112x112 with a five-point similarity transform and write
``<out>/cropped_aligned/<video>/%05d.jpg`` (1-based frame numbers, no file where no face was
found) plus the per-frame record ``<out>/faces/<video>.npz`` (:mod:`featurestore.video.meta`).

A video is atomic: its crops are written into a hidden folder under ``<out>/.partial`` and renamed
into place, then its record is written last; a rerun skips videos whose records exist and redoes
any other. Bad videos are reported by name and the others of the batch are still done.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from featurestore.abaw import check_video_name
from featurestore.errors import DataFormatError, FeatureStoreError
from featurestore.video.align import align_face
from featurestore.video.decode import find_videos, iter_frames, probe_video
from featurestore.video.detect import Face, FaceDetector
from featurestore.video.meta import FaceRecord, record_path, save_record
from featurestore.video.track import SIDES, SubjectTracker, flow_track

__all__ = ["FacesConfig", "VideoResult", "subject_names", "extract_video", "extract_faces",
           "FRAMES_DIR", "PARTIAL_DIR"]

log = logging.getLogger(__name__)

FRAMES_DIR = "cropped_aligned"
PARTIAL_DIR = ".partial"


@dataclass(frozen=True)
class FacesConfig:
    """subjects: 1, or 2 (``_left`` / ``_right``); detect_every: run the detector on every k-th
    frame and track in between; min_score: detections below are ignored; reacquire_s: seconds a
    subject may be missing before another face may take its place; size: crop side in pixels."""

    subjects: int = 1
    detect_every: int = 1
    min_score: float = 0.9
    reacquire_s: float = 1.0
    size: int = 112
    jpeg_quality: int = 95

    def __post_init__(self):
        if self.subjects not in (1, 2):
            raise ValueError(f"subjects must be 1 or 2, got {self.subjects!r}")
        if self.detect_every < 1:
            raise ValueError(f"detect_every must be >= 1, got {self.detect_every!r}")
        if not 0.0 <= self.min_score <= 1.0:
            raise ValueError(f"min_score must be in [0, 1], got {self.min_score!r}")
        if self.reacquire_s < 0:
            raise ValueError(f"reacquire_s must be >= 0, got {self.reacquire_s!r}")
        if not 16 <= self.size <= 1024:
            raise ValueError(f"size must be in [16, 1024], got {self.size!r}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in [1, 100], got {self.jpeg_quality!r}")


@dataclass(frozen=True)
class VideoResult:
    path: Path
    names: tuple[str, ...]
    frames: int = 0
    faces: dict[str, int] = field(default_factory=dict)   # subject name -> frames with a crop
    skipped: bool = False
    seconds: float = 0.0


def subject_names(video: str, subjects: int) -> tuple[str, ...]:
    check_video_name(video)
    return (video,) if subjects == 1 else tuple(f"{video}_{s}" for s in SIDES)


def _write_jpeg(path: Path, rgb: np.ndarray, quality: int) -> None:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise OSError(f"{path}: JPEG encoding failed")
    path.write_bytes(buf.tobytes())


class _Subject:
    """The per-frame arrays and the crop folder of one subject while its video is processed."""

    def __init__(self, name: str, partial: Path):
        self.name, self.dir = name, partial / name
        self.dir.mkdir(parents=True)
        self.score: list[float] = []
        self.box: list[np.ndarray] = []
        self.marks: list[np.ndarray] = []
        self.key: list[bool] = []

    def add(self, face: Face | None, keyframe: bool) -> None:
        self.score.append(np.nan if face is None else face.score)
        self.box.append(np.full(4, np.nan, np.float32) if face is None else face.box)
        self.marks.append(np.full((5, 2), np.nan, np.float32) if face is None else face.landmarks)
        self.key.append(keyframe)

    def record(self, info, detector: str) -> FaceRecord:
        score = np.asarray(self.score, np.float32)
        n = len(score)
        return FaceRecord(~np.isnan(score), score, np.asarray(self.box, np.float32).reshape(n, 4),
                          np.asarray(self.marks, np.float32).reshape(n, 5, 2),
                          np.asarray(self.key, bool), info.fps, info.width, info.height,
                          str(info.path), detector)


def _frame_faces(detector: FaceDetector, tracker: SubjectTracker, frame: np.ndarray,
                 gray: np.ndarray, prev_gray: np.ndarray | None, keyframe: bool,
                 min_score: float) -> tuple[list[Face | None], bool]:
    """Each subject's face in this frame, by detection (keyframe) or by flow from the last frame.
    Returns the faces and whether the detector ran."""
    if keyframe or prev_gray is None:
        faces = [f for f in detector.detect(frame) if f.score >= min_score]
        return tracker.update(faces), True
    out = []
    for k in range(tracker.subjects):
        last = tracker.last(k)
        out.append(None if last is None else flow_track(prev_gray, gray, last))
    tracker.set(out)
    return out, False


def _done(out: Path, names: tuple[str, ...]) -> bool:
    return all(record_path(out, n).is_file() for n in names)


def extract_video(path: str | os.PathLike, out: str | os.PathLike, detector: FaceDetector,
                  cfg: FacesConfig = FacesConfig(), *, name: str | None = None,
                  progress: bool = True) -> VideoResult:
    """Crops and records of one video (see the module docstring). Skips a finished video."""
    path, out = Path(path), Path(out)
    names = subject_names(name or path.stem, cfg.subjects)
    if _done(out, names):
        return VideoResult(path, names, skipped=True)
    t0 = time.perf_counter()
    info = probe_video(path)
    (out / PARTIAL_DIR).mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(dir=out / PARTIAL_DIR, prefix=f"{names[0]}."))
    try:
        subjects = [_Subject(n, partial) for n in names]
        tracker = SubjectTracker(cfg.subjects, reacquire_after=max(1, round(cfg.reacquire_s * info.fps)))
        prev_gray = None
        bar = tqdm(total=info.frames_hint or None, desc=names[0][:30], unit="frame",
                   disable=not progress, leave=False)
        with bar:
            for i, frame in enumerate(iter_frames(path, info)):
                gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
                faces, key = _frame_faces(detector, tracker, frame, gray, prev_gray,
                                          i % cfg.detect_every == 0, cfg.min_score)
                for subj, face in zip(subjects, faces, strict=True):
                    subj.add(face, key)
                    if face is not None:
                        crop, _ = align_face(frame, face.landmarks, cfg.size)
                        _write_jpeg(subj.dir / f"{i + 1:05d}.jpg", crop, cfg.jpeg_quality)
                prev_gray = gray
                bar.update(1)
        records = [s.record(info, getattr(detector, "name", type(detector).__name__))
                   for s in subjects]
        counts = _commit(out, subjects, records)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    n = records[0].num_frames
    dt = time.perf_counter() - t0
    log.info("%s: %d frames, faces %s, %.1f frames/s", path, n, counts, n / max(dt, 1e-9))
    return VideoResult(path, names, n, counts, False, dt)


def _commit(out: Path, subjects: list[_Subject], records: list[FaceRecord]) -> dict[str, int]:
    """Move each subject's crops into place (replacing leftovers of an interrupted run), then
    write the records, last."""
    counts = {}
    for subj, rec in zip(subjects, records, strict=True):
        final = out / FRAMES_DIR / subj.name
        if final.exists():
            shutil.rmtree(final)
        counts[subj.name] = int(rec.present.sum())
        if counts[subj.name]:
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(subj.dir, final)
        else:
            log.warning("%s: no face found in any of its %d frames: no crops written",
                        rec.source, rec.num_frames)
    for subj, rec in zip(subjects, records, strict=True):
        save_record(record_path(out, subj.name), rec)
    return counts


def extract_faces(inputs: str | os.PathLike | list, out: str | os.PathLike, detector: FaceDetector,
                  cfg: FacesConfig = FacesConfig(), *, progress: bool = True
                  ) -> tuple[list[VideoResult], dict[str, str]]:
    """Every video of ``inputs`` (a video, a folder of videos, or a list of paths) -> crops.

    Returns the results and ``{video path: error message}`` of the videos that failed; a failed
    video leaves nothing behind, and the others are still processed.
    """
    paths = ([Path(p) for p in inputs] if isinstance(inputs, list | tuple)
             else find_videos(inputs))
    stems = [p.stem for p in paths]
    dup = sorted({s for s in stems if stems.count(s) > 1})
    if dup:
        raise DataFormatError(Path(inputs) if not isinstance(inputs, list | tuple) else None,
                              None, f"several videos share the name(s) {dup[:5]}")
    results, failed = [], {}
    for p in tqdm(paths, desc="videos", unit="video", disable=not progress or len(paths) < 2):
        try:
            results.append(extract_video(p, out, detector, cfg, progress=progress))
        except (FeatureStoreError, ValueError, OSError) as err:
            log.info("failed: %s", err)  # returned to the caller, who reports it
            failed[str(p)] = str(err)
    return results, failed
