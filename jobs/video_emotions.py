"""Video to per-frame emotions, and the same table for videos already in a store.

``video_emotions``: for each video, the face step (``featurestore.video.faces``, resumable) writes
its crops and face record into OUT; the encoder turns the crops into features, the three sequence
heads (or one multi-task model, ``mtl``) turn them into per-frame predictions, and OUT gets ``<video>.csv`` (see
``jobs.video_table``), ``<video>.timeline.png`` and ``<video>.crops.png``. With two subjects each
of ``<video>_left`` / ``<video>_right`` gets its own files. A video whose table exists is skipped.

``store_tables``: the same files for videos of a store, from its stored features.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from featurestore.errors import FeatureStoreError
from featurestore.video.decode import find_videos
from featurestore.video.detect import FaceDetector
from featurestore.video.faces import FRAMES_DIR, FacesConfig, extract_video, subject_names
from featurestore.video.meta import load_record, record_path
from featurestore.video.sheet import contact_sheet
from jobs.video_predict import (
    DEFAULT_ENCODER,
    DEFAULT_HEADS,
    load_heads,
    predict_outputs,
    video_features,
)
from jobs.video_table import plot_timeline, table_rows, write_table

__all__ = ["EmotionsConfig", "make_detector", "video_emotions", "store_tables", "output_paths"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmotionsConfig:
    encoder: Path = DEFAULT_ENCODER
    heads: Path = DEFAULT_HEADS
    fold: int = 0
    device: str = "cpu"
    batch_size: int = 64
    faces: FacesConfig = field(default_factory=FacesConfig)
    mtl: Path | None = None  # one multi-task checkpoint instead of the heads

    def __post_init__(self):
        if self.fold < 0:
            raise ValueError(f"fold must be >= 0, got {self.fold!r}")


def make_detector(spec: str = "mtcnn", device: str = "cpu", min_face: int = 40,
                  max_side: int = 640) -> FaceDetector:
    """``"mtcnn"`` (weights from the facenet-pytorch wheel, fetched once) or the path of a
    detector file OpenCV can run (a YuNet-style ``.onnx``)."""
    if spec == "mtcnn":
        from encoders.mtcnn import MTCNN, MTCNNConfig

        return MTCNN(MTCNNConfig(min_face=min_face, max_side=max_side), device=device)
    from featurestore.video.detect import OpenCVDetector

    return OpenCVDetector(spec)


def output_paths(out: str | os.PathLike, name: str) -> dict[str, Path]:
    out = Path(out)
    return {"csv": out / f"{name}.csv", "timeline": out / f"{name}.timeline.png",
            "crops": out / f"{name}.crops.png"}


def _write_outputs(out: Path, name: str, fps: float, present: np.ndarray,
                   score: np.ndarray | None, outputs: dict, crop_dir: Path | None) -> Path:
    paths = output_paths(out, name)
    plot_timeline(paths["timeline"], name, fps, present, score, outputs)
    if crop_dir is not None:
        contact_sheet(crop_dir, paths["crops"])
    return write_table(paths["csv"], table_rows(fps, present, score, outputs))  # last: done


def video_emotions(inputs: str | os.PathLike | list, out: str | os.PathLike,
                   detector: FaceDetector, cfg: EmotionsConfig = EmotionsConfig(), *,
                   progress: bool = True) -> tuple[list[Path], dict[str, str]]:
    """Tables (and pictures) of every video of ``inputs``. Returns the CSV paths written or
    found, and ``{video: error}`` of the videos that failed (the others are still done)."""
    from encoders.checkpoint import CheckpointError
    from encoders.encode import FrameEncoder

    out = Path(out)
    paths = [Path(p) for p in inputs] if isinstance(inputs, list | tuple) else find_videos(inputs)
    heads = load_heads(cfg.heads, cfg.fold, cfg.device, mtl=cfg.mtl)
    try:
        encoder = FrameEncoder(cfg.encoder, cfg.device, cfg.batch_size)
    except CheckpointError as err:  # a message naming the folder, not a traceback
        raise FileNotFoundError(f"encoder: {err}") from None
    if encoder.dim != heads.in_dim:
        raise ValueError(f"{cfg.encoder}: the encoder gives {encoder.dim} features, the heads "
                         f"in {heads.where} read {heads.in_dim}")
    tables, failed = [], {}
    for path in paths:
        try:
            names = subject_names(path.stem, cfg.faces.subjects)
            if all(output_paths(out, n)["csv"].is_file() for n in names):
                tables += [output_paths(out, n)["csv"] for n in names]
                continue
            extract_video(path, out, detector, cfg.faces, progress=progress)
            for name in names:
                rec = load_record(record_path(out, name))
                if not rec.present.any():
                    log.warning("%s: no face in any frame; its rows are all face=0", path)
                feats = video_features(encoder, out, name, rec.present)  # (n, D)
                outputs = predict_outputs(heads, feats, cfg.device, name)
                tables.append(_write_outputs(out, name, rec.fps, rec.present, rec.score,
                                             outputs, out / FRAMES_DIR / name))
        except (FeatureStoreError, ValueError, OSError) as err:
            log.info("failed: %s", err)  # returned to the caller, who reports it
            failed[str(path)] = str(err)
    return tables, failed


def store_tables(store: str | os.PathLike, videos: list[str], out: str | os.PathLike, *,
                 heads: str | os.PathLike = DEFAULT_HEADS, fold: int = 0,
                 features: str | None = None, fps: float = 30.0,
                 device: str = "cpu", mtl: str | os.PathLike | None = None) -> list[Path]:
    """The per-frame table and timeline of each of ``videos`` from the store's features (the set
    the heads were trained on unless ``features`` names another); ``mtl``: one multi-task
    checkpoint instead of the heads."""
    import featurestore
    from featurestore.video.store_faces import read_face_arrays

    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps!r}")
    fs = featurestore.open(store)
    h = load_heads(heads, fold, device, mtl=mtl)
    name = features or h.features
    unknown = [v for v in videos if v not in set(fs.videos())]
    if unknown:
        raise ValueError(f"{store}: no video(s) {unknown[:5]} in the store")
    written = []
    for video in videos:
        feats = np.asarray(fs.features(name, video), np.float32)  # (n, D), every frame
        present = fs.present(video)
        arrays = read_face_arrays(store, video)
        score = None if arrays is None else arrays["face_score"]
        outputs = predict_outputs(h, feats, device, video)
        written.append(_write_outputs(Path(out), video, fps, present, score, outputs, None))
    return written
