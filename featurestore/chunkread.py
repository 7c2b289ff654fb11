"""Reads that name the damage: a chunk that cannot be decoded is a :class:`StoreError` naming the
store, the array and the chunk, never a codec traceback; a chunk that should exist and does not
is found by listing, since every chunk of a written region is stored (arrays are written with
``write_empty_chunks``, also after a reopen: docs/STORE.md), so a missing one is damage, not
an empty region.

:func:`read` reads a region in one call and only after a failure goes chunk by chunk to say
which one is bad.
"""

from __future__ import annotations

import numpy as np
import zarr
from zarr.core.sync import sync

from featurestore.errors import StoreError

__all__ = ["damaged_chunk", "describe", "missing_chunks", "read"]


def _rows(arr: zarr.Array) -> int:
    return int(arr.chunks[0])


def describe(err: BaseException) -> str:
    """Why a chunk could not be read, in one line (zarr's crc32c message quotes raw bytes)."""
    if "checksum do not match" in str(err) or "crc32c checksum mismatch" in str(err):
        return "crc32c checksum mismatch (the stored bytes changed)"
    return f"{type(err).__name__}: {err}"


def damaged_chunk(arr: zarr.Array, lo: int, hi: int) -> tuple[int, str] | None:
    """The first chunk along axis 0 within rows [lo, hi) that cannot be decoded, and why."""
    C = _rows(arr)
    for c in range(lo // C, -(-hi // C)):
        try:
            arr[c * C:min((c + 1) * C, arr.shape[0])]
        except Exception as err:  # any codec or storage error is damage to report
            return c, describe(err)
    return None


def read(arr: zarr.Array, lo: int, hi: int, where: str) -> np.ndarray:
    """``arr[lo:hi]``; a chunk that cannot be decoded raises StoreError naming ``where`` (the
    store), the array and the chunk."""
    try:
        return arr[lo:hi]
    except Exception as err:
        bad = damaged_chunk(arr, lo, hi)
        c, why = bad if bad else (lo // _rows(arr), describe(err))
        C = _rows(arr)
        raise StoreError(f"{where}: array {arr.path} chunk {c} (rows {c * C}-{(c + 1) * C - 1}) "
                         f"cannot be read: {why}; the store is damaged (run featurestore "
                         f"verify)") from None


def missing_chunks(arr: zarr.Array, lo: int, hi: int) -> list[int]:
    """Chunk indices along axis 0 within rows [lo, hi) that have no object on storage."""
    C = _rows(arr)
    tail = (0,) * (arr.ndim - 1)
    enc = arr.metadata.chunk_key_encoding
    store = arr.store_path.store
    prefix = f"{arr.path}/" if arr.path else ""
    out = []
    for c in range(lo // C, -(-hi // C)):
        if not sync(store.exists(prefix + enc.encode_chunk_key((c, *tail)))):
            out.append(c)
    return out
