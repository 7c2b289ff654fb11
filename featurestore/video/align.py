"""Five-point similarity alignment of a face to a fixed 112x112 crop.

The template is the widely used five-point layout for 112x112 face crops (eye centres, nose tip,
mouth corners; the one ArcFace-style recognisers and Aff-Wild2-style ``cropped_aligned`` crops use).
The transform is the least-squares similarity (rotation, uniform scale, translation; no shear)
from the detected landmarks to the template, solved in closed form (Umeyama, 1991).
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["TEMPLATE_112", "CROP_SIZE", "similarity_transform", "align_face", "transform_points"]

CROP_SIZE = 112
# (5, 2) x, y in a 112x112 crop: image-left eye, image-right eye, nose tip, mouth left, mouth right
TEMPLATE_112 = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                         [41.5493, 92.3655], [70.7299, 92.2041]], dtype=np.float64)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The (2, 3) matrix M of the similarity that best maps ``src`` onto ``dst`` (least squares).

    src, dst: (k, 2) point sets, k >= 2. ``dst ~= src @ M[:, :2].T + M[:, 2]``.
    """
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(f"need two (k, 2) point sets with k >= 2, got {src.shape} and {dst.shape}")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s_c, d_c = src - mu_s, dst - mu_d  # (k, 2)
    var_s = (s_c ** 2).sum() / len(src)
    if var_s <= 1e-12:
        raise ValueError("source points coincide: no similarity transform")
    u, sv, vt = np.linalg.svd(d_c.T @ s_c / len(src))  # (2, 2) cross-covariance
    d = np.array([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt)) or 1.0])
    rot = u @ np.diag(d) @ vt  # (2, 2), a proper rotation (no reflection)
    scale = float((sv * d).sum() / var_s)
    t = mu_d - scale * rot @ mu_s
    return np.hstack([scale * rot, t[:, None]])  # (2, 3)


def transform_points(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) affine matrix to (k, 2) points."""
    return np.asarray(pts, np.float64) @ m[:, :2].T + m[:, 2]


def align_face(image: np.ndarray, landmarks: np.ndarray, size: int = CROP_SIZE
               ) -> tuple[np.ndarray, np.ndarray]:
    """Warp ``image`` so that ``landmarks`` land on the template scaled to ``size``.

    image: (H, W, 3) uint8; landmarks: (5, 2). Returns the (size, size, 3) crop (black outside the
    frame) and the (2, 3) transform used.
    """
    m = similarity_transform(landmarks, TEMPLATE_112 * (size / CROP_SIZE))
    crop = cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return crop, m
