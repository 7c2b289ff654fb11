"""The LMDB frame pack: every face JPEG of an Aff-Wild2 tree in one memory-mapped file.

Millions of 5 KB files are slow to list and copy; one LMDB environment is fast to ship to workers
and to read at random. Keys are ``b"<video>/<number:05d>"`` -> the JPEG file's bytes, plus
``b"__index__"`` -> JSON ``{video: [numbers]}``. The pack is written in a temp folder next to the
target and renamed into place, so a crash never leaves a half-written pack.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import lmdb
import numpy as np
from tqdm import tqdm

from featurestore.diskfull import FULL_BELOW, disk_full, full_disk_error
from featurestore.errors import DataFormatError
from featurestore.jpeg import is_jpeg
from featurestore.outputs import check_output, check_replace, mark
from featurestore.treeframes import AffWild2Frames

log = logging.getLogger(__name__)

INDEX_KEY = b"__index__"
_INITIAL_MAP_SIZE = 1 << 30
_BATCH = 1000  # frames per write transaction


def frame_key(video: str, number: int) -> bytes:
    """The LMDB key of one frame: ``b"<video>/<number:05d>"``."""
    return f"{video}/{number:05d}".encode()


def _ensure_space(folder: Path, need: int) -> None:
    """Refuse to go on unless ``need`` bytes (plus a margin) are free under ``folder``: LMDB
    meets a full device with SIGBUS (it maps pages the kernel could not write), not an error."""
    free = shutil.disk_usage(folder).free
    if free < need + FULL_BELOW:
        raise OSError(errno.ENOSPC, f"No space left on device ({free} bytes free, {need} "
                      f"needed for the next write)", str(folder))


def _put_batch(env: lmdb.Environment, items: list[tuple[bytes, bytes]]) -> None:
    """Write ``items`` in one transaction, doubling the map size whenever it is full."""
    _ensure_space(Path(env.path()), 2 * sum(len(k) + len(v) for k, v in items))  # CoW pages
    while True:
        try:
            with env.begin(write=True) as txn:
                for key, value in items:
                    txn.put(key, value)
            return
        except lmdb.MapFullError:
            env.set_mapsize(env.info()["map_size"] * 2)


def _write_pack(src: AffWild2Frames, tmp: Path, progress: bool) -> dict:
    index = {v: [int(n) for n in src.frame_numbers(v)] for v in src.videos()}
    total = sum(len(n) for n in index.values())
    nbytes = 0
    _ensure_space(tmp, 0)  # opening on a full device is already a SIGBUS
    env = lmdb.open(str(tmp), map_size=_INITIAL_MAP_SIZE, subdir=True, metasync=False, sync=False)
    try:
        batch: list[tuple[bytes, bytes]] = []
        with tqdm(total=total, unit="frame", desc="pack", disable=None if progress else True) as bar:
            for video, numbers in index.items():
                for n in numbers:
                    path = src.frame_path(video, n)
                    data = path.read_bytes()
                    if not is_jpeg(data):
                        what = "empty file" if not data else f"starts with {data[:4]!r}"
                        raise DataFormatError(path, None, f"not a JPEG file ({what})")
                    batch.append((frame_key(video, n), data))
                    nbytes += len(data)
                    if len(batch) >= _BATCH:
                        _put_batch(env, batch)
                        bar.update(len(batch))
                        batch = []
            batch.append((INDEX_KEY, json.dumps(index, separators=(",", ":")).encode()))
            _put_batch(env, batch)
            bar.update(len(batch) - 1)
        env.sync(True)
    finally:
        env.close()
    return {"videos": len(index), "frames": total, "bytes": nbytes}


def pack_frames(root: str | Path, pack: str | Path, *, progress: bool = True,
                overwrite: bool = False) -> dict:
    """Pack every jpg of every video under the Aff-Wild2 ``root`` into the LMDB folder ``pack``.

    Returns a summary ``{"pack", "videos", "frames", "bytes", "seconds"}``. Refuses an existing
    ``pack`` (FileExistsError) unless ``overwrite``; a file that is not a JPEG raises
    :class:`DataFormatError` naming it, and nothing is left behind.
    """
    t0 = time.perf_counter()
    pack = Path(pack)
    check_output(pack, {"ROOT": root}, what="pack")
    check_replace(pack, "frame pack", overwrite)  # only a pack this function made
    src = AffWild2Frames(root)
    pack.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{pack.name}.tmp-", dir=pack.parent))
    try:
        summary = _write_pack(src, tmp, progress)
        mark(tmp, "frame pack")
        if pack.exists():
            if not check_replace(pack, "frame pack", overwrite):
                raise FileExistsError(f"{pack} appeared while packing; not replaced")
            old = Path(tempfile.mkdtemp(prefix=f".{pack.name}.old-", dir=pack.parent))
            os.replace(pack, old / "pack")
            os.replace(tmp, pack)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, pack)
    except BaseException as err:
        full = isinstance(err, Exception) and disk_full(err, pack.parent)  # before the cleanup
        shutil.rmtree(tmp, ignore_errors=True)
        if full:
            raise full_disk_error(pack, "frame pack not written; nothing left behind") from err
        raise
    summary = {"pack": str(pack), **summary, "seconds": round(time.perf_counter() - t0, 3)}
    log.info("packed %(frames)d frames of %(videos)d videos into %(pack)s", summary)
    return summary


# One environment per (process, folder): LMDB forbids opening one twice in a process, and an
# environment must never be used across a fork.
_ENVS: dict[tuple[int, str], lmdb.Environment] = {}
_ENVS_LOCK = threading.Lock()


def _drop_inherited_envs(pid: int) -> None:
    """Close the environments a fork copied from the parent: lmdb's "already open" guard is
    inherited too. They are read-only without locks, so closing the child's copy (an munmap and
    a close of its file descriptor) leaves the parent's untouched."""
    for key in [k for k in _ENVS if k[0] != pid]:
        _ENVS.pop(key).close()


def _open_checked(path: Path) -> lmdb.Environment:
    """Open a pack read-only after checking it is whole: LMDB maps the file, and touching a page
    past the end of a truncated file kills the process with SIGBUS. The meta pages (read on open)
    give the last page in use; the file must hold it."""
    data = path / "data.mdb"
    if not data.is_file():
        raise DataFormatError(path, None, "not an LMDB frame pack (no data.mdb)")
    try:
        env = lmdb.open(str(path), readonly=True, lock=False, readahead=False, subdir=True,
                        max_readers=512)
    except lmdb.Error as err:
        raise DataFormatError(data, None, f"not a readable LMDB file ({err})") from None
    need = (env.info()["last_pgno"] + 1) * env.stat()["psize"]
    size = data.stat().st_size
    if size < need:
        env.close()
        raise DataFormatError(data, None, f"truncated LMDB frame pack: {size} bytes, its header "
                              f"says {need}; repack the frames")
    return env


def _env_for(path: Path) -> lmdb.Environment:
    pid = os.getpid()
    key = (pid, os.path.realpath(path))
    with _ENVS_LOCK:
        env = _ENVS.get(key)
        if env is None:
            _drop_inherited_envs(pid)
            env = _open_checked(path)
            _ENVS[key] = env
        return env


class LmdbFrames:
    """A :class:`~featurestore.frames.FrameSource` over an LMDB pack.

    The environment is opened lazily in each process (after pickling or a fork it is reopened),
    so the object can be sent to Ray actors and DataLoader workers.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._index: dict[str, np.ndarray] | None = None

    def __repr__(self) -> str:
        return f"LmdbFrames({str(self.path)!r})"

    def __getstate__(self) -> dict:
        return {"path": self.path}

    def __setstate__(self, state: dict) -> None:
        self.path = state["path"]
        self._index = None

    def _get(self, key: bytes) -> bytes | None:
        with _env_for(self.path).begin(buffers=False) as txn:
            return txn.get(key)

    def _load_index(self) -> dict[str, np.ndarray]:
        if self._index is None:
            raw = self._get(INDEX_KEY)
            if raw is None:
                raise DataFormatError(self.path, None, "LMDB pack has no __index__ key")
            try:
                index = {v: np.asarray(n, dtype=np.int64) for v, n in json.loads(raw).items()}
            except (ValueError, TypeError, AttributeError) as err:
                raise DataFormatError(self.path, None, f"LMDB pack index is damaged ({err})") from None
            self._index = index
        return self._index

    def videos(self) -> list[str]:
        return sorted(self._load_index())

    def frame_numbers(self, video: str) -> np.ndarray:
        return self._load_index()[video]

    def read_bytes(self, video: str, number: int) -> bytes:
        data = self._get(frame_key(video, int(number)))
        if data is None:
            raise KeyError(f"{self.path}: no frame {number} of video {video!r}")
        return data
