"""Per-video claims, so two extraction drivers started on the same feature set at once never
encode or write one video twice.

A driver claims the videos it is about to extract with one advisory ``flock`` per video on
``.<store>.claims/<set>/<video>.lock`` next to a local store (made only when a driver has
videos to extract), taken without waiting: a video
another live driver holds is left to that driver. The kernel drops a lock when its holder exits
or is killed, so a crashed driver never blocks a rerun, and nothing depends on pids, clocks or
timeouts. Stores given as URLs are not claimed (no shared lock service); run one driver there.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

__all__ = ["Claims"]


class Claims:
    """The claims this process holds on videos of feature set ``set_name`` of ``store``."""

    def __init__(self, store: str | os.PathLike, set_name: str):
        where = os.fspath(store)
        self.store = where
        self.folder = None if "://" in where else (
            Path(where).parent / f".{Path(where).name}.claims" / set_name)
        self._held: dict[str, int] = {}

    @contextmanager
    def creating(self) -> Iterator[None]:
        """Hold the store's creation lock (blocking; a flock on the store folder itself, so a
        refused run leaves no file behind): two drivers creating one new set at once create it
        once; the second then finds it complete and reopens it."""
        if self.folder is None:
            yield
            return
        fd = os.open(self.store, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def take(self, videos: Iterable[str]) -> list[str]:
        """Claim each of ``videos`` not held by another live driver; returns those claimed."""
        videos = list(videos)
        if self.folder is None or not videos:
            return videos
        self.folder.mkdir(parents=True, exist_ok=True)
        got = []
        for video in videos:
            if video in self._held:
                got.append(video)
                continue
            fd = os.open(self.folder / f"{video}.lock", os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self._held[video] = fd
            got.append(video)
        if len(got) < len(videos):
            log.info("%d video(s) are being extracted by another driver; left to it",
                     len(videos) - len(got))
        return got

    def release(self) -> None:
        for fd in self._held.values():
            os.close(fd)  # closing the descriptor drops its lock
        self._held.clear()

    def __enter__(self) -> Claims:
        return self

    def __exit__(self, *exc) -> None:
        self.release()
