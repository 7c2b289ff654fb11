"""Whole-chunk reads of frame-axis arrays, and the bounded on-disk read-through chunk cache.

Zarr's per-call machinery (selection planning, the async codec pipeline) costs about 2 ms per
read here, more than decoding the chunk itself (about 0.6 ms for 256 x 768 float16). For arrays
with the store's own codec chain (little-endian bytes + Blosc + crc32c, no sharding)
:class:`ChunkSource` fetches the stored objects of many chunks in one concurrent request, checks
each chunk's crc32c and decodes it with Blosc directly; any other chain falls back to zarr
slicing (same values and checks, slower). A chunk that fails its checksum or does not decode is
a StoreError naming the store, the array and the chunk.

:class:`DiskCache` keeps the *stored* (compressed) bytes of feature chunks of remote stores on a
local disk. Only chunks of committed videos are ever read through it, and committed rows never
change (exactly-once writes), so cached bytes cannot go stale; the key includes the feature set's
``uid`` so that a removed and recreated set never hits the old set's entries.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import tempfile
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import zarr

from featurestore.chunkread import describe, read
from featurestore.errors import StoreError

log = logging.getLogger(__name__)

DEFAULT_DISK_CACHE_BYTES = 10 << 30  # 10 GiB


class DiskCache:
    """A folder of compressed chunk objects, bounded in bytes, least recently used evicted first.

    Recency is the file's modification time (updated on every hit). The bound is enforced by each
    process when it adds an entry; processes sharing a folder may overshoot it by the entries
    they are writing at that moment. Entries are written to a temp file and renamed, so a reader
    never sees a partial entry. Safe to delete the folder at any time while nothing reads it.
    """

    def __init__(self, root: str | os.PathLike, max_bytes: int = DEFAULT_DISK_CACHE_BYTES):
        if int(max_bytes) <= 0:
            raise ValueError(f"local cache size must be > 0 bytes, got {max_bytes}")
        self.root, self.max_bytes = Path(root), int(max_bytes)
        self.root.mkdir(parents=True, exist_ok=True)
        self.hits = self.misses = 0
        self._used = sum(size for _, size, _ in self._entries())

    def _path(self, key: str) -> Path:
        h = hashlib.sha256(key.encode()).hexdigest()
        return self.root / h[:2] / h

    def _entries(self) -> list[tuple[float, int, Path]]:
        out = []
        for sub in self.root.iterdir() if self.root.is_dir() else []:
            if not sub.is_dir():
                continue
            for f in sub.iterdir():
                if ".tmp-" in f.name:
                    continue
                try:
                    st = f.stat()
                except FileNotFoundError:  # evicted by another process meanwhile
                    continue
                out.append((st.st_mtime, st.st_size, f))
        return out

    def get(self, key: str) -> bytes | None:
        p = self._path(key)
        try:
            data = p.read_bytes()
        except FileNotFoundError:
            self.misses += 1
            return None
        try:
            os.utime(p)
        except FileNotFoundError:
            pass
        self.hits += 1
        return data

    def put(self, key: str, data: bytes) -> None:
        if len(data) > self.max_bytes:
            return
        p = self._path(key)
        p.parent.mkdir(exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=p.name + ".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, p)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._used += len(data)
        if self._used > self.max_bytes:
            self._evict()

    def _evict(self) -> None:
        entries = sorted(self._entries())  # oldest first
        used = sum(size for _, size, _ in entries)
        target = int(self.max_bytes * 0.9)
        for _, size, f in entries:
            if used <= target:
                break
            f.unlink(missing_ok=True)
            used -= size
        self._used = used

    def size_bytes(self) -> int:
        return sum(size for _, size, _ in self._entries())


class ChunkCache:
    """In-memory LRU of decoded chunks keyed by (set name, chunk index), bounded in bytes (a
    store's ``cache_bytes``). Only chunks of committed videos go in, and those never change."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()
        self._bytes = 0

    def get(self, key: tuple[str, int]) -> np.ndarray | None:
        item = self._items.get(key)
        if item is not None:
            self._items.move_to_end(key)
        return item

    def put(self, key: tuple[str, int], chunk: np.ndarray) -> None:
        if chunk.nbytes > self.max_bytes or key in self._items:
            return
        self._items[key] = chunk
        self._bytes += chunk.nbytes
        while self._bytes > self.max_bytes:
            _, old = self._items.popitem(last=False)
            self._bytes -= old.nbytes


_POOL: tuple[int, ThreadPoolExecutor] | None = None


def _pool() -> ThreadPoolExecutor:
    """This process's decode threads (created after any fork: a pool never crosses one)."""
    global _POOL
    if _POOL is None or _POOL[0] != os.getpid():
        _POOL = (os.getpid(), ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1),
                                                 thread_name_prefix="featurestore-decode"))
    return _POOL[1]


def _read_file(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _fast_codecs(array: zarr.Array) -> tuple[bool, bool]:
    """(whether the chain is little-endian bytes + Blosc [+ crc32c], whether it ends in crc32c)."""
    from zarr.codecs import BloscCodec, BytesCodec, Crc32cCodec

    codecs = list(array.metadata.codecs)
    crc = bool(codecs) and isinstance(codecs[-1], Crc32cCodec)
    if crc:
        codecs = codecs[:-1]
    if len(codecs) != 2 or not isinstance(codecs[1], BloscCodec):
        return False, crc
    first = codecs[0]
    little = isinstance(first, BytesCodec) and (first.endian is None
                                                or first.endian.value == "little")
    return little, crc


def check_crc32c(data: bytes) -> bytes:
    """The payload of a stored chunk ending in 4 bytes of little-endian crc32c (the zarr v3
    ``crc32c`` codec); ValueError when the checksum does not match."""
    import google_crc32c

    if len(data) < 4:
        raise ValueError(f"{len(data)} bytes: too short to hold a crc32c checksum")
    payload, stored = data[:-4], int.from_bytes(data[-4:], "little")
    computed = google_crc32c.value(payload)
    if computed != stored:
        raise ValueError(f"crc32c checksum mismatch (stored {stored:#010x}, computed "
                         f"{computed:#010x})")
    return payload


def _crc_ok(data: bytes) -> bool:
    try:
        check_crc32c(data)
    except ValueError:
        return False
    return True


class ChunkSource:
    """Decoded whole chunks ``c`` (rows ``c*C:(c+1)*C``) of one frame-axis zarr array.

    ``cache_key``: a stable identity of the array's contents for the disk cache (None: the array
    may change, do not use the disk cache for it).
    """

    def __init__(self, array: zarr.Array, *, disk: DiskCache | None = None,
                 cache_key: str | None = None):
        self.array = array
        self.rows = int(array.chunks[0])
        self.tail = tuple(int(x) for x in array.shape[1:])
        self.dtype = np.dtype(array.dtype)
        fast, self.crc = _fast_codecs(array)
        self.fast = fast and tuple(array.chunks[1:]) == self.tail
        self.disk = disk if cache_key is not None else None
        self.cache_key = cache_key

    def _key(self, c: int) -> str:
        coords = (c,) + (0,) * len(self.tail)
        return f"{self.array.store_path.path}/{self.array.metadata.encode_chunk_key(coords)}"

    def read(self, chunks: list[int]) -> dict[int, np.ndarray]:
        """{c: (C, *tail) array} for the given chunk indices (each fetched once)."""
        chunks = sorted(set(int(c) for c in chunks))
        if not chunks:
            return {}
        if not self.fast:
            return self._read_zarr(chunks)
        raw: dict[int, bytes | None] = {}
        todo = []
        for c in chunks:
            hit = self.disk.get(f"{self.cache_key}/{c}") if self.disk is not None else None
            if hit is not None and self.crc and not _crc_ok(hit):
                log.warning("local cache entry of %s chunk %d fails its checksum; refetched",
                            self.array.path, c)
                hit = None
            if hit is None:
                todo.append(c)
            else:
                raw[c] = hit
        if todo:
            fetched = self._fetch([self._key(c) for c in todo])
            for c, data in zip(todo, fetched, strict=True):
                raw[c] = data
                if data is not None and self.disk is not None:
                    self.disk.put(f"{self.cache_key}/{c}", data)
        if len(chunks) == 1:
            return {chunks[0]: self._decode_named(chunks[0], raw[chunks[0]])}
        # Blosc releases the GIL off the main thread: decode the chunks side by side
        decoded = _pool().map(self._decode_named, chunks, [raw[c] for c in chunks])
        return dict(zip(chunks, decoded, strict=True))

    def _decode_named(self, c: int, data: bytes | None) -> np.ndarray:
        """_decode; damage raises a StoreError naming the store, the array and the chunk."""
        try:
            return self._decode(data)
        except Exception as err:  # noqa: BLE001  (any codec failure is damage on disk)
            raise StoreError(f"{self.array.store_path.store}: array {self.array.path} chunk {c} "
                             f"(rows {c * self.rows}-{(c + 1) * self.rows - 1}) cannot be read: "
                             f"{describe(err)}; the store is damaged (run featurestore "
                             f"verify)") from None

    def _fetch(self, keys: list[str]) -> list[bytes | None]:
        from zarr.core.buffer import default_buffer_prototype
        from zarr.core.sync import sync

        store, proto = self.array.store_path.store, default_buffer_prototype()
        root = getattr(store, "root", None)
        if isinstance(root, Path):  # a LocalStore: plain file reads skip the event loop round trip
            return [_read_file(root / k) for k in keys]

        async def get_all():
            return await asyncio.gather(*(store.get(k, proto) for k in keys))

        return [None if b is None else b.to_bytes() for b in sync(get_all())]

    def _decode(self, data: bytes | None) -> np.ndarray:
        from numcodecs import blosc

        shape = (self.rows, *self.tail)
        if data is None:  # never written: the array's fill value
            return np.full(shape, self.array.fill_value, dtype=self.dtype)
        if self.crc:
            data = check_crc32c(data)
        out = np.frombuffer(blosc.decompress(data), dtype=self.dtype.newbyteorder("<"))
        return out.reshape(shape)

    def _read_zarr(self, chunks: list[int]) -> dict[int, np.ndarray]:
        out, C, k = {}, self.rows, 0
        while k < len(chunks):  # one zarr call per run of consecutive chunks
            j = k
            while j + 1 < len(chunks) and chunks[j + 1] == chunks[j] + 1:
                j += 1
            block = read(self.array, chunks[k] * C, (chunks[j] + 1) * C,  # damage named
                         str(self.array.store_path.store))
            for c in chunks[k:j + 1]:
                part = block[(c - chunks[k]) * C:(c - chunks[k] + 1) * C]
                if len(part) < C:  # last chunk of an array whose length is not a multiple of C
                    pad = np.full((C - len(part), *self.tail), self.array.fill_value, self.dtype)
                    part = np.concatenate([part, pad])
                out[c] = part
            k = j + 1
        return out
