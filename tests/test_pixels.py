"""The raw-pixel baseline (encoders.pixels): the spec, the downsampling, and extraction of it
into a real store by jobs/extract.py (in process, and through the CLI's error contract)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_extract import build_tiny_data

import featurestore
from encoders.pixels import PixelEncoder, downsample, is_pixel_spec, parse_pixel_spec
from featurestore.errors import FeatureValidationError
from featurestore.frames import decode_jpeg, open_frames
from jobs.extract import ExtractConfig, run_extraction

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("spec, want", [("pixels:16", (16, "RGB")), ("pixels:8g", (8, "L")),
                                        ("pixels:1", (1, "RGB")), ("pixels:64g", (64, "L"))])
def test_spec_parses(spec, want):
    assert is_pixel_spec(spec)
    assert parse_pixel_spec(spec) == want


@pytest.mark.parametrize("spec", ["pixels:", "pixels:0", "pixels:65", "pixels:16x", "pixels:-4",
                                  "pixels:g", "pixels: 16", "pixel:16", "/ckpt/pixels:16"])
def test_bad_spec_is_refused_by_name(spec):
    with pytest.raises(ValueError, match="pixel baseline") as err:
        parse_pixel_spec(spec)
    assert repr(spec) in str(err.value)


def test_folders_are_not_pixel_specs(tmp_path):
    assert not is_pixel_spec(str(tmp_path / "ckpt"))
    assert not is_pixel_spec(tmp_path / "pixels:16")  # a Path is a folder, never the baseline


def test_downsample_averages_boxes_and_centres():
    img = np.zeros((1, 32, 32, 3), np.uint8)
    img[0, :, :16] = 255  # left half white, right half black
    got = downsample(img, 2)  # (1, 2*2*3), row-major, channels last
    assert got.shape == (1, 12) and got.dtype == np.float32
    np.testing.assert_allclose(got.reshape(2, 2, 3)[:, 0], 0.5)  # white column
    np.testing.assert_allclose(got.reshape(2, 2, 3)[:, 1], -0.5)  # black column
    red = np.zeros((3, 8, 8, 3), np.uint8)
    red[..., 0] = 255
    grey = downsample(red, 4, "L")  # PIL's L = 0.299 R + 0.587 G + 0.114 B, rounded
    assert grey.shape == (3, 16)
    np.testing.assert_allclose(grey, 76 / 255 - 0.5, atol=1e-6)
    assert downsample(np.zeros((0, 8, 8, 3), np.uint8), 4).shape == (0, 48)


def test_downsample_refuses_non_images():
    with pytest.raises(ValueError, match="uint8"):
        downsample(np.zeros((1, 8, 8, 3), np.float32), 4)
    with pytest.raises(ValueError, match="uint8"):
        downsample(np.zeros((8, 8, 3), np.uint8), 4)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, str]:
    return build_tiny_data(tmp_path_factory.mktemp("pixels"))


def test_extract_writes_the_pixels_of_every_frame(data):
    stats = run_extraction(ExtractConfig(data["pack"], "pixels:4", data["store"], "pix4",
                                         inline_frames=10**6))
    store = featurestore.open(data["store"])
    assert sorted(store.committed("pix4")) == sorted(store.videos())
    assert stats.frames == sum(int(store.present(v).sum()) for v in store.videos())
    info = store.feature_info("pix4")
    assert info.dim == 48
    assert info.provenance["preset"] == "pixels" and info.provenance["checkpoint"] == "pixels:4"
    frames = open_frames(data["tree"])
    for video in store.videos():
        numbers = np.flatnonzero(store.present(video)) + 1
        if not len(numbers):
            continue
        imgs = np.stack([decode_jpeg(frames.read_bytes(video, int(n))) for n in numbers])
        want = downsample(imgs, 4).astype(np.float16)  # (k, 48) as stored
        np.testing.assert_array_equal(store.features("pix4", video)[numbers - 1], want)
        np.testing.assert_array_equal(PixelEncoder("pixels:4").encode_video(frames, video)
                                      .astype(np.float16), want)


def test_another_pixel_spec_is_refused_in_the_same_set(data):
    run_extraction(ExtractConfig(data["pack"], "pixels:2", data["store"], "pix2",
                                 inline_frames=10**6))
    with pytest.raises(FeatureValidationError, match="pix2"):
        run_extraction(ExtractConfig(data["pack"], "pixels:2g", data["store"], "pix2",
                                     inline_frames=10**6))


def test_cli_bad_spec_is_one_line_and_writes_nothing(data):
    store = featurestore.open(data["store"])
    before = sorted(store.feature_sets())
    res = subprocess.run([sys.executable, "jobs/extract.py", "--frames", data["pack"],
                          "--checkpoint", "pixels:0", "--store", data["store"], "--set", "bad"],
                         cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 1
    assert res.stderr.strip().startswith("error: pixel baseline 'pixels:0'")
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert sorted(featurestore.open(data["store"]).feature_sets()) == before


def test_the_baseline_needs_no_torch():
    code = ("import sys, numpy as np; from encoders.pixels import PixelEncoder; "
            "PixelEncoder('pixels:4').encode_images(np.zeros((1, 8, 8, 3), np.uint8)); "
            "print('torch' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "False"
