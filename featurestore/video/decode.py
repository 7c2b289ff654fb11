"""Streaming video decoding (OpenCV's FFmpeg backend): one RGB frame at a time, so memory does not
grow with the length of the video.

Bad input is a :class:`featurestore.errors.DataFormatError` naming the file: a missing file, a file
FFmpeg cannot open (not a video, an MP4 cut before its index), a video with no decodable frame, and
a video that stops decoding well before the frame count its header announces (truncated).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # FFmpeg's own stderr chatter: we report errors
import cv2  # noqa: E402
import numpy as np  # noqa: E402

from featurestore.errors import DataFormatError  # noqa: E402

cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # no warnings on stderr either

__all__ = ["VIDEO_SUFFIXES", "VideoInfo", "probe_video", "iter_frames", "find_videos",
           "DEFAULT_FPS", "TRUNCATED_BELOW"]

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv")
DEFAULT_FPS = 30.0
# Header frame counts are estimates (no_face.mp4 announces 98 and holds 95); decoding fewer than
# this share of them means the file stops early.
TRUNCATED_BELOW = 0.9


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    fps: float          # frames per second (DEFAULT_FPS when the container does not say)
    width: int
    height: int
    frames_hint: int    # the header's frame count (an estimate; 0 when unknown)


def _open(path: Path) -> cv2.VideoCapture:
    if not path.is_file():
        raise DataFormatError(path, None, "no such video file")
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if not cap.isOpened():
        size = path.stat().st_size
        raise DataFormatError(path, None, f"cannot be opened as a video ({size} bytes): not a "
                              "video, an empty file, or a truncated container")
    return cap


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Open the video and read its header (fps, size, announced frame count)."""
    path = Path(path)
    cap = _open(path)
    try:
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        if not math.isfinite(fps) or fps <= 0 or fps > 1000:
            log.warning("%s: no usable frame rate in the header (%r); assuming %.0f fps",
                        path, fps, DEFAULT_FPS)
            fps = DEFAULT_FPS
        hint = cap.get(cv2.CAP_PROP_FRAME_COUNT)
        return VideoInfo(path, fps, int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
                         int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
                         int(hint) if math.isfinite(hint) and hint > 0 else 0)
    finally:
        cap.release()


def iter_frames(path: str | os.PathLike, info: VideoInfo | None = None) -> Iterator[np.ndarray]:
    """Yield every frame as (H, W, 3) uint8 RGB, in order; raises DataFormatError (naming the
    file) for a video without frames or one that ends well before its announced length."""
    path = Path(path)
    info = info or probe_video(path)
    cap = _open(path)
    n = 0
    try:
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            n += 1
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    finally:
        cap.release()
    if n == 0:
        raise DataFormatError(path, None, "the video has no decodable frame")
    if info.frames_hint and n < TRUNCATED_BELOW * info.frames_hint:
        raise DataFormatError(path, None, f"truncated: decoding stopped after {n} of the "
                              f"{info.frames_hint} frames the header announces")


def find_videos(path: str | os.PathLike) -> list[Path]:
    """A video file, or the video files (by suffix) directly inside a folder, sorted by name."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.exists():
        raise DataFormatError(path, None, "no such file or folder")
    try:
        entries = sorted(p for p in path.iterdir()
                         if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
    except OSError as err:
        raise DataFormatError(path, None, f"cannot list the folder: {err.strerror}") from None
    if not entries:
        raise DataFormatError(path, None, f"no video files ({', '.join(VIDEO_SUFFIXES[:4])}, ...) "
                              "in this folder")
    return entries
