"""Procedural faces: a pure drawer whose picture follows valence, arousal, AUs and expression.

Every shape is built as a polygon in a canonical 112x112 frame, then moved by the head pose
(rotation, scale, shift) before it is drawn, so pose costs nothing extra and nothing is resampled.
The picture is drawn at twice the size and box-downsampled (cheap anti-aliasing). Lighting is a
directional gradient, and the grey mean/std of every image is then set to values drawn
independently of the labels, so global brightness/contrast never encodes an expression.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

# AU order of the Aff-Wild2 annotation files (featurestore.affwild2.AU_NAMES).
AU1, AU2, AU4, AU6, AU7, AU10, AU12, AU15, AU23, AU24, AU25, AU26 = range(12)
# EXPR order of the Aff-Wild2 annotation files (featurestore.affwild2.EXPR_CLASSES).
NEUTRAL, ANGER, DISGUST, FEAR, HAPPINESS, SADNESS, SURPRISE, OTHER = range(8)

# What each expression adds to the AU intensities the drawer uses, so the drawing follows it.
_EXPR_AU_BOOST: dict[int, dict[int, float]] = {
    ANGER: {AU4: 0.6, AU23: 0.4, AU7: 0.3},
    DISGUST: {AU10: 0.7, AU4: 0.2},
    FEAR: {AU1: 0.6, AU4: 0.3, AU25: 0.4},
    HAPPINESS: {AU12: 0.5, AU6: 0.4},
    SADNESS: {AU1: 0.5, AU15: 0.6},
    SURPRISE: {AU1: 0.5, AU2: 0.6, AU26: 0.5},
}
_CANVAS = 112.0
_SS = 2  # supersampling factor


@dataclass(frozen=True)
class Identity:
    """Per-video appearance: colours are RGB 0..255, lengths are pixels of the 112 frame."""

    skin: tuple[int, int, int]
    hair: tuple[int, int, int]
    hair_style: int  # 0 short cap, 1 long, 2 none
    lip: tuple[int, int, int]
    iris: tuple[int, int, int]
    bg_top: tuple[int, int, int]
    bg_bottom: tuple[int, int, int]
    bg_blob: tuple[int, int, int, int, int, int]  # r, g, b, x, y, radius
    face_rx: float
    face_ry: float
    eye_dx: float
    eye_dy: float
    brow_width: int
    mouth_w: float


@dataclass(frozen=True)
class FaceParams:
    """Everything one frame shows. ``au`` holds 12 intensities in [0, 1] (AU_NAMES order)."""

    identity: Identity
    valence: float = 0.0
    arousal: float = 0.0
    au: tuple[float, ...] = field(default=(0.0,) * 12)
    expr: int = NEUTRAL
    pose: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 1.0)  # dx, dy, degrees, scale
    light: tuple[float, float] = (0.0, 0.0)  # gradient strength along x and y
    brightness: float = 120.0  # target grey mean
    contrast: float = 50.0  # target grey std
    noise: float = 6.0  # per-pixel Gaussian noise std
    size: int = 112
    expr_strength: float = 1.0  # 0..1: how far the expression has risen (onset / offset)
    burst: int = 0  # 0 none, 1 occluder over the face, 2 strong blur, 3 head turned away


def _colour(rng: np.random.Generator, lo: int, hi: int) -> tuple[int, int, int]:
    return tuple(int(c) for c in rng.integers(lo, hi, size=3))  # type: ignore[return-value]


def random_identity(rng: np.random.Generator) -> Identity:
    """Draw a random face identity, hair and background."""
    tone = rng.uniform(0.25, 1.0)
    skin = (int(95 + 150 * tone), int(60 + 140 * tone), int(40 + 130 * tone))
    return Identity(
        skin=skin,
        hair=_colour(rng, 10, 140),
        hair_style=int(rng.integers(0, 3)),
        lip=(int(rng.integers(130, 200)), int(rng.integers(50, 100)), int(rng.integers(50, 100))),
        iris=_colour(rng, 20, 120),
        bg_top=_colour(rng, 90, 170),
        bg_bottom=_colour(rng, 90, 170),
        bg_blob=(*_colour(rng, 100, 160), int(rng.integers(0, 112)), int(rng.integers(0, 112)),
                 int(rng.integers(10, 40))),
        face_rx=float(rng.uniform(34, 38)),
        face_ry=float(rng.uniform(42, 46)),
        eye_dx=float(rng.uniform(12, 16)),
        eye_dy=float(rng.uniform(-2, 2)),
        brow_width=int(rng.integers(2, 4)),
        mouth_w=float(rng.uniform(9, 12)),
    )


@functools.lru_cache(maxsize=64)
def _background(ident: Identity, px: int) -> Image.Image:
    """The static background of one identity at ``px`` pixels (cached: drawn once per video)."""
    t = np.linspace(0.0, 1.0, px, dtype=np.float32)[:, None, None]  # (px, 1, 1)
    top, bottom = np.array(ident.bg_top, np.float32), np.array(ident.bg_bottom, np.float32)
    arr = (1 - t) * top + t * bottom  # (px, 1, 3)
    img = Image.fromarray(np.repeat(arr, px, axis=1).astype(np.uint8))  # (px, px, 3)
    r, g, b, x, y, rad = ident.bg_blob
    k = px / _CANVAS
    ImageDraw.Draw(img).ellipse([(x - rad) * k, (y - rad) * k, (x + rad) * k, (y + rad) * k],
                                fill=(r, g, b))
    return img


def _ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 20) -> np.ndarray:
    th = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([cx + rx * np.cos(th), cy + ry * np.sin(th)], axis=1)  # (n, 2)


def _curve(p0: tuple, mid: tuple, p1: tuple, n: int = 9) -> np.ndarray:
    """Quadratic Bezier from p0 to p1 passing through ``mid`` at t=0.5: (n, 2)."""
    p0a, p1a, ma = np.asarray(p0, float), np.asarray(p1, float), np.asarray(mid, float)
    ctrl = 2 * ma - (p0a + p1a) / 2
    t = np.linspace(0, 1, n)[:, None]  # (n, 1)
    return (1 - t) ** 2 * p0a + 2 * (1 - t) * t * ctrl + t**2 * p1a


def _effective_au(p: FaceParams) -> np.ndarray:
    au = np.clip(np.asarray(p.au, np.float64), 0.0, 1.0)  # (12,)
    for k, boost in _EXPR_AU_BOOST.get(p.expr, {}).items():
        au[k] += boost * p.expr_strength
    return np.clip(au, 0.0, 1.3)


def face_shapes(p: FaceParams) -> list[tuple[str, np.ndarray, tuple, int]]:
    """The face as (kind, points (k, 2) in the canonical 112 frame, colour, width) shapes.

    kind is "poly" (filled) or "line"; drawn in list order.
    """
    idt, v, a = p.identity, float(p.valence), float(p.arousal)
    au = _effective_au(p)
    cx, cy = 56.0, 58.0
    skin = np.array(idt.skin, float)
    dark = tuple(int(c) for c in skin * 0.55)
    shapes: list[tuple[str, np.ndarray, tuple, int]] = []
    # neck, long hair behind, face (jaw drops with AU26), hair cap
    shapes.append(("poly", np.array([[cx - 13, cy + 25], [cx + 13, cy + 25], [cx + 16, 112 + 10],
                                     [cx - 16, 112 + 10]]), tuple(int(c) for c in skin * 0.8), 0))
    if idt.hair_style == 1:
        shapes.append(("poly", _ellipse(cx, cy + 5, idt.face_rx + 6, idt.face_ry + 8), idt.hair, 0))
    face = _ellipse(cx, cy, idt.face_rx, idt.face_ry, 28)
    face[:, 1] += np.where(face[:, 1] > cy, 0.08 * au[AU26] * (face[:, 1] - cy), 0.0)
    shapes.append(("poly", face, idt.skin, 0))
    if idt.hair_style != 2:
        cap = _ellipse(cx, cy - 6, idt.face_rx + 3, idt.face_ry + 2, 28)
        cap = cap[cap[:, 1] < cy - idt.face_ry * 0.45]
        shapes.append(("poly", cap, idt.hair, 0))
    shapes += _eyes_and_brows(p, au, cx, cy, dark)
    shapes += _mouth_and_nose(p, au, v, a, cx, cy, dark)
    return shapes


def _eyes_and_brows(p: FaceParams, au: np.ndarray, cx: float, cy: float, dark: tuple) -> list:
    idt, v, a = p.identity, float(p.valence), float(p.arousal)
    wide = 0.5 * p.expr_strength if p.expr in (FEAR, SURPRISE) else 0.0
    ey = cy - 8 + idt.eye_dy
    eh = 3.4 * (1 + 0.6 * a + wide) * (1 - 0.35 * au[AU6] - 0.3 * au[AU7])
    eh = max(eh, 0.7)
    out: list = []
    for side in (-1.0, 1.0):
        ex = cx + side * idt.eye_dx
        eye = _ellipse(ex, ey, 6.5, eh, 16)
        low = eye[:, 1] > ey  # happy eyes: the lower lid rises with positive valence
        eye[low, 1] = ey + (eye[low, 1] - ey) * (1 - 0.55 * max(v, 0.0))
        out.append(("poly", eye, (240, 240, 235), 0))
        out.append(("poly", _ellipse(ex, ey, min(2.8, eh), min(2.8, eh), 10), p.identity.iris, 0))
        out.append(("line", eye[eye[:, 1] <= ey], (30, 25, 25), 1))
        # cheeks rise and redden with AU6
        ck = np.array(idt.skin, float) * (1 - 0.25 * au[AU6]) + np.array([200, 60, 60]) * 0.25 * au[AU6]
        out.append(("poly", _ellipse(ex + side * 3, ey + 13 - 4 * au[AU6], 6, 3.5, 12),
                    tuple(int(c) for c in ck), 0))
        by = ey - 8
        inner = (cx + side * (idt.eye_dx - 6 + 2.5 * au[AU4]),
                 by + 3.5 * au[AU4] - 4 * au[AU1] - 3.0 * a)
        outer = (cx + side * (idt.eye_dx + 7), by - 4 * au[AU2] - 3.0 * a + 1.5 * au[AU4])
        mid = ((inner[0] + outer[0]) / 2, (inner[1] + outer[1]) / 2 - 1.5 - 1.5 * au[AU2])
        width = idt.brow_width + (1 if p.expr == ANGER and p.expr_strength > 0.5 else 0)
        out.append(("line", _curve(inner, mid, outer, 5), p.identity.hair, width))
    if au[AU4] > 0.3:  # frown lines between the brows
        for dx in (-2.0, 2.0):
            out.append(("line", np.array([[cx + dx, ey - 9], [cx + dx * 0.7, ey - 4]]), dark, 1))
    return out


def _mouth_and_nose(p: FaceParams, au: np.ndarray, v: float, a: float, cx: float, cy: float,
                    dark: tuple) -> list:
    idt = p.identity
    ny = cy + 9
    out: list = [("line", np.array([[cx, cy - 4], [cx - 2.5, ny], [cx + 2.5, ny]]), dark, 1)]
    if au[AU10] > 0.3 or (p.expr == DISGUST and p.expr_strength > 0.5):  # nose wrinkle
        for side in (-1.0, 1.0):
            out.append(("line", np.array([[cx + side * 2, cy - 1], [cx + side * 5, cy + 2]]), dark, 1))
    my = cy + 22 + 2 * au[AU26]
    mw = idt.mouth_w * (1 + 0.3 * au[AU12] + 0.1 * max(v, 0) - 0.2 * au[AU23] - 0.15 * au[AU24])
    if p.expr == SURPRISE:
        mw *= 1.0 - 0.2 * p.expr_strength
    lift = 7.0 * v + 4.0 * au[AU12] - 4.5 * au[AU15]
    asym = 3.0 * p.expr_strength if p.expr == OTHER else 0.0
    left, right = (cx - mw, my - lift), (cx + mw, my - lift - asym)
    opening = float(np.clip(3.0 * max(a, 0) + 3 * au[AU25] + 5 * au[AU26] - 1.5 * au[AU24], 0, 14))
    lip = max(2.6 * (1 - 0.45 * au[AU23] - 0.45 * au[AU24]), 0.8)
    up_in, lo_in = my - opening / 2 - 0.8 * au[AU10], my + opening / 2
    up_out, lo_out = up_in - lip - 1.5 * au[AU10], lo_in + 1.2 * lip
    upper = _curve(left, (cx, up_out), right)
    lower = _curve(right, (cx, lo_out), left)
    out.append(("poly", np.concatenate([upper, lower]), idt.lip, 0))
    if opening > 0.6:
        cav = np.concatenate([_curve(left, (cx, up_in), right), _curve(right, (cx, lo_in), left)])
        out.append(("poly", cav, (45, 18, 20), 0))
        if opening > 3:
            teeth = _curve(left, (cx, up_in), right)
            out.append(("line", teeth + [0, 1.0], (225, 225, 215), 2))
    else:
        out.append(("line", _curve(left, (cx, my), right), (70, 30, 30), 1))
    return out


def _pose_matrix(pose: tuple[float, float, float, float], px: int) -> np.ndarray:
    """Affine (2, 3) from canonical 112 coordinates to pixels of a ``px`` canvas."""
    dx, dy, deg, scale = pose
    k = px / _CANVAS
    th = math.radians(deg)
    c, s = math.cos(th) * scale * k, math.sin(th) * scale * k
    ox, oy = 56.0, 58.0
    return np.array([[c, -s, (ox + dx) * k - c * ox + s * oy],
                     [s, c, (oy + dy) * k - s * ox - c * oy]])


def _occluder(p: FaceParams) -> list:
    """A hand in front of the face: covers eyes, nose and mouth."""
    hand = tuple(int(c) for c in np.array(p.identity.skin, float) * 0.9 + 12)
    palm = _ellipse(56.0, 66.0, 33.0, 28.0, 24)
    fingers = [("poly", _ellipse(56.0 + dx, 40.0, 6.0, 12.0, 12), hand, 0) for dx in (-18, -6, 6, 18)]
    return [("poly", palm, hand, 0), *fingers]


def _turned_away(p: FaceParams) -> list:
    """The back of the head: neck, a hair-coloured head and one ear; no facial feature."""
    idt, cx, cy = p.identity, 56.0, 58.0
    skin = tuple(int(c) for c in np.array(idt.skin, float) * 0.8)
    return [("poly", np.array([[cx - 13, cy + 25], [cx + 13, cy + 25], [cx + 16, 122],
                               [cx - 16, 122]]), skin, 0),
            ("poly", _ellipse(cx + 33, cy, 5, 9, 12), idt.skin, 0),
            ("poly", _ellipse(cx, cy - 2, idt.face_rx + 2, idt.face_ry + 1, 28), idt.hair, 0)]


def draw_face(params: FaceParams, rng: np.random.Generator) -> np.ndarray:
    """Draw one frame: returns (size, size, 3) uint8 RGB. ``rng`` supplies the pixel noise only."""
    px = params.size * _SS
    img = _background(params.identity, px).copy()
    draw = ImageDraw.Draw(img)
    m = _pose_matrix(params.pose, px)
    shapes = _turned_away(params) if params.burst == 3 else face_shapes(params)
    if params.burst == 1:
        shapes = shapes + _occluder(params)
    for kind, pts, colour, width in shapes:
        xy = pts @ m[:, :2].T + m[:, 2]  # (k, 2) pixels
        flat = [tuple(q) for q in xy.tolist()]
        if kind == "poly":
            if len(flat) >= 3:
                draw.polygon(flat, fill=tuple(colour))
        else:
            draw.line(flat, fill=tuple(colour), width=max(1, int(width * _SS)))
    img = img.resize((params.size, params.size), Image.Resampling.BOX)
    if params.burst == 2:  # motion / focus blur: only the coarse layout survives
        img = img.filter(ImageFilter.GaussianBlur(radius=6.0 * params.size / _CANVAS))
    arr = np.asarray(img, dtype=np.float32)  # (H, W, 3)
    return _light_and_noise(arr, params, rng)


@functools.lru_cache(maxsize=4)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    g = np.linspace(-1.0, 1.0, size, dtype=np.float32)
    return g[None, :, None], g[:, None, None]  # (1, W, 1), (H, 1, 1)


def _light_and_noise(arr: np.ndarray, p: FaceParams, rng: np.random.Generator) -> np.ndarray:
    """Directional light, then grey mean/std set to the label-independent targets, then noise."""
    gx, gy = _grid(p.size)
    arr = arr * (1.0 + p.light[0] * gx + p.light[1] * gy)  # (H, W, 3)
    grey = arr.mean(axis=2)  # (H, W)
    mean, std = float(grey.mean()), float(grey.std()) + 1e-3
    arr = (arr - mean) * (p.contrast / std) + p.brightness
    arr += rng.standard_normal(arr.shape, dtype=np.float32) * p.noise
    return np.clip(arr + 0.5, 0, 255).astype(np.uint8)
