"""`VideoExtractor`: encode one video's face jpgs with a `FrameEncoder` and write them, committed,
into a feature set of the store. Plain code: the Ray actors of jobs/extract.py wrap it."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

import numpy as np
import torch

import featurestore
from encoders.encode import open_encoder
from featurestore.errors import FeatureValidationError
from featurestore.frames import FrameSource, open_frames
from featurestore.store import FeatureStore
from featurestore.writer import FeatureSetWriter


@dataclass(frozen=True)
class VideoWrite:
    """What extracting one video did (the one result type of extraction: the pool of
    jobs/extract_pool.py fills in where it ran with ``dataclasses.replace``)."""

    video: str
    frames: int  # frames with a face that were encoded
    seconds: float  # encoding + writing this video (not the wait for another video in flight)
    written: bool  # False: the video was already committed (nothing rewritten)
    node: str = ""  # Ray node id of the worker ("" outside Ray)
    worker: int = -1  # slot of the extraction pool that ran it (-1 outside a pool)


class VideoExtractor:
    """Encode one video's jpgs and write them to the store.

    ``run(video)`` writes (n_present, dim) rows and commits the video (a no-op, ``written=False``,
    when it is already committed). A video without any face is committed too: its rows are
    all filled by the set's fill policy (all zeros). The feature set must exist.

    Two ``run`` calls may overlap (a Ray actor with ``max_concurrency=2``): one video is encoded
    while the previous one is written and committed. Encodes never overlap each other, nor do
    writes, so the encoder keeps the device and the store sees one writer at a time; on a GPU the
    store write (compression + file I/O on the CPU) then hides behind the next video's forward.
    """

    def __init__(self, frames_path: str | os.PathLike, checkpoint: str | os.PathLike,
                 store: str | os.PathLike, set_name: str, device: str = "cpu", *,
                 batch_size: int = 64, threads: int | None = None):
        if threads is not None:
            torch.set_num_threads(max(1, int(threads)))
        self.frames: FrameSource = open_frames(frames_path)
        # a checkpoint folder, or pixels:SIDE[g] for the raw-pixel baseline (encoders.pixels)
        self.encoder = open_encoder(checkpoint, device=device, batch_size=batch_size)
        self.encoder.warm_up()  # off the clock
        self.store: FeatureStore = featurestore.open(store, mode="a")
        self.writer: FeatureSetWriter = self.store.writer(set_name)
        self.set_name = set_name
        self._videos: set[str] | None = None
        self._encoding, self._writing = threading.Lock(), threading.Lock()

    def frame_numbers(self, video: str) -> np.ndarray:
        """(k,) 1-based numbers of the jpgs of ``video``; checked against the store's catalog."""
        want = np.flatnonzero(self.store.present(video)) + 1  # (k,)
        if self._videos is None:
            self._videos = set(self.frames.videos())
        have = self.frames.frame_numbers(video) if video in self._videos else want[:0]
        have = np.asarray(have, dtype=np.int64)
        if len(have) != len(want) or not np.array_equal(have, want):
            raise FeatureValidationError(
                f"{self.frames!r}/{video}: {len(have)} jpgs, but the store {self.store.path} "
                f"expects {len(want)} (frames and store were made from different data?)")
        return have

    def run(self, video: str) -> VideoWrite:
        with self._encoding:
            t0 = time.perf_counter()
            numbers = self.frame_numbers(video)
            if len(numbers):
                feats = self.encoder.encode_video(self.frames, video)  # (n_present, D)
            else:
                feats = np.zeros((0, self.encoder.dim), np.float32)  # (0, D): no face at all
            seconds = time.perf_counter() - t0
        with self._writing:
            t0 = time.perf_counter()
            written = self.writer.write_video(video, feats)
            seconds += time.perf_counter() - t0
        return VideoWrite(video, len(numbers), seconds, written)
