"""The frame source of an Aff-Wild2 tree: face JPEGs read from the ``cropped_aligned*`` folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from featurestore.affwild2 import AffWild2, read_affwild2


class AffWild2Frames:
    """A :class:`FrameSource` over the ``cropped_aligned*`` folders of an Aff-Wild2 tree."""

    def __init__(self, root_or_ds: str | Path | AffWild2):
        self.ds = root_or_ds if isinstance(root_or_ds, AffWild2) else read_affwild2(root_or_ds)

    def __repr__(self) -> str:
        return f"AffWild2Frames({str(self.ds.root)!r})"

    def videos(self) -> list[str]:
        return list(self.ds.videos)

    def frame_numbers(self, video: str) -> np.ndarray:
        return self.ds.videos[video].frame_numbers

    def read_bytes(self, video: str, number: int) -> bytes:
        return self.ds.videos[video].frame_path(number).read_bytes()

    def frame_path(self, video: str, number: int) -> Path:
        """Where the jpg of ``(video, number)`` lives (for error messages and packing)."""
        return self.ds.videos[video].frame_path(number)
