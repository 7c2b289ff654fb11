"""A contact sheet of face crops: a grid of evenly spaced crops of one video, with frame numbers."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["contact_sheet"]


def contact_sheet(crop_dir: str | os.PathLike, out: str | os.PathLike, *, columns: int = 8,
                  rows: int = 4, tile: int = 112) -> Path | None:
    """Write a PNG grid of up to ``columns * rows`` crops of ``crop_dir`` (``%05d.jpg`` files),
    evenly spaced over the video, each labelled with its frame number. Returns the path, or None
    when the folder holds no crop. Written to a temporary file and renamed."""
    crop_dir, out = Path(crop_dir), Path(out)
    files = sorted(crop_dir.glob("[0-9]*.jpg")) if crop_dir.is_dir() else []
    if not files:
        return None
    pick = [files[i] for i in np.unique(np.linspace(0, len(files) - 1, columns * rows).round()
                                        .astype(int))]
    cols = min(columns, len(pick))
    sheet = Image.new("RGB", (cols * tile, -(-len(pick) // cols) * (tile + 14)), "white")
    draw = ImageDraw.Draw(sheet)
    for k, f in enumerate(pick):
        x, y = (k % cols) * tile, (k // cols) * (tile + 14)
        with Image.open(f) as im:
            sheet.paste(im.convert("RGB").resize((tile, tile)), (x, y))
        draw.text((x + 3, y + tile + 1), f"frame {int(f.stem)}", fill="black")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.part")
    sheet.save(tmp, format="PNG")
    os.replace(tmp, out)
    return out
