"""Batch frame encoder for feature extraction.

:class:`FrameEncoder` loads a pretrained MAE or a fine-tuned classifier checkpoint and turns the
jpgs of a video into one pooled embedding per frame. JPEG decoding (PIL releases the GIL) runs in
a thread pool one batch ahead of the model forward, so decoding and encoding overlap.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
from concurrent.futures import Future, ThreadPoolExecutor
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

from encoders.checkpoint import WEIGHTS, CheckpointError, load_checkpoint, read_config
from encoders.data import to_model_input
from encoders.presets import MAEConfig

log = logging.getLogger(__name__)


def code_version() -> str:
    try:
        return metadata.version("affstore")
    except metadata.PackageNotFoundError:  # running from a plain checkout
        return "unknown"


POOLING = "mean of normed patch tokens, no masking"


def encoder_provenance(checkpoint_dir: str | os.PathLike) -> dict[str, Any]:
    """The provenance a feature set records for features of this checkpoint, read from its
    ``config.json`` alone (no model built, no weights hashed: the JSON records their sha256).
    ``provenance["dim"]`` is the feature width."""
    directory = Path(checkpoint_dir)
    doc = read_config(directory)
    if not (directory / WEIGHTS).is_file():
        raise CheckpointError(f"{directory / WEIGHTS}: weights file missing")
    cfg = MAEConfig.from_dict(doc["mae"])
    return {
        "checkpoint": str(directory.resolve()),
        "checkpoint_sha256": doc["weights_sha256"],
        "preset": cfg.name,
        "input_size": cfg.img_size,
        "stage": doc["stage"],
        "dim": cfg.embed_dim,
        "pooling": POOLING,
        "code_version": code_version(),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }


class FrameEncoder:
    """Encode face frames with a checkpoint of either stage.

    frames in: uint8 RGB (H, W, 3) (any size; resized to the checkpoint's ``img_size``);
    features out: (n, D) float32, D = ``self.dim``: the mean of the encoder's normed patch
    tokens without masking (the same for both stages; a fine-tuned head is not used).

    ``decode_workers`` threads decode and preprocess the next batch during the forward;
    ``dtype`` is the autocast dtype (default bf16 on CUDA, none on CPU).
    """

    def __init__(self, checkpoint_dir: str | os.PathLike, device: str = "cpu",
                 batch_size: int = 64, decode_workers: int = 2, dtype: torch.dtype | None = None):
        if batch_size <= 0:
            raise ValueError(f"batch_size must be > 0, got {batch_size!r}")
        if decode_workers <= 0:
            raise ValueError(f"decode_workers must be > 0, got {decode_workers!r}")
        self.checkpoint_dir = Path(checkpoint_dir)
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.decode_workers = decode_workers
        self.model, self.cfg, self.meta = load_checkpoint(self.checkpoint_dir, self.device)
        # autocast dtype: bf16 on CUDA by default, full float32 on CPU unless asked
        self.autocast_dtype = dtype if dtype is not None else (
            torch.bfloat16 if self.device.type == "cuda" else None)
        self._provenance = encoder_provenance(self.checkpoint_dir)  # load verified the sha

    @property
    def dim(self) -> int:
        return self.cfg.embed_dim

    @property
    def provenance(self) -> dict[str, Any]:
        return dict(self._provenance)

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

    def _prepare(self, blobs: list[bytes], names: list[str]) -> torch.Tensor:
        """Decode + preprocess JPEGs (runs in the pool) -> (b, 3, S, S)."""
        from featurestore.frames import decode_jpeg

        images = [decode_jpeg(b, where=n) for b, n in zip(blobs, names, strict=True)]
        return to_model_input(images, self.cfg.img_size)

    def encode_video(self, frames, video: str) -> np.ndarray:
        """Features of every jpg of ``video`` in ``frames`` (a FrameSource), in frame order.

        Returns (n_present, D) float32, n_present = len(frames.frame_numbers(video)). The next
        batch is decoded and preprocessed by ``decode_workers`` threads (one slice each) while
        the model encodes the current one.
        """
        numbers = np.asarray(frames.frame_numbers(video))
        batches = [numbers[i:i + self.batch_size] for i in range(0, len(numbers), self.batch_size)]
        if not batches:
            return np.zeros((0, self.dim), np.float32)

        def submit(pool: ThreadPoolExecutor, batch: np.ndarray) -> list[Future]:
            # LMDB / file reads stay on this thread (fast); decoding goes to the pool
            blobs = [frames.read_bytes(video, int(n)) for n in batch]
            names = [f"{video}/{int(n):05d}.jpg" for n in batch]
            k = -(-len(batch) // self.decode_workers)
            return [pool.submit(self._prepare, blobs[i:i + k], names[i:i + k])
                    for i in range(0, len(batch), k)]

        out = []
        with ThreadPoolExecutor(self.decode_workers, thread_name_prefix="decode") as pool:
            pending = submit(pool, batches[0])
            for k in range(len(batches)):
                x = torch.cat([f.result() for f in pending])  # (B, 3, S, S)
                if k + 1 < len(batches):
                    pending = submit(pool, batches[k + 1])  # prepare ahead while the model runs
                out.append(self._forward(x))  # (B, D)
        return np.concatenate(out)
