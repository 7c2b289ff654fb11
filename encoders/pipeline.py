"""Overlapped batch preparation for :class:`encoders.encode.FrameEncoder`.

While the model runs batch k, decode threads read and decode batch k+1 (and k+2 ...): one thread
task per whole batch, so there is no slicing, no ``torch.cat`` and one hand-off per batch.

- CPU model: a task returns the finished model input (decode + :func:`to_model_input`), so the
  forward thread only runs the model.
- CUDA model: a task returns the batch as pinned uint8 (B, S, S, 3) host memory (4x fewer bytes
  than float32); :meth:`BatchPipeline.upload` copies it with ``non_blocking=True`` on a copy stream
  and normalises it on the GPU, so the copy of k+1 overlaps the forward of k. With the
  ``torchvision`` decoder the JPEGs themselves are decoded on the GPU (nvjpeg, batched) on a
  decode stream; a batch nvjpeg refuses is decoded on the CPU instead (which names a bad frame).

The same code runs on CPU in the tests: streams, pinning and events are skipped there.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F

from encoders.data import IMAGENET_MEAN, IMAGENET_STD, to_model_input

log = logging.getLogger(__name__)


def normalise_u8(x: torch.Tensor) -> torch.Tensor:
    """(B, S, S, 3) uint8 (any device) -> (B, 3, S, S) float32, the ops of :func:`to_model_input`."""
    x = x.permute(0, 3, 1, 2).float().div_(255.0)  # (B, 3, S, S)
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return x.sub_(mean).div_(std)


def _gpu_model_input(chw: Sequence[torch.Tensor], size: int) -> torch.Tensor:
    """Decoded (3, H, W) uint8 CUDA tensors -> (B, 3, S, S) normalised float32 on the GPU."""
    if all(t.shape[-2:] == (size, size) for t in chw):
        return normalise_u8(torch.stack(chw).permute(0, 2, 3, 1))
    x = torch.cat([F.interpolate(t[None].float() / 255.0, size=(size, size), mode="bilinear",
                                 align_corners=False, antialias=True).clamp(0, 1)
                   for t in chw])  # fmt: skip  (B, 3, S, S)
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


class BatchPipeline:
    """Prepare batches of one video ahead of the model on ``workers`` threads.

    read(numbers) -> (blobs, wheres) reads the JPEG bytes of a batch (called on a worker);
    :meth:`batches` yields model inputs on ``device`` in order.
    """

    def __init__(self, decoder, size: int, device: torch.device, workers: int,
                 device_decoder=None, stage_u8: bool | None = None):  # fmt: skip
        self.decoder, self.size, self.device, self.workers = decoder, size, device, workers
        self.cuda = device.type == "cuda"
        # device decode: torchvision's decode_jpeg onto ``device`` (nvjpeg on CUDA); the tests
        # run the same branch with device="cpu"
        self.device_decoder = device_decoder  # a TorchvisionDecoder, or None
        # uint8 staging (normalise on the device after the copy): default on CUDA only
        self.stage_u8 = self.cuda if stage_u8 is None else stage_u8
        self._copy = torch.cuda.Stream(device) if self.cuda else None
        self._decode_streams: dict[int, torch.cuda.Stream] = {}

    # ---- on a decode thread
    def _prepare(self, read: Callable, numbers: np.ndarray):
        blobs, wheres = read(numbers)
        if self.device_decoder is not None:
            try:
                return self._gpu_decode(blobs)
            except Exception as err:  # noqa: BLE001  (nvjpeg refused: CPU decode names the frame)
                log.debug("nvjpeg refused a batch (%s); decoding it on the CPU", err)
        images = self.decoder.decode(blobs, wheres, self.size)
        if self.stage_u8 and all(img.shape[:2] == (self.size, self.size) for img in images):
            return "u8", self._pin(torch.from_numpy(np.stack(images)))  # (B, S, S, 3)
        return "input", self._pin(to_model_input(images, self.size))  # (B, 3, S, S) float32

    def _pin(self, x: torch.Tensor) -> torch.Tensor:
        return x.pin_memory() if self.cuda else x

    def _gpu_decode(self, blobs: list[bytes]):
        import threading

        if not self.cuda:  # the same branch on CPU (tests): torchvision's CPU decoder
            return "gpu", (_gpu_model_input(self.device_decoder.tensors(blobs, device=self.device),
                                            self.size), None)  # fmt: skip
        stream = self._decode_streams.setdefault(threading.get_ident(),
                                                 torch.cuda.Stream(self.device))  # fmt: skip
        with torch.cuda.stream(stream):
            chw = self.device_decoder.tensors(blobs, device=self.device)  # nvjpeg, batched
            x = _gpu_model_input(chw, self.size)  # (B, 3, S, S) on the GPU
            done = torch.cuda.Event()
            done.record(stream)
        return "gpu", (x, done)

    # ---- on the forward thread
    def upload(self, item) -> torch.Tensor:
        """A prepared batch -> (B, 3, S, S) float32 model input on the device."""
        kind, x = item
        if not self.cuda:
            if kind == "gpu":
                return x[0]
            return normalise_u8(x) if kind == "u8" else x
        current = torch.cuda.current_stream(self.device)
        if kind == "gpu":
            x, done = x
            current.wait_event(done)
            x.record_stream(current)
            return x
        with torch.cuda.stream(self._copy):
            x = x.to(self.device, non_blocking=True)  # from pinned memory
            x = normalise_u8(x) if kind == "u8" else x
        current.wait_stream(self._copy)
        x.record_stream(current)
        return x

    def batches(self, read: Callable, numbers: np.ndarray, batch_size: int) -> Iterator[torch.Tensor]:
        """Model inputs for ``numbers`` in slices of ``batch_size``, prepared ahead."""
        chunks = [numbers[i:i + batch_size] for i in range(0, len(numbers), batch_size)]
        ahead = self.workers + 1  # batches in flight: every thread busy, one ready
        with ThreadPoolExecutor(self.workers, thread_name_prefix="decode") as pool:
            pending: deque[Future] = deque()
            todo = iter(chunks)
            try:
                for chunk in todo:
                    pending.append(pool.submit(self._prepare, read, chunk))
                    if len(pending) >= ahead:
                        break
                while pending:
                    item = pending.popleft().result()
                    nxt = next(todo, None)
                    if nxt is not None:
                        pending.append(pool.submit(self._prepare, read, nxt))
                    yield self.upload(item)
            finally:
                for f in pending:
                    f.cancel()
