"""Face records as arrays on the store's frame axis, next to ``frames/present``.

    frames/face_score      (frame,)       float32  detector score of the tracked face, NaN without one
    frames/face_box        (frame, 4)     float32  x1, y1, x2, y2 in source-video pixels
    frames/face_landmarks  (frame, 5, 2)  float32  eyes, nose, mouth corners (x, y), source pixels

Rows follow the store's catalog (row ``offset + k`` is jpg ``k + 1``); a video without a face
record keeps NaN. Written by ``ingest`` when the dataset root has a ``faces/`` folder (what
``affvideo faces`` writes), as a single-process step like the rest of ingest; any zarr reader
can read them like the other frame arrays.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import zarr

from featurestore import layout as L
from featurestore.chunkread import read
from featurestore.video.meta import load_record

__all__ = ["FACE_ARRAYS", "write_face_arrays", "read_face_arrays"]

log = logging.getLogger(__name__)

# name -> (trailing shape, dimension names)
FACE_ARRAYS = {
    "face_score": ((), ("frame",)),
    "face_box": ((4,), ("frame", "box")),
    "face_landmarks": ((5, 2), ("frame", "landmark", "xy")),
}


def _array(root: zarr.Group, name: str, total: int) -> zarr.Array:
    tail, dims = FACE_ARRAYS[name]
    key = f"{L.FRAMES}/{name}"
    if key not in root:
        kw = L.frame_array_kwargs("float32", tail, dims, float("nan"))
        return root[L.FRAMES].create_array(name, shape=(total, *tail), **kw)
    arr = zarr.open_array(store=root.store, path=key, mode="r+",
                          config={"write_empty_chunks": True})
    if arr.shape[0] < total:  # the store grew (new videos ingested) since the last write
        arr.resize((total, *tail))
    return arr


def write_face_arrays(store: str | os.PathLike, faces_dir: str | os.PathLike) -> int:
    """Write every ``<faces_dir>/<video>.npz`` record of a video the store knows. Returns the
    number of videos written. Frames beyond the store's ``num_frames`` are dropped (the store's
    count comes from the last jpg and the annotations)."""
    faces_dir = Path(faces_dir)
    root = zarr.open_group(store=os.fspath(store), mode="r+")
    videos = list(root.attrs[L.ATTR_VIDEOS])
    where = os.fspath(store)
    offsets = read(root[L.OFFSET], 0, len(videos), where)  # (V,)
    counts = read(root[L.NUM_FRAMES], 0, len(videos), where)  # (V,)
    total = int(root[L.PRESENT].shape[0])
    arrays = {name: _array(root, name, total) for name in FACE_ARRAYS}
    written = 0
    for i, video in enumerate(videos):
        path = faces_dir / f"{video}.npz"
        if not path.is_file():
            continue
        rec = load_record(path)
        off, n = int(offsets[i]), int(counts[i])
        m = min(n, rec.num_frames)
        aligned = L.aligned_length(n)  # the video's whole chunks: no chunk is shared
        for name, values in (("face_score", rec.score), ("face_box", rec.box),
                             ("face_landmarks", rec.landmarks)):
            rows = np.full((aligned, *FACE_ARRAYS[name][0]), np.nan, np.float32)
            rows[:m] = values[:m]
            arrays[name][off:off + aligned] = rows
        written += 1
    log.info("face arrays written for %d of %d videos", written, len(videos))
    return written


def read_face_arrays(store: str | os.PathLike, video: str) -> dict[str, np.ndarray] | None:
    """``{"face_score": (n,), "face_box": (n, 4), "face_landmarks": (n, 5, 2)}`` of one video, or
    None when the store has no face arrays."""
    root = zarr.open_group(store=os.fspath(store), mode="r")
    if f"{L.FRAMES}/face_score" not in root:
        return None
    videos = list(root.attrs[L.ATTR_VIDEOS])
    if video not in videos:
        raise KeyError(f"{store}: no video {video!r}")
    i = videos.index(video)
    where = os.fspath(store)
    off = int(read(root[L.OFFSET], i, i + 1, where)[0])
    n = int(read(root[L.NUM_FRAMES], i, i + 1, where)[0])
    out = {}
    for name in FACE_ARRAYS:
        arr = root[f"{L.FRAMES}/{name}"]
        vals = np.asarray(read(arr, off, min(off + n, arr.shape[0]), where), np.float32)
        pad = np.full((n - len(vals), *FACE_ARRAYS[name][0]), np.nan, np.float32)
        out[name] = np.concatenate([vals, pad])
    return out
