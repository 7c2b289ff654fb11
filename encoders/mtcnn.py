"""MTCNN face detection with five landmarks: the three-stage cascade over an image pyramid.

P-Net proposes windows at every pyramid scale, R-Net rejects most of them and refines the boxes,
O-Net scores the survivors and places the landmarks (eye centres, nose tip, mouth corners). Boxes
are squared between stages and regressed by each net's deltas; non-maximum suppression runs inside
each scale, across scales, and after each refining stage. Crops and resizing are numpy + OpenCV;
only the nets run in torch.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torchvision.ops import nms

from encoders.mtcnn_nets import load_mtcnn_nets
from featurestore.video.detect import Face, faces_from_arrays

__all__ = ["MTCNNConfig", "MTCNN"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MTCNNConfig:
    """min_face: smallest face side searched, in pixels of the (possibly downscaled) image;
    max_side: frames whose longer side is larger are downscaled to it before detection;
    thresholds: face probability cut of P-, R- and O-Net; factor: pyramid scale step;
    threads: torch threads while detecting (0: leave torch's setting). The nets are tiny: with
    more threads than free cores, OpenMP's waiting made detection 20x slower here (BENCHMARKS.md),
    so one thread is the default."""

    min_face: int = 40
    max_side: int = 640
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)
    factor: float = 0.709
    threads: int = 1

    def __post_init__(self):
        if self.min_face < 12:
            raise ValueError(f"min_face must be >= 12 pixels, got {self.min_face!r}")
        if self.max_side < 48:
            raise ValueError(f"max_side must be >= 48 pixels, got {self.max_side!r}")
        if len(self.thresholds) != 3 or not all(0.0 <= t < 1.0 for t in self.thresholds):
            raise ValueError(f"thresholds must be three values in [0, 1), got {self.thresholds!r}")
        if not 0.1 <= self.factor < 1.0:
            raise ValueError(f"factor must be in [0.1, 1), got {self.factor!r}")
        if self.threads < 0:
            raise ValueError(f"threads must be >= 0, got {self.threads!r}")


def _normalize(images: np.ndarray) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> float (B, 3, H, W) in about [-1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
    return (x - 127.5) * 0.0078125


def _square(boxes: np.ndarray) -> np.ndarray:
    """(n, 4) -> (n, 4) squares with the same centres and the longer side."""
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    x1, y1 = boxes[:, 0] + (w - side) / 2, boxes[:, 1] + (h - side) / 2
    return np.stack([x1, y1, x1 + side, y1 + side], axis=1)


def _regress(boxes: np.ndarray, deltas: np.ndarray) -> np.ndarray:
    """Move each edge by its delta times the box size. boxes, deltas: (n, 4)."""
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    return boxes + deltas * np.stack([w, h, w, h], axis=1)


def _nms(boxes: np.ndarray, scores: np.ndarray, iou: float, by_min: bool = False) -> np.ndarray:
    """Indices kept by greedy NMS; ``by_min`` divides the overlap by the smaller box's area."""
    if len(boxes) == 0:
        return np.zeros(0, np.int64)
    if not by_min:
        return nms(torch.from_numpy(boxes).float(), torch.from_numpy(scores).float(), iou).numpy()
    order, keep = np.argsort(-scores, kind="stable"), []
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    while len(order):
        i, rest = order[0], order[1:]
        keep.append(i)
        iw = np.clip(np.minimum(boxes[i, 2], boxes[rest, 2]) - np.maximum(boxes[i, 0], boxes[rest, 0]), 0, None)
        ih = np.clip(np.minimum(boxes[i, 3], boxes[rest, 3]) - np.maximum(boxes[i, 1], boxes[rest, 1]), 0, None)
        order = rest[iw * ih / np.minimum(area[i], area[rest]) <= iou]
    return np.array(keep, np.int64)


def _crops(image: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """Square crops of ``boxes`` resized to size x size; parts outside the image are black.
    image: (H, W, 3) uint8; boxes (n, 4) -> (n, size, size, 3) uint8."""
    h, w = image.shape[:2]
    out = np.zeros((len(boxes), size, size, 3), np.uint8)
    for k, (x1, y1, x2, y2) in enumerate(np.round(boxes).astype(np.int64)):
        bw, bh = max(int(x2 - x1), 1), max(int(y2 - y1), 1)
        patch = np.zeros((bh, bw, 3), np.uint8)
        sx1, sy1, sx2, sy2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
        if sx2 > sx1 and sy2 > sy1:
            patch[sy1 - y1:sy2 - y1, sx1 - x1:sx2 - x1] = image[sy1:sy2, sx1:sx2]
        out[k] = cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA)
    return out


class MTCNN:
    """Pretrained MTCNN as a :class:`featurestore.video.detect.FaceDetector`."""

    name = "mtcnn"

    def __init__(self, cfg: MTCNNConfig | None = None, weights: str | os.PathLike | None = None,
                 device: str = "cpu"):
        self.cfg = cfg or MTCNNConfig()
        self.device = torch.device(device)
        self.pnet, self.rnet, self.onet = load_mtcnn_nets(weights, device)

    def _scales(self, h: int, w: int) -> list[float]:
        s, side, out = 12.0 / self.cfg.min_face, min(h, w) * 12.0 / self.cfg.min_face, []
        while side >= 12.0:
            out.append(s)
            s, side = s * self.cfg.factor, side * self.cfg.factor
        return out

    def _propose(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Stage 1: P-Net over the pyramid -> squared boxes (n, 4), scores (n,)."""
        h, w = image.shape[:2]
        all_boxes, all_scores = [], []
        for s in self._scales(h, w):
            small = cv2.resize(image, (math.ceil(w * s), math.ceil(h * s)), interpolation=cv2.INTER_AREA)
            prob, reg = self.pnet(_normalize(small[None]).to(self.device))  # (1, h', w'), (1, 4, h', w')
            prob, reg = prob[0].cpu().numpy(), reg[0].cpu().numpy()
            yy, xx = np.nonzero(prob >= self.cfg.thresholds[0])
            if len(yy) == 0:
                continue
            boxes = np.stack([2 * xx, 2 * yy, 2 * xx + 12, 2 * yy + 12], axis=1) / s  # (k, 4)
            boxes = _regress(boxes.astype(np.float64), reg[:, yy, xx].T)
            scores = prob[yy, xx].astype(np.float64)
            keep = _nms(boxes, scores, 0.5)
            all_boxes.append(boxes[keep])
            all_scores.append(scores[keep])
        if not all_boxes:
            return np.zeros((0, 4)), np.zeros(0)
        boxes, scores = np.concatenate(all_boxes), np.concatenate(all_scores)
        keep = _nms(boxes, scores, 0.7)
        return _square(boxes[keep]), scores[keep]

    def detect(self, image: np.ndarray) -> list[Face]:
        """image: (H, W, 3) uint8 RGB -> faces in image pixels, best score first."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
        before = torch.get_num_threads()
        if self.cfg.threads and self.cfg.threads != before:
            torch.set_num_threads(self.cfg.threads)
        try:
            return self._detect(image)
        finally:
            if torch.get_num_threads() != before:
                torch.set_num_threads(before)

    @torch.inference_mode()
    def _detect(self, image: np.ndarray) -> list[Face]:
        h, w = image.shape[:2]
        zoom = min(1.0, self.cfg.max_side / max(h, w))
        small = image if zoom == 1.0 else cv2.resize(
            image, (round(w * zoom), round(h * zoom)), interpolation=cv2.INTER_AREA)
        boxes, _ = self._propose(small)
        if len(boxes):  # stage 2: R-Net on 24x24 crops
            prob, reg = self.rnet(_normalize(_crops(small, boxes, 24)).to(self.device))
            prob, reg = prob.cpu().numpy().astype(np.float64), reg.cpu().numpy()
            ok = prob >= self.cfg.thresholds[1]
            boxes, prob, reg = boxes[ok], prob[ok], reg[ok]
            keep = _nms(boxes, prob, 0.7)
            boxes = _square(_regress(boxes[keep], reg[keep]))
        if len(boxes) == 0:
            return []
        prob, reg, pts = self.onet(_normalize(_crops(small, boxes, 48)).to(self.device))  # stage 3
        prob, reg, pts = prob.cpu().numpy().astype(np.float64), reg.cpu().numpy(), pts.cpu().numpy()
        ok = prob >= self.cfg.thresholds[2]
        boxes, prob, reg, pts = boxes[ok], prob[ok], reg[ok], pts[ok]
        size = (boxes[:, 2:] - boxes[:, :2])  # (n, 2) w, h of the box the landmarks refer to
        marks = np.stack([boxes[:, None, 0] + size[:, None, 0] * pts[:, :5],
                          boxes[:, None, 1] + size[:, None, 1] * pts[:, 5:]], axis=2)  # (n, 5, 2)
        boxes = _regress(boxes, reg)
        keep = _nms(boxes, prob, 0.7, by_min=True)
        return faces_from_arrays(boxes[keep] / zoom, prob[keep], marks[keep] / zoom)
