"""FrameEncoder on synthetic Aff-Wild2 frames, from the jpg tree and from an LMDB pack."""

import numpy as np
import pytest
import torch

from encoders.checkpoint import checkpoint_sha256, save_checkpoint
from encoders.data import to_model_input
from encoders.encode import FrameEncoder
from encoders.jpeg import TOLERANCE, make_decoder
from encoders.mae import ExprClassifier, MaskedAutoencoder
from encoders.presets import get_preset
from featurestore.errors import DataFormatError
from featurestore.frames import decode_jpeg, open_frames
from featurestore.pack import pack_frames
from featurestore.synth import SynthConfig, generate

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "data"
    generate(out, SynthConfig(videos=2, frames=40, faces=0, size=48, test_videos=0),
             progress=False)
    return out / "affwild2"


@pytest.fixture(scope="module", params=["pretrain", "finetune"])
def checkpoint(request, tmp_path_factory):
    torch.manual_seed(0)
    cfg = get_preset("tiny", img_size=32)
    model = MaskedAutoencoder(cfg) if request.param == "pretrain" else ExprClassifier(cfg)
    return save_checkpoint(tmp_path_factory.mktemp("ck"), model, cfg), model.eval()


def _usable(name):
    try:
        make_decoder(name)
    except ValueError as err:
        pytest.skip(f"{name}: {err}")  # PyTurboJPEG needs libturbojpeg: optional
    return name


# every decoder, plus the CUDA code path run on CPU (torchvision device decode; uint8 staging
# with normalisation after the "copy"), with 1 and 2 decode threads
PATHS = [("pil", {}), ("simplejpeg", {}), ("turbojpeg", {}), ("torchvision", {}),
         ("auto", {"gpu_decode": True}), ("auto", {"stage_u8": True, "decode_workers": 1})]


@pytest.mark.parametrize("decoder,extra", PATHS, ids=[f"{d}-{'-'.join(e) or 'cpu'}" for d, e in PATHS])
@pytest.mark.parametrize("source", ["tree", "lmdb"])
def test_encode_video_equals_direct_embed(synth_root, checkpoint, source, decoder, extra, tmp_path):
    """Features equal a direct forward on PIL-decoded frames, for every decoder: each one is
    within ``encoders.jpeg.TOLERANCE`` grey levels of PIL, and on these crops exactly equal."""
    ck_dir, model = checkpoint
    if source == "lmdb":
        pack_frames(synth_root, tmp_path / "pack", progress=False)
        frames = open_frames(tmp_path / "pack")
    else:
        frames = open_frames(synth_root)
    video = max(frames.videos(), key=lambda v: len(frames.frame_numbers(v)))
    numbers = frames.frame_numbers(video)
    enc = FrameEncoder(ck_dir, batch_size=7, decode_workers=extra.get("decode_workers", 2),
                       decoder=decoder if decoder == "auto" else _usable(decoder),
                       gpu_decode=extra.get("gpu_decode"), stage_u8=extra.get("stage_u8"))
    feats = enc.encode_video(frames, video)  # several batches of 7 + a tail, resized 48 -> 32
    assert feats.dtype == np.float32 and feats.shape == (len(numbers), enc.dim)
    images = [decode_jpeg(frames.read_bytes(video, int(n))) for n in numbers]
    blobs = [frames.read_bytes(video, int(n)) for n in numbers]
    mine = enc.decoder.decode(blobs, [str(n) for n in numbers])
    worst = max(int(np.abs(a.astype(int) - b.astype(int)).max()) for a, b in zip(mine, images, strict=True))
    assert worst <= TOLERANCE
    with torch.no_grad():
        direct = model.embed(to_model_input(images, 32)).numpy()
    np.testing.assert_allclose(feats, direct, rtol=1e-5, atol=1e-5)
    # frame order is kept: each row belongs to its own frame
    np.testing.assert_allclose(enc.encode_images(np.stack(images[-3:])), direct[-3:], atol=1e-5)


def test_provenance_and_dim(checkpoint):
    ck_dir, model = checkpoint
    enc = FrameEncoder(ck_dir)
    prov = enc.provenance
    assert enc.dim == 128
    assert prov["checkpoint_sha256"] == checkpoint_sha256(ck_dir)
    assert prov["preset"] == "tiny" and prov["input_size"] == 32
    assert prov["stage"] == ("pretrain" if isinstance(model, MaskedAutoencoder) else "finetune")
    assert {"code_version", "created"} <= set(prov)
    # the extraction driver's view: the same record from config.json alone, without a model
    from encoders.encode import encoder_provenance

    light = encoder_provenance(ck_dir)
    assert light["dim"] == enc.dim
    assert {k: v for k, v in light.items() if k != "created"} == \
        {k: v for k, v in prov.items() if k != "created"}


class _BrokenFrames:  # a FrameSource whose second jpg is corrupt
    def videos(self):
        return ["v"]

    def frame_numbers(self, video):
        return np.array([1, 2, 3])

    def read_bytes(self, video, number):
        import io

        from PIL import Image
        buf = io.BytesIO()
        Image.new("RGB", (40, 40), (number * 50, 0, 0)).save(buf, format="JPEG")
        return buf.getvalue()[:30] if number == 2 else buf.getvalue()


def test_corrupt_jpeg_names_the_frame(checkpoint):
    enc = FrameEncoder(checkpoint[0], batch_size=2)
    with pytest.raises(DataFormatError, match="v/00002.jpg"):
        enc.encode_video(_BrokenFrames(), "v")


def test_bad_arguments(checkpoint):
    with pytest.raises(ValueError, match="batch_size"):
        FrameEncoder(checkpoint[0], batch_size=0)
    with pytest.raises(ValueError, match="uint8"):
        FrameEncoder(checkpoint[0]).encode_images(np.zeros((2, 8, 8, 3), np.float32))


def test_to_model_input_batched_path_matches_per_image_path():
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    fast = to_model_input(imgs, 32)  # all S x S: one batched conversion
    mixed = to_model_input([*imgs, rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)], 32)
    assert fast.shape == (3, 3, 32, 32) and mixed.shape == (4, 3, 32, 32)
    torch.testing.assert_close(mixed[:3], fast)
    # ImageNet normalisation: a pixel equal to the mean maps to 0
    mean_px = np.array([[[124, 116, 104]]], np.uint8).repeat(32, 0).repeat(32, 1)[None]
    assert to_model_input(mean_px, 32).abs().max() < 0.01


def test_tokens_readout_dim_provenance_and_video(synth_root, tmp_path):
    """A `tokens` checkpoint gives L*D features per frame, equal to the model's tokens, and
    records the readout in its provenance (so a store refuses to mix it with a `mean` set)."""
    torch.manual_seed(0)
    cfg = get_preset("tiny_tok", img_size=32)
    model = MaskedAutoencoder(cfg).eval()
    ck = save_checkpoint(tmp_path / "ck", model, cfg)
    enc = FrameEncoder(ck)
    assert enc.dim == cfg.feature_dim == cfg.num_patches * 128 == 4 * 128
    assert "concatenated" in enc.provenance["pooling"] and enc.provenance["dim"] == enc.dim
    mean_prov = FrameEncoder(save_checkpoint(tmp_path / "ck2", model,
                                             get_preset("tiny", img_size=32))).provenance
    assert mean_prov["pooling"] != enc.provenance["pooling"]
    frames = open_frames(synth_root)
    video = frames.videos()[0]
    feats = enc.encode_video(frames, video)  # (n, L*D)
    imgs = np.stack([decode_jpeg(frames.read_bytes(video, int(n)))
                     for n in frames.frame_numbers(video)[:4]])
    with torch.no_grad():
        tokens = model.encoder(to_model_input(imgs, 32))[0][:, 1:]  # (4, L, D)
    np.testing.assert_allclose(feats[:4].reshape(4, cfg.num_patches, 128), tokens.numpy(), atol=1e-5)
