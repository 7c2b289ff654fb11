"""The Zarr layout of a feature store: names, chunking, codecs, version, split codes.

This is the only module that knows them; ``store``, ``writer`` and ``ingest`` ask it.

    store.zarr/                      attrs: layout_version, videos, sources, created, ingest
      catalog/offset      (video,)        int64   first row of the video on the frame axis
      catalog/num_frames  (video,)        int64
      catalog/split       (video, task)   int8    -1 none, 0 train, 1 val, 2 test
      frames/present      (frame,)        bool
      labels/<task>, labels/<task>_valid  (frame, ...)
      features/<name>/data      (frame, dim)   float16 by default
      features/<name>/committed (video,)       uint8, chunks (1,)
      features/<name>/checksum  (video,)       uint32, chunks (1,)

Every array's codec chain ends with ``crc32c`` (layout version 2): a chunk whose stored bytes
changed fails its checksum when decoded. Stores of layout version 1 (no checksum) are migrated by
``featurestore migrate`` (featurestore.migrate).

Every video starts on a chunk boundary (``offset % CHUNK_FRAMES == 0``) so that a video owns whole
chunks of every frame-axis array: writers of different videos never share a chunk.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from featurestore.abaw import NUM_AUS, SPLITS, TASKS, check_video_name  # noqa: F401

LAYOUT_VERSION = 2  # 2: every array's chunks end with a crc32c checksum (1: none)
MIN_READABLE_VERSION = 2  # older stores are refused with the command that migrates them
CHUNK_FRAMES = 256  # bench/bench_store.py: 256 reads single 300-frame windows fastest (vs 128/512)
SPLIT_NONE = -1
FILL_POLICIES = ("interp", "nearest", "zero")
DEFAULT_FILL = "interp"
FEATURE_DTYPES = ("float16", "float32")

# Blosc zstd level 5 with byte shuffle: the only setting under 0.87x raw float16 in the bench
# (embedding-like data); bitshuffle level 3 reads ~15% faster but stores ~0.89x.
BLOSC_CNAME = "zstd"
BLOSC_CLEVEL = 5
BLOSC_SHUFFLE = "shuffle"

CATALOG = "catalog"
FRAMES = "frames"
LABELS = "labels"
FEATURES = "features"
OFFSET = f"{CATALOG}/offset"
NUM_FRAMES = f"{CATALOG}/num_frames"
SPLIT = f"{CATALOG}/split"
PRESENT = f"{FRAMES}/present"

# root attributes
ATTR_VERSION = "layout_version"
ATTR_VIDEOS = "videos"
ATTR_SOURCES = "sources"
ATTR_CREATED = "created"
ATTR_INGEST = "ingest"  # {"state": "writing" | "complete", "revision": int}
ATTR_TASKS = "tasks"
# feature-set attributes, written together in one metadata write after the set's arrays: a set
# is complete (visible) only when it has all of them
SET_ATTRS = ("dim", "dtype", "fill", "provenance")

_NAME_RE = re.compile(r"^[A-Za-z0-9._-]+$")


@dataclass(frozen=True)
class LabelSpec:
    """dtype, trailing shape and invalid marker of one task's label array."""

    dtype: str
    tail: tuple[int, ...]
    invalid: float | int


LABEL_SPECS = {
    "va": LabelSpec("float32", (2,), -5.0),
    "expr": LabelSpec("int64", (), -1),
    "au": LabelSpec("int8", (NUM_AUS,), -1),
}


def label_path(task: str) -> str:
    return f"{LABELS}/{task}"


def valid_path(task: str) -> str:
    return f"{LABELS}/{task}_valid"


def feature_group(name: str) -> str:
    return f"{FEATURES}/{name}"


def set_complete(attrs) -> bool:
    """Whether a feature set's group attributes mark it fully created (see ``SET_ATTRS``)."""
    return all(key in attrs for key in SET_ATTRS)


def check_set_name(name: str) -> str:
    """Return ``name`` if it is a valid feature-set name ([A-Za-z0-9._-]+), else raise ValueError."""
    if not isinstance(name, str) or not _NAME_RE.match(name) or name in (".", ".."):
        raise ValueError(f"feature set name {name!r} is invalid: use letters, digits, '.', '_', '-'")
    return name


def aligned_length(num_frames: int, chunk: int = CHUNK_FRAMES) -> int:
    """Rows a video of ``num_frames`` occupies: rounded up to whole chunks (at least one)."""
    return max(1, -(-int(num_frames) // chunk)) * chunk


def aligned_offsets(num_frames: np.ndarray | list[int], start: int = 0,
                    chunk: int = CHUNK_FRAMES) -> tuple[np.ndarray, int]:
    """Chunk-aligned offsets of consecutive videos.

    num_frames: (V,) frames per video. Returns offsets (V,) int64 (each a multiple of ``chunk``,
    the first equal to ``start``) and the total length of the frame axis after the last video.
    """
    if start % chunk:
        raise ValueError(f"start={start} is not a multiple of the chunk size {chunk}")
    lengths = np.array([aligned_length(n, chunk) for n in num_frames], dtype=np.int64)  # (V,)
    ends = start + np.cumsum(lengths)  # (V,)
    offsets = ends - lengths
    return offsets, int(ends[-1]) if len(ends) else int(start)


def split_code(split: str | None) -> int:
    if split is None:
        return SPLIT_NONE
    if split not in SPLITS:
        raise ValueError(f"split {split!r} is not one of {SPLITS}")
    return SPLITS.index(split)


def split_name(code: int) -> str | None:
    return None if int(code) < 0 else SPLITS[int(code)]


def checksum_codec():
    """The bytes-to-bytes codec that ends every array's chain: 4 bytes of crc32c appended to each
    stored chunk, checked on every decode (a mismatch raises, naming nothing: featurestore.chunkread
    names the array and chunk)."""
    from zarr.codecs import Crc32cCodec

    return Crc32cCodec()


def compressors(dtype: str) -> tuple:
    """Bytes-to-bytes codecs of a frame-axis array of ``dtype``: Blosc, then the checksum."""
    from zarr.codecs import BloscCodec

    return (BloscCodec(cname=BLOSC_CNAME, clevel=BLOSC_CLEVEL, shuffle=BLOSC_SHUFFLE,
                       typesize=np.dtype(dtype).itemsize), checksum_codec())


def frame_array_kwargs(dtype: str, tail: tuple[int, ...], names: tuple[str, ...],
                       fill_value: float | int | bool = 0) -> dict:
    """``create_array`` keyword arguments of a frame-axis array (frame, *tail)."""
    return dict(dtype=dtype, chunks=(CHUNK_FRAMES, *tail), compressors=compressors(dtype),
                dimension_names=names, fill_value=fill_value,
                config={"write_empty_chunks": True})


def video_array_kwargs(dtype: str, tail: tuple[int, ...] = (), names: tuple[str, ...] = ("video",),
                       fill_value: int = 0, per_video_chunks: bool = False) -> dict:
    """``create_array`` keyword arguments of a per-video array (video, *tail).

    ``per_video_chunks`` gives every video its own chunk (commit flags, checksums) so processes
    committing different videos never write one object.
    """
    chunk = 1 if per_video_chunks else 4096
    return dict(dtype=dtype, chunks=(chunk, *tail), compressors=(checksum_codec(),),
                dimension_names=names, fill_value=fill_value, config={"write_empty_chunks": True})
