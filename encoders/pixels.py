"""The raw-pixel baseline: a frame's face crop box-downsampled to a few pixels, as features.

An encoder worth its cost must beat this on the tasks (the demo's encoders do not, on the
synthetic data: README, "What the readout keeps"). It stands where a checkpoint folder would,
as the spec ``pixels:SIDE`` (RGB, SIDE*SIDE*3 values) or ``pixels:SIDEg`` (grey, SIDE*SIDE):
``python jobs/extract.py --checkpoint pixels:16 --set pix16 ...`` writes it like any encoder's
features, with its provenance. No model and no torch: PIL and numpy.
"""

from __future__ import annotations

import datetime as _dt
import re
from typing import Any

import numpy as np
from PIL import Image

from featurestore.jpeg import decode_jpeg
from featurestore.provenance import code_version

PREFIX = "pixels:"
MAX_SIDE = 64  # 64 x 64 RGB = 12,288 values per frame: beyond that, store the frames instead
_SPEC = re.compile(r"(\d+)(g?)")


def is_pixel_spec(spec: object) -> bool:
    """Whether ``spec`` (an ``--checkpoint`` value) names the pixel baseline."""
    return isinstance(spec, str) and spec.startswith(PREFIX)


def parse_pixel_spec(spec: str) -> tuple[int, str]:
    """``"pixels:16"`` -> (16, "RGB"); ``"pixels:8g"`` -> (8, "L"). ValueError naming the spec."""
    match = _SPEC.fullmatch(spec[len(PREFIX):]) if is_pixel_spec(spec) else None
    side = int(match.group(1)) if match else 0
    if not match or not 1 <= side <= MAX_SIDE:
        raise ValueError(f"pixel baseline {spec!r}: expected pixels:SIDE (RGB) or pixels:SIDEg "
                         f"(grey) with 1 <= SIDE <= {MAX_SIDE}, e.g. pixels:16")
    return side, ("L" if match.group(2) else "RGB")


def pixel_dim(side: int, mode: str = "RGB") -> int:
    """Feature width of ``side`` x ``side`` pixels in PIL ``mode`` ("RGB" or grey "L")."""
    return side * side * (3 if mode == "RGB" else 1)


def downsample(images: np.ndarray, side: int, mode: str = "RGB") -> np.ndarray:
    """uint8 (N, H, W, 3) -> (N, side*side*channels) float32 in [-0.5, 0.5]: each image box-
    averaged to side x side (in ``mode``: "RGB" or grey "L"), row-major, channels last."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be uint8 (N, H, W, 3), got {images.dtype} {images.shape}")
    if not len(images):
        return np.zeros((0, pixel_dim(side, mode)), np.float32)
    small = [np.asarray(Image.fromarray(img).convert(mode).resize(
        (side, side), Image.Resampling.BOX), np.float32).reshape(-1) for img in images]
    return np.stack(small) / 255.0 - 0.5


def pixel_provenance(spec: str) -> dict[str, Any]:
    """What a feature set of the pixel baseline records (``dim`` is the feature width)."""
    side, mode = parse_pixel_spec(spec)
    return {
        "checkpoint": spec,
        "preset": "pixels" if mode == "RGB" else "pixels-grey",
        "input_size": side,
        "normalization": {"pixels": f"{'RGB' if mode == 'RGB' else 'grey (PIL L)'} box-averaged "
                                    f"to {side}x{side}, then x / 255 - 0.5"},
        "stage": "none (raw pixels)",
        "dim": pixel_dim(side, mode),
        "pooling": "none: pixels row-major, channels last",
        "code_version": code_version(),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }


class PixelEncoder:
    """The pixel baseline with :class:`encoders.encode.FrameEncoder`'s interface (``dim``,
    ``provenance``, ``encode_images``, ``encode_video``, ``warm_up``)."""

    def __init__(self, spec: str):
        self.side, self.mode = parse_pixel_spec(spec)
        self._provenance = pixel_provenance(spec)

    @property
    def dim(self) -> int:
        return int(self._provenance["dim"])

    @property
    def provenance(self) -> dict[str, Any]:
        return dict(self._provenance)

    def warm_up(self) -> None:
        """Nothing to load or compile."""

    def encode_images(self, images: np.ndarray) -> np.ndarray:
        """images: uint8 (N, H, W, 3) -> (N, dim) float32."""
        return downsample(images, self.side, self.mode)

    def encode_video(self, frames, video: str) -> np.ndarray:
        """(n_present, dim) float32 for every jpg of ``video`` in ``frames`` (a FrameSource)."""
        numbers = np.asarray(frames.frame_numbers(video))
        out = np.empty((len(numbers), self.dim), np.float32)  # (n, dim)
        for row, n in enumerate(numbers):
            img = decode_jpeg(frames.read_bytes(video, int(n)), where=f"{video}/{int(n):05d}.jpg")
            out[row] = downsample(img[None], self.side, self.mode)[0]
        return out
