"""Synthetic Aff-Wild2: procedural faces in exactly the real dataset layout (numpy + pillow only).

``generate(out, SynthConfig(...))`` writes ``out/affwild2`` (frames, ABAW6 annotations, test
lists, templates) and ``out/faces`` (FER2013 csv, RAF-DB basic). What was intended for each video
is recomputed, never stored: ``intended_labels(cfg, video_index)``.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

from featurestore.atomic import atomic_write
from featurestore.synth.faces import FaceParams, draw_face, random_identity
from featurestore.synth.layout import (
    EXPR_CLASSES,
    IntendedVideo,
    VideoPlan,
    frame_params,
    intended_video,
    plan_videos,
    write_facesets,
    write_test_files,
    write_video,
)

__all__ = ["SynthConfig", "generate", "plan_videos", "intended_labels", "contact_sheet",
           "draw_face", "FaceParams", "random_identity", "VideoPlan", "IntendedVideo"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SynthConfig:
    """Size and noise of the synthetic dataset. ``test_videos=None`` means max(2, videos // 6)."""

    videos: int = 12  # annotated (train + val) videos, each half of a pair counts
    frames: int = 400  # mean frames per video (lengths vary 0.5x..1.5x)
    seed: int = 0
    faces: int = 2000  # still images, split between FER2013 and RAF-DB
    size: int = 112
    test_videos: int | None = None
    val_fraction: float = 0.25
    missing_face_rate: float = 0.03
    invalid_label_rate: float = 0.02
    pair_fraction: float = 0.25
    # temporal structure (featurestore.synth.temporal); 0 switches a phenomenon off, and all four
    # at 0 give exactly the dataset of the generator without them
    lag: float = 1.0  # VA labels trail the face by lag * U(0.5, 1.5) s per video
    bursts: float = 0.05  # share of frames in occlusion / blur / turned-away bursts
    motion_arousal: float = 0.5  # share of arousal shown as head speed instead of in the face
    expr_ramp: float = 1.0  # expression onset / offset lengths: expr_ramp * U(0.2, 0.6) s

    def __post_init__(self) -> None:
        if self.test_videos is None:
            object.__setattr__(self, "test_videos", max(2, self.videos // 6))
        ints = {"videos": 2, "frames": 20, "seed": 0, "faces": 0, "size": 32, "test_videos": 0}
        for name, low in ints.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
                raise ValueError(f"SynthConfig.{name} must be an integer >= {low}, got {value!r}")
        rates = {"val_fraction": (0.0, 1.0, False), "missing_face_rate": (0.0, 0.5, True),
                 "invalid_label_rate": (0.0, 0.5, True), "pair_fraction": (0.0, 1.0, True),
                 "lag": (0.0, 3.0, True), "bursts": (0.0, 0.5, True),
                 "motion_arousal": (0.0, 1.0, True), "expr_ramp": (0.0, 3.0, True)}
        for name, (lo, hi, lo_ok) in rates.items():
            value = getattr(self, name)
            if not isinstance(value, int | float) or not (lo <= value < hi or value == hi == 1.0):
                raise ValueError(f"SynthConfig.{name} must be in [{lo}, {hi}], got {value!r}")
            if value == lo and not lo_ok:
                raise ValueError(f"SynthConfig.{name} must be > {lo}, got {value!r}")


def intended_labels(cfg: SynthConfig, video_index: int) -> IntendedVideo:
    """What the generator meant for video ``video_index`` of ``plan_videos(cfg)`` (pure)."""
    plans = plan_videos(cfg)
    if not 0 <= video_index < len(plans):
        raise IndexError(f"video_index {video_index} out of range 0..{len(plans) - 1}")
    return intended_video(cfg, plans[video_index])


def _prepare_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out}: exists and is not an empty folder; refusing to write there")
    out.parent.mkdir(parents=True, exist_ok=True)


def _write_plan(root: Path, cfg: SynthConfig, plan: VideoPlan) -> int:
    return write_video(root, cfg, intended_video(cfg, plan))


@contextmanager
def _mapper(workers: int) -> Iterator[Callable]:
    """``map_(fn, items, chunksize=16)``: the builtin ``map`` for one worker, else the ordered
    ``map`` of a pool of ``workers`` processes."""
    if workers <= 1:
        yield lambda fn, items, chunksize=16: map(fn, items)
        return
    # spawn, not fork: the caller may hold threads (Ray, torch) that a forked child would inherit
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield lambda fn, items, chunksize=16: pool.map(fn, items, chunksize=chunksize)


def generate(out: str | os.PathLike, cfg: SynthConfig | None = None, *,
             progress: bool | None = None, workers: int | None = None) -> dict:
    """Write the synthetic dataset to ``out`` (atomically: a temp folder beside it, then rename).

    ``workers``: processes drawing the frames and faces (default: one per CPU, at most 8). Every video and still face
    is pure in (seed, index), so the files are the same bytes for any number of workers.
    Returns a summary: videos per split, jpgs written, label lines, faces, seconds, out path.
    """
    cfg = cfg or SynthConfig()
    workers = workers or min(8, os.cpu_count() or 1)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers!r}")
    out = Path(out).absolute()
    _prepare_out(out)
    t0 = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    show = sys.stderr.isatty() if progress is None else progress
    try:
        plans = plan_videos(cfg)
        with _mapper(workers) as map_:
            done = map_(partial(_write_plan, tmp / "affwild2", cfg), plans, chunksize=1)
            frames = sum(tqdm(done, total=len(plans), desc="synth videos", unit="video",
                              disable=not show))
            write_test_files(tmp / "affwild2", plans)
            faces = write_facesets(tmp / "faces", cfg, map_=map_)
        if out.exists():
            out.rmdir()  # empty (checked above): rename needs the name free
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    splits = {s: sum(p.split == s for p in plans) for s in ("train", "val", "test")}
    summary = {"out": str(out), "videos": splits, "frames": frames,
               "label_frames": sum(p.num_frames for p in plans), "faces": faces,
               "seconds": round(time.perf_counter() - t0, 2)}
    log.info("synthetic dataset written: %s", summary)
    return summary


def contact_sheet(out_png: str | os.PathLike, cfg: SynthConfig | None = None, *,
                  videos: int = 6, frames_per_video: int = 8) -> Path:
    """Save a PNG grid of example frames (one row per video, spread over time, captioned)."""
    cfg = cfg or SynthConfig(videos=max(videos, 2), frames=200, faces=0)
    plans = plan_videos(cfg)[:videos]
    tile, cap = cfg.size, 12
    sheet = Image.new("RGB", (tile * frames_per_video, (tile + cap) * len(plans)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, plan in enumerate(plans):
        iv = intended_video(cfg, plan)
        params = frame_params(cfg, iv)
        rng = np.random.default_rng([cfg.seed, 4, plan.index])
        idx = np.linspace(0, plan.num_frames - 1, frames_per_video).astype(int)
        for c, i in enumerate(idx):
            x, y = c * tile, r * (tile + cap)
            sheet.paste(Image.fromarray(draw_face(params[i], rng)), (x, y))
            text = f"{EXPR_CLASSES[iv.timeline.expr[i]][:5]} v{iv.timeline.valence[i]:+.1f}"
            draw.text((x + 2, y + tile), text, fill="black")
    return atomic_write(out_png, lambda tmp: sheet.save(tmp, "PNG"))
