"""A pixel limit checked on the image header, before any pixel is decoded.

A JPEG header is a few bytes: one that claims 20000 x 20000 pixels would decode into 1.2 GB.
:func:`open_image` opens an image lazily (PIL reads the header only), refuses more than
:data:`MAX_PIXELS` pixels (or a zero size) with a :class:`DataFormatError` naming the file, and only
then decodes it. Face crops are 112 px and face-set images rarely exceed a few megapixels.
"""

from __future__ import annotations

import io
import os
import warnings

import numpy as np
from PIL import Image

from featurestore.errors import DataFormatError

__all__ = ["MAX_PIXELS", "check_jpeg_pixels", "decode_rgb", "jpeg_size"]

MAX_PIXELS = 4096 * 4096


def decode_rgb(source: bytes | str | os.PathLike, where: str | os.PathLike | None,
               what: str = "image", failure: str | None = None) -> np.ndarray:
    """Decode ``source`` (bytes or a file path) to (H, W, 3) uint8 RGB, header checked first;
    an undecodable one raises DataFormatError ``"<failure>: <reason>"`` naming ``where``."""
    fp = io.BytesIO(source) if isinstance(source, bytes | bytearray | memoryview) else source
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(fp) as img:
                w, h = img.size
                if w * h > MAX_PIXELS or w <= 0 or h <= 0:
                    raise DataFormatError(where, None, f"{what} header claims {w} x {h} pixels; "
                                          f"the limit is {MAX_PIXELS} pixels (not decoded)")
                img.load()  # truncated data fails here, not lazily later
                return np.asarray(img.convert("RGB"), dtype=np.uint8)  # (H, W, 3)
    except DataFormatError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise DataFormatError(where, None, f"{what} too large to decode: {err}") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise DataFormatError(where, None, f"{failure or f'cannot decode {what}'}: {err}") from None


_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # start-of-frame markers (not DHT/JPG/DAC)


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(height, width) from a JPEG's start-of-frame header without decoding, or None if no
    frame header is found in the marker segments (the caller then lets a full decoder decide)."""
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _SOF:
            if i + 9 > n:
                return None
            return (data[i + 5] << 8) | data[i + 6], (data[i + 7] << 8) | data[i + 8]
        if marker == 0xDA:  # start of scan before any frame header
            return None
        i += 2 + ((data[i + 2] << 8) | data[i + 3])
    return None


def check_jpeg_pixels(data: bytes, where: str | os.PathLike | None) -> None:
    """DataFormatError naming ``where`` if the JPEG header claims more than MAX_PIXELS pixels."""
    size = jpeg_size(data)
    if size is not None and size[0] * size[1] > MAX_PIXELS:
        raise DataFormatError(where, None, f"JPEG header claims {size[1]} x {size[0]} pixels; "
                              f"the limit is {MAX_PIXELS} pixels (not decoded)")
