"""JPEG bytes: the magic-number check and decoding to RGB arrays with errors that name the frame."""

from __future__ import annotations

import numpy as np

from featurestore.errors import DataFormatError
from featurestore.imagelimits import decode_rgb

JPEG_MAGIC = b"\xff\xd8\xff"


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
    return decode_rgb(bytes(data), where or None, "JPEG")  # header checked against MAX_PIXELS
