"""Frame sources: random access to the face JPEGs of Aff-Wild2, from the tree or from an LMDB pack.

A :class:`FrameSource` hands out the raw JPEG bytes of ``(video, frame number)``; decoding is a
separate pure function (:func:`decode_jpeg`) so it can run wherever the pixels are needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from featurestore.jpeg import JPEG_MAGIC, decode_jpeg, is_jpeg
from featurestore.pack import LmdbFrames
from featurestore.treeframes import AffWild2Frames

__all__ = ["FrameSource", "AffWild2Frames", "LmdbFrames", "open_frames", "decode_jpeg", "is_jpeg",
           "JPEG_MAGIC"]


@runtime_checkable
class FrameSource(Protocol):
    """Random access to the JPEG bytes of every face frame."""

    def videos(self) -> list[str]:
        """Every video name, sorted (frameless test videos included, with no numbers)."""
        ...

    def frame_numbers(self, video: str) -> np.ndarray:
        """(k,) int64 sorted 1-based numbers of the frames that have a jpg."""
        ...

    def read_bytes(self, video: str, number: int) -> bytes:
        """The JPEG file's bytes; KeyError when that frame has no jpg."""
        ...


def open_frames(path: str | Path) -> FrameSource:
    """An LMDB frame pack when ``path`` holds ``data.mdb``, else an Aff-Wild2 tree."""
    path = Path(path)
    if (path / "data.mdb").is_file():
        return LmdbFrames(path)
    return AffWild2Frames(path)
