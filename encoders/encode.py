"""Batch frame encoder for feature extraction.

:class:`FrameEncoder` loads a pretrained MAE or a fine-tuned classifier checkpoint and turns the
jpgs of a video into one pooled embedding per frame. Reading, JPEG decoding (the fastest decoder
of :mod:`encoders.jpeg`) and preprocessing of the next batches run on decode threads while the
model encodes the current one (:mod:`encoders.pipeline`); on CUDA the batch goes through pinned
memory and a non-blocking copy (or is decoded on the GPU by nvjpeg) and the forward runs in bf16.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from encoders.checkpoint import STAGES, CheckpointError, load_checkpoint, read_checkpoint
from encoders.data import IMAGENET_MEAN, IMAGENET_STD, to_model_input
from encoders.jpeg import make_decoder
from encoders.pipeline import BatchPipeline
from encoders.pixels import PixelEncoder, is_pixel_spec, pixel_provenance
from encoders.presets import MAEConfig
from featurestore.provenance import code_version

log = logging.getLogger(__name__)


POOLING = {"mean": "mean of normed patch tokens, no masking",
           "tokens": "normed patch tokens concatenated in patch order (row-major), no masking"}


def encoder_provenance(checkpoint_dir: str | os.PathLike) -> dict[str, Any]:
    """The provenance a feature set records for features of this checkpoint, read from its
    ``config.json`` alone (no model built, no weights hashed: the JSON records their sha256).
    ``provenance["dim"]`` is the feature width."""
    directory = Path(checkpoint_dir)
    found = read_checkpoint(directory)
    if not found.weights_path.is_file():
        raise CheckpointError(f"{found.weights_path}: weights file missing")
    cfg = MAEConfig.from_dict(found.config["mae"])
    return {
        "checkpoint": str(directory.resolve()),
        "checkpoint_sha256": found.weights_sha256,
        "preset": cfg.name,
        "input_size": cfg.img_size,
        "normalization": {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD),
                          "pixels": "RGB in [0, 1], bilinear (antialiased) resize to input_size, "
                                    "then (x - mean) / std"},
        "stage": STAGES[found.kind],
        "dim": cfg.feature_dim,
        "pooling": POOLING[cfg.readout],
        "code_version": code_version(),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }


def feature_provenance(spec: str | os.PathLike) -> dict[str, Any]:
    """:func:`encoder_provenance` of a checkpoint folder, or that of the raw-pixel baseline
    when ``spec`` is ``pixels:SIDE[g]`` (:mod:`encoders.pixels`)."""
    return pixel_provenance(spec) if is_pixel_spec(spec) else encoder_provenance(spec)


def open_encoder(spec: str | os.PathLike, device: str = "cpu",
                 batch_size: int = 64) -> FrameEncoder | PixelEncoder:
    """A :class:`FrameEncoder` of the checkpoint folder ``spec``, or the raw-pixel baseline for
    ``pixels:SIDE[g]``; both have ``dim``, ``provenance``, ``warm_up`` and ``encode_video``."""
    if is_pixel_spec(spec):
        return PixelEncoder(str(spec))
    return FrameEncoder(spec, device=device, batch_size=batch_size)


class FrameEncoder:
    """Encode face frames with a checkpoint of either stage.

    frames in: uint8 RGB (H, W, 3) (any size; resized to the checkpoint's ``img_size``);
    features out: (n, D) float32, D = ``self.dim``: the encoder's normed patch tokens without
    masking, read out as the checkpoint's ``readout`` says (their mean, or all of them side by
    side), the same for both stages; a fine-tuned head is not used.

    ``decode_workers`` threads read, decode and preprocess the next batches during the forward
    (default: 1 on CPU, where torch's threads own the cores; on CUDA the process's torch thread
    count, i.e. the actor's CPU share). ``decoder``: a name of :data:`encoders.jpeg.ORDER` or
    "auto" (the fastest installed). ``gpu_decode`` (default: on for CUDA) decodes with
    ``torchvision.io.decode_jpeg`` onto the device (nvjpeg), whatever ``decoder`` says for the
    CPU fallback; ``stage_u8`` ships uint8 and normalises on the device (default: CUDA only).
    Both also run on CPU, which is how the tests exercise the CUDA code path.
    ``dtype`` is the autocast dtype (default bf16 on CUDA, none on CPU).
    """

    def __init__(self, checkpoint_dir: str | os.PathLike, device: str = "cpu",
                 batch_size: int = 64, decode_workers: int | None = None,
                 dtype: torch.dtype | None = None, decoder: str = "auto",
                 gpu_decode: bool | None = None, stage_u8: bool | None = None):  # fmt: skip
        if batch_size <= 0:
            raise ValueError(f"batch_size must be > 0, got {batch_size!r}")
        if decode_workers is not None and decode_workers <= 0:
            raise ValueError(f"decode_workers must be > 0, got {decode_workers!r}")
        self.checkpoint_dir = Path(checkpoint_dir)
        self.device = torch.device(device)
        self.batch_size = batch_size
        cuda = self.device.type == "cuda"
        self.decode_workers = decode_workers or (max(1, torch.get_num_threads()) if cuda else 1)
        self.decoder = make_decoder(decoder)
        self.gpu_decode = cuda if gpu_decode is None else bool(gpu_decode)
        self.device_decoder = make_decoder("torchvision") if self.gpu_decode else None
        self.stage_u8 = stage_u8  # None: uint8 staging + device-side normalisation on CUDA only
        self.model, self.cfg, self.meta = load_checkpoint(self.checkpoint_dir, self.device)
        # autocast dtype: bf16 on CUDA by default, full float32 on CPU unless asked
        self.autocast_dtype = dtype if dtype is not None else (
            torch.bfloat16 if self.device.type == "cuda" else None)
        self._provenance = encoder_provenance(self.checkpoint_dir)  # load verified the sha

    @property
    def dim(self) -> int:
        return self.cfg.feature_dim

    @property
    def provenance(self) -> dict[str, Any]:
        return dict(self._provenance)

    def warm_up(self) -> None:
        """One forward of a blank frame (first-call allocations off the clock)."""
        size = self.cfg.img_size
        self.encode_images(np.zeros((1, size, size, 3), np.uint8))

    @torch.inference_mode()
    def _forward(self, batch: torch.Tensor) -> np.ndarray:
        """batch: (B, 3, S, S) -> (B, D) float32 numpy."""
        batch = batch.to(self.device, non_blocking=True)
        if self.autocast_dtype is not None:
            with torch.autocast(self.device.type, dtype=self.autocast_dtype):
                out = self.model.embed(batch)  # (B, D)
        else:
            out = self.model.embed(batch)  # (B, D)
        return out.float().cpu().numpy()

    def encode_images(self, images: np.ndarray) -> np.ndarray:
        """images: uint8 (N, H, W, 3) -> (N, D) float32."""
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"images must be uint8 (N, H, W, 3), got {images.dtype} "
                             f"{images.shape}")
        out = [self._forward(to_model_input(images[i:i + self.batch_size], self.cfg.img_size))
               for i in range(0, len(images), self.batch_size)]
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    def _read(self, frames, video: str):
        def read(numbers: np.ndarray) -> tuple[list[bytes], list[str]]:
            return ([frames.read_bytes(video, int(n)) for n in numbers],
                    [f"{video}/{int(n):05d}.jpg" for n in numbers])  # fmt: skip

        return read

    def encode_video(self, frames, video: str) -> np.ndarray:
        """Features of every jpg of ``video`` in ``frames`` (a FrameSource), in frame order.

        Returns (n_present, D) float32, n_present = len(frames.frame_numbers(video)). Batches are
        read, decoded and preprocessed ahead by ``decode_workers`` threads (one batch per task)
        while the model encodes the current one; on CUDA the result of batch k is fetched only
        after batch k+1 is queued, so the GPU never waits for the host.
        """
        numbers = np.asarray(frames.frame_numbers(video))
        out = np.empty((len(numbers), self.dim), np.float32)  # (n, D), filled in place
        pipe = BatchPipeline(self.decoder, self.cfg.img_size, self.device, self.decode_workers,
                             self.device_decoder, self.stage_u8)  # fmt: skip
        row, held = 0, None  # held: (row, device result) of the batch still in flight
        for x in pipe.batches(self._read(frames, video), numbers, self.batch_size):
            res = self._forward_async(x)  # (B, D) on the device
            if held is not None:
                row = self._collect(out, *held)
            held = (row, res)
        if held is not None:
            self._collect(out, *held)
        return out

    @torch.inference_mode()
    def _forward_async(self, x: torch.Tensor):
        """(B, 3, S, S) on the device -> ((B, D) float32 host tensor, CUDA event or None).

        On CUDA the forward and the copy back into pinned memory are only queued: the host waits
        for the event of batch k-1 (which precedes batch k on the stream) while k computes.
        """
        if self.autocast_dtype is not None:
            with torch.autocast(self.device.type, dtype=self.autocast_dtype):
                res = self.model.embed(x).float()  # (B, D)
        else:
            res = self.model.embed(x)  # (B, D)
        if self.device.type != "cuda":
            return res, None
        host = torch.empty(res.shape, dtype=torch.float32, pin_memory=True)
        host.copy_(res, non_blocking=True)
        done = torch.cuda.Event()
        done.record()
        return host, done

    @staticmethod
    def _collect(out: np.ndarray, row: int, res) -> int:
        host, done = res
        if done is not None:
            done.synchronize()
        out[row:row + len(host)] = host.numpy()
        return row + len(host)
