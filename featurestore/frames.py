"""Frame sources: random access to the face JPEGs of Aff-Wild2, from the tree or from an LMDB pack.

A :class:`FrameSource` hands out the raw JPEG bytes of ``(video, frame number)``; decoding is a
separate pure function (:func:`decode_jpeg`) so it can run wherever the pixels are needed.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
from PIL import Image

from featurestore.affwild2 import AffWild2, read_affwild2
from featurestore.errors import DataFormatError

log = logging.getLogger(__name__)

JPEG_MAGIC = b"\xff\xd8\xff"


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


def is_jpeg(data: bytes) -> bool:
    """True when ``data`` starts with the JPEG SOI marker followed by a segment marker."""
    return data[:3] == JPEG_MAGIC


def decode_jpeg(data: bytes, *, where: str = "") -> np.ndarray:
    """Decode JPEG bytes to (H, W, 3) uint8 RGB (grey and CMYK are converted).

    Raises :class:`DataFormatError` naming ``where`` for empty, non-JPEG or truncated data.
    """
    if not data:
        raise DataFormatError(where or None, None, "empty JPEG data (0 bytes)")
    if not is_jpeg(data):
        raise DataFormatError(where or None, None, f"not a JPEG (starts with {bytes(data[:4])!r})")
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()  # truncated data fails here, not lazily later
            rgb = img.convert("RGB")
    except (OSError, SyntaxError, ValueError) as err:
        raise DataFormatError(where or None, None, f"cannot decode JPEG: {err}") from None
    return np.asarray(rgb, dtype=np.uint8)  # (H, W, 3)


class AffWild2Frames:
    """A :class:`FrameSource` over the ``cropped_aligned*`` folders of an Aff-Wild2 tree."""

    def __init__(self, root_or_ds: str | Path | AffWild2):
        self.ds = root_or_ds if isinstance(root_or_ds, AffWild2) else read_affwild2(root_or_ds)

    def __repr__(self) -> str:
        return f"AffWild2Frames({str(self.ds.root)!r})"

    def videos(self) -> list[str]:
        return list(self.ds.videos)

    def frame_numbers(self, video: str) -> np.ndarray:
        return self.ds.videos[video].frame_numbers

    def read_bytes(self, video: str, number: int) -> bytes:
        return self.ds.videos[video].frame_path(number).read_bytes()

    def frame_path(self, video: str, number: int) -> Path:
        """Where the jpg of ``(video, number)`` lives (for error messages and packing)."""
        return self.ds.videos[video].frame_path(number)


def open_frames(path: str | Path) -> FrameSource:
    """An LMDB frame pack when ``path`` holds ``data.mdb``, else an Aff-Wild2 tree."""
    path = Path(path)
    if (path / "data.mdb").is_file():
        from featurestore.pack import LmdbFrames

        return LmdbFrames(path)
    return AffWild2Frames(path)
