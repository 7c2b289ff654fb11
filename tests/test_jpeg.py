"""encoders.jpeg: every decoder gives PIL's pixels, names bad frames, and falls back to PIL."""

import io

import numpy as np
import pytest
from PIL import Image

from encoders.jpeg import ORDER, TOLERANCE, available, make_decoder
from featurestore.errors import DataFormatError
from featurestore.frames import decode_jpeg


def _jpeg(mode: str, size=(112, 112), seed=0) -> bytes:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (size[1] // 8, size[0] // 8, 3), dtype=np.uint8)
    img = Image.fromarray(base).resize(size, Image.BILINEAR).convert(mode)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _decoder(name):
    try:
        return make_decoder(name)
    except ValueError as err:
        pytest.skip(f"{name}: {err}")


@pytest.mark.parametrize("name", ORDER)
def test_same_pixels_as_pil_for_rgb_grey_and_cmyk(name):
    dec = _decoder(name)
    blobs = [_jpeg("RGB", seed=1), _jpeg("L", seed=2), _jpeg("CMYK", seed=3), _jpeg("RGB", (96, 120))]
    out = dec.decode(blobs, ["a", "b", "c", "d"])
    for got, blob in zip(out, blobs, strict=True):
        ref = decode_jpeg(blob)
        assert got.dtype == np.uint8 and got.shape == ref.shape and got.shape[2] == 3
        assert np.abs(got.astype(int) - ref.astype(int)).max() <= TOLERANCE


@pytest.mark.parametrize("name", ORDER)
def test_bad_blobs_raise_data_format_error_naming_the_frame(name):
    dec = _decoder(name)
    good = _jpeg("RGB")
    for bad, why in ((b"", "empty"), (b"\x89PNG....", "not a JPEG"), (good[:200], "decode")):
        with pytest.raises(DataFormatError, match=f"vid/00002.jpg.*{why}"):
            dec.decode([good, bad], ["vid/00001.jpg", "vid/00002.jpg"])


@pytest.mark.parametrize("name", ["pil", "simplejpeg", "turbojpeg"])
def test_reduce_decodes_at_least_the_target_size(name):
    dec = _decoder(name)
    full = dec.decode([_jpeg("RGB")], ["x"])[0]
    small = make_decoder(name, reduce=True).decode([_jpeg("RGB")], ["x"], size=50)[0]
    assert full.shape == (112, 112, 3) and small.shape == (56, 56, 3)  # 1/2 in the DCT domain
    mid = make_decoder(name, reduce=True).decode([_jpeg("RGB")], ["x"], size=60)[0]
    assert 60 <= mid.shape[0] <= 112  # simplejpeg may use M/8 scales (70 px), never below size


def test_auto_is_the_first_available_and_unknown_names_fail():
    assert make_decoder("auto").name == available()[0]
    assert "pil" in available()
    with pytest.raises(ValueError, match="unknown"):
        make_decoder("nope")
