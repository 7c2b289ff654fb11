"""JPEG decoders for face crops: the fastest one installed, PIL as the fallback.

Every decoder turns a list of JPEG blobs into a list of (H, W, 3) uint8 RGB arrays and raises
:class:`featurestore.errors.DataFormatError` naming the frame for empty, non-JPEG or truncated
data. Measured side by side on the same 112x112 crops (``bench/bench_decode.py``, BENCHMARKS.md):

- ``simplejpeg`` (libjpeg-turbo bundled in its wheel; the fastest here, ~2x PIL, the default),
- ``torchvision`` (``torchvision.io.decode_jpeg`` on a list, the same call decodes on CUDA),
- ``turbojpeg`` (PyTurboJPEG 1.x over the system's ``libturbojpeg``; optional, not a dependency),
- ``pil`` (Pillow; always there, and the per-image fallback of the others: a blob a fast decoder
  rejects, e.g. a CMYK JPEG, is decoded by PIL, so every decoder accepts what PIL accepts).

Pixel tolerance: all four run libjpeg(-turbo)'s accurate integer DCT with fancy upsampling; on
the synthetic crops they give identical pixels (max |difference| 0, checked by
``tests/test_jpeg.py``); ``TOLERANCE`` keeps a documented bound of 2 grey levels for other
libjpeg builds. ``reduce=True`` (off by default) lets a decoder scale by 1/2, 1/4 or 1/8 in the
DCT domain (simplejpeg also M/8) when the target size is smaller than the crop: faster, but the pixels differ from a
full decode + antialiased resize by more than this tolerance, so features would change.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from functools import cache

import numpy as np

from featurestore.errors import DataFormatError
from featurestore.frames import decode_jpeg as pil_decode
from featurestore.frames import is_jpeg
from featurestore.imagelimits import check_jpeg_pixels

log = logging.getLogger(__name__)

ORDER = ("simplejpeg", "torchvision", "turbojpeg", "pil")  # fastest first here (BENCHMARKS.md)
TOLERANCE = 2  # max |pixel difference| to PIL allowed for any decoder at full scale (uint8 levels)


def _check(data: bytes, where: str) -> None:
    if not data:
        raise DataFormatError(where or None, None, "empty JPEG data (0 bytes)")
    if not is_jpeg(data):
        raise DataFormatError(where or None, None, f"not a JPEG (starts with {bytes(data[:4])!r})")
    check_jpeg_pixels(data, where or None)  # a header claiming gigapixels is never decoded


def _reduce_factor(shape: tuple[int, int], size: int | None) -> int:
    """Largest DCT scale-down k in (1, 2, 4, 8) with min(H, W) / k >= size."""
    if not size:
        return 1
    k = 1
    while k < 8 and min(shape) // (2 * k) >= size:
        k *= 2
    return k


class PilDecoder:
    """Pillow; with ``reduce`` it uses ``Image.draft`` (DCT-domain scaling)."""

    name = "pil"

    def __init__(self, reduce: bool = False):
        self.reduce = reduce

    def decode_one(self, data: bytes, where: str = "", size: int | None = None) -> np.ndarray:
        if not (self.reduce and size):
            return pil_decode(data, where=where)
        import io

        from PIL import Image

        _check(data, where)
        try:
            with Image.open(io.BytesIO(data)) as img:
                k = _reduce_factor(img.size[::-1], size)
                if k > 1:
                    img.draft("RGB", (img.size[0] // k, img.size[1] // k))
                img.load()
                return np.asarray(img.convert("RGB"), dtype=np.uint8)  # (H, W, 3)
        except (OSError, SyntaxError, ValueError) as err:
            raise DataFormatError(where or None, None, f"cannot decode JPEG: {err}") from None

    def decode(self, blobs: Sequence[bytes], wheres: Sequence[str],
               size: int | None = None) -> list[np.ndarray]:  # fmt: skip
        return [self.decode_one(b, w, size) for b, w in zip(blobs, wheres, strict=True)]


class _FastDecoder:
    """Shared part of the libjpeg-turbo decoders: checks, PIL fallback per blob."""

    name = "?"

    def __init__(self, reduce: bool = False):
        self.reduce = reduce
        self.fallback = PilDecoder(reduce)

    def _fast(self, data: bytes, size: int | None) -> np.ndarray:
        raise NotImplementedError

    def decode_one(self, data: bytes, where: str = "", size: int | None = None) -> np.ndarray:
        _check(data, where)
        try:
            img = self._fast(data, size if self.reduce else None)
        except Exception as err:  # noqa: BLE001  (any refusal: let PIL decide and name the frame)
            log.debug("%s: %s refused (%s); decoding with PIL", where, self.name, err)
            return self.fallback.decode_one(data, where, size)
        if img.ndim != 3 or img.shape[2] != 3:
            return self.fallback.decode_one(data, where, size)
        return img

    def decode(self, blobs: Sequence[bytes], wheres: Sequence[str],
               size: int | None = None) -> list[np.ndarray]:  # fmt: skip
        return [self.decode_one(b, w, size) for b, w in zip(blobs, wheres, strict=True)]


class SimpleJpegDecoder(_FastDecoder):
    name = "simplejpeg"

    def __init__(self, reduce: bool = False):
        import simplejpeg

        super().__init__(reduce)
        self._decode = simplejpeg.decode_jpeg

    def _fast(self, data: bytes, size: int | None) -> np.ndarray:
        # strict (the default) raises on truncated data instead of returning grey rows
        return self._decode(data, colorspace="RGB", min_height=size or 0, min_width=size or 0)


class TurboJpegDecoder(_FastDecoder):
    name = "turbojpeg"

    def __init__(self, reduce: bool = False):
        import turbojpeg

        super().__init__(reduce)
        self._tj = _turbo()
        self._rgb = turbojpeg.TJPF_RGB
        self._strict = getattr(turbojpeg, "TJFLAG_STOPONWARNING", 0)

    def _fast(self, data: bytes, size: int | None) -> np.ndarray:
        scale = None
        if size:
            w, h, _, _ = self._tj.decode_header(data)
            k = _reduce_factor((h, w), size)
            scale = (1, k) if k > 1 else None
        return self._tj.decode(data, pixel_format=self._rgb, scaling_factor=scale,
                               flags=self._strict)  # fmt: skip


@cache
def _turbo():
    import turbojpeg

    return turbojpeg.TurboJPEG()  # loads libturbojpeg; OSError/RuntimeError when missing


class TorchvisionDecoder(_FastDecoder):
    """``torchvision.io.decode_jpeg`` on the whole list (one call; nvjpeg when ``device`` is CUDA)."""

    name = "torchvision"

    def __init__(self, reduce: bool = False):
        import torch
        import torchvision.io as tvio

        super().__init__(False)  # no DCT scaling in torchvision
        # torchvision 0.29 deprecates its image codecs in favour of TorchCodec; they still work
        warnings.filterwarnings("ignore", message="The image decoding and encoding capabilities",
                                category=DeprecationWarning)  # fmt: skip
        self._torch, self._io = torch, tvio

    def _fast(self, data: bytes, size: int | None) -> np.ndarray:
        return self.tensors([data], device="cpu")[0].permute(1, 2, 0).numpy()

    def tensors(self, blobs: Sequence[bytes], device: str = "cpu") -> list:
        """Decoded (3, H, W) uint8 tensors on ``device`` (raises on any bad blob)."""
        torch = self._torch
        raw = [torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in blobs]
        return self._io.decode_jpeg(raw, mode=self._io.ImageReadMode.RGB, device=device)

    def decode(self, blobs: Sequence[bytes], wheres: Sequence[str],
               size: int | None = None) -> list[np.ndarray]:  # fmt: skip
        for b, w in zip(blobs, wheres, strict=True):
            _check(b, w)
        try:
            return [t.permute(1, 2, 0).numpy() for t in self.tensors(blobs)]  # (H, W, 3) views
        except Exception:  # noqa: BLE001  one bad blob fails the batch: redo one by one
            return super().decode(blobs, wheres, size)


_CLASSES = {"simplejpeg": SimpleJpegDecoder, "turbojpeg": TurboJpegDecoder,
            "torchvision": TorchvisionDecoder, "pil": PilDecoder}  # fmt: skip


def make_decoder(name: str = "auto", reduce: bool = False):
    """The decoder ``name`` (one of :data:`ORDER`), or with "auto" the first one installed.

    A named decoder that cannot load raises ``ValueError`` saying what is missing.
    """
    if name == "auto":
        for candidate in ORDER:
            try:
                return _CLASSES[candidate](reduce)
            except Exception as err:  # noqa: BLE001  (not installed / no shared library)
                log.debug("jpeg decoder %s unavailable: %s", candidate, err)
        raise AssertionError("unreachable: PIL is always available")
    if name not in _CLASSES:
        raise ValueError(f"jpeg decoder {name!r} is unknown; choose auto or one of {list(ORDER)}")
    try:
        return _CLASSES[name](reduce)
    except Exception as err:  # noqa: BLE001
        raise ValueError(f"jpeg decoder {name!r} is not usable here: {err}") from None


def available() -> list[str]:
    """Names of the decoders that load on this machine, fastest first."""
    names = []
    for name in ORDER:
        try:
            _CLASSES[name]()
        except Exception:  # noqa: BLE001
            continue
        names.append(name)
    return names
