"""Digits drawn as a hand draws them: pen strokes along a digit's skeleton, each with its own wobble.

A font draws every '4' of a family alike; numbers painted, chalked or written with a marker by hand differ
from writer to writer and digit to digit: open and closed 4s, 1s with and without a flag or a foot, 7s
with a bar, flat-topped 3s, wobbling strokes of uneven width, a baseline that rises. `SyntheticConfig.
hand_prob` draws that share of the synthetic numbers with these strokes instead of a font.

Skeletons are polylines in units of the digit's height (x right, y down, the digit in [0, WIDTH] x [0, 1]);
a `Hand` (one writer: pen width, slant, wobble, the variant of each digit) is drawn once per number, and
every digit it writes gets its own jitter, so that the same writer's two 4s differ a little, as they do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

WIDTH = 0.6  # skeleton width per unit height; a Hand scales it


def _arc(cx: float, cy: float, rx: float, ry: float, a0: float, a1: float, n: int = 0) -> np.ndarray:
    """Points on an ellipse from angle a0 to a1 in degrees (0 = right, 90 = down: y points down)."""
    n = n or max(6, int(abs(a1 - a0) / 12))
    t = np.radians(np.linspace(a0, a1, n))
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)


def _line(*points: tuple[float, float]) -> np.ndarray:
    return np.array(points, dtype=np.float64)


def _join(*parts: np.ndarray) -> np.ndarray:
    return np.concatenate(parts, axis=0)


def _zero(v: int) -> list[np.ndarray]:
    start = 270 + (0 if v == 0 else 20)
    return [_arc(0.3, 0.5, 0.28, 0.49, start, start + 365)]


def _one(v: int) -> list[np.ndarray]:
    stem = _line((0.32, 0.0), (0.3, 1.0))
    if v == 0:  # a plain stroke
        return [stem]
    flag = _line((0.08, 0.28), (0.32, 0.0))
    if v == 1:  # with a flag
        return [_join(flag, stem[1:])]
    return [_join(flag, stem[1:]), _line((0.08, 1.0), (0.52, 1.0))]  # flag and foot


def _two(v: int) -> list[np.ndarray]:
    top = _arc(0.3, 0.28, 0.27, 0.26, 200, 390)
    if v == 0:  # straight diagonal to a flat base
        return [_join(top, _line((0.03, 1.0), (0.6, 1.0)))]
    # a loop at the foot, as many hands write it
    return [_join(top, _line((0.05, 0.93)), _arc(0.12, 0.92, 0.08, 0.08, 180, 350), _line((0.6, 0.98)))]


def _three(v: int) -> list[np.ndarray]:
    low = _arc(0.3, 0.73, 0.29, 0.27, 270, 510)
    if v == 0:  # two bowls
        return [_join(_arc(0.29, 0.26, 0.25, 0.24, 210, 450), low)]
    return [_join(_line((0.05, 0.0), (0.56, 0.0), (0.25, 0.42)), _arc(0.3, 0.71, 0.29, 0.29, 280, 510))]  # flat top


def _four(v: int) -> list[np.ndarray]:
    if v == 0:  # closed: one stroke down the stem's top to the left and across
        return [_line((0.46, 1.0), (0.46, 0.0), (0.02, 0.68), (0.62, 0.68))]
    # open: a separate stem
    return [_line((0.16, 0.0), (0.05, 0.66), (0.62, 0.66)), _line((0.46, 0.28), (0.46, 1.0))]


def _five(v: int) -> list[np.ndarray]:
    bowl = _arc(0.3, 0.68, 0.28, 0.31, 235, 510)
    if v == 0:  # one stroke: the bar, down, the bowl
        return [_join(_line((0.55, 0.0), (0.1, 0.0), (0.08, 0.44)), bowl)]
    return [_join(_line((0.1, 0.0), (0.08, 0.44)), bowl), _line((0.1, 0.0), (0.56, 0.02))]  # the bar on its own


def _six(v: int) -> list[np.ndarray]:
    sweep = _arc(0.36, 0.56, 0.33, 0.56, 290, 170) if v == 0 else _line((0.46, 0.0), (0.08, 0.62))
    return [_join(sweep, _arc(0.31, 0.72, 0.26, 0.27, 170, -190))]


def _seven(v: int) -> list[np.ndarray]:
    strokes = [_line((0.02, 0.0), (0.6, 0.0), (0.2, 1.0))]
    if v == 1:  # with a bar
        strokes.append(_line((0.2, 0.52), (0.52, 0.5)))
    if v == 2:  # a hook at the top left
        strokes = [_line((0.02, 0.15), (0.02, 0.0), (0.6, 0.0), (0.22, 1.0))]
    return strokes


def _eight(v: int) -> list[np.ndarray]:
    if v == 0:  # two loops
        return [_arc(0.3, 0.26, 0.22, 0.24, 90, 450), _arc(0.3, 0.74, 0.28, 0.26, 270, 630)]
    # one stroke crossing itself in the middle, the lower loop wider
    t = np.linspace(0, 2 * np.pi, 48)
    rx = np.where(np.cos(t) > 0, 0.22, 0.28)
    return [np.stack([0.3 + rx * np.sin(2 * t) * 1.05, 0.5 - 0.49 * np.cos(t)], axis=1)]


def _nine(v: int) -> list[np.ndarray]:
    loop = _arc(0.3, 0.3, 0.27, 0.29, 0, 360)
    if v == 0:  # straight stem
        return [_join(loop, _line((0.56, 1.0)))]
    return [_join(loop, _arc(0.12, 0.4, 0.45, 0.6, 0, 100))]  # curved tail


SKELETONS = (_zero, _one, _two, _three, _four, _five, _six, _seven, _eight, _nine)
VARIANTS = (2, 3, 2, 2, 2, 2, 2, 3, 2, 2)


@dataclass(frozen=True)
class Hand:
    """One writer: what stays the same across the digits of one number."""

    pen: float  # stroke width per unit height
    slant: float  # horizontal shear (positive leans right)
    wobble: float  # amplitude of a stroke's slow wander, per unit height
    width: float  # digit width per unit height
    rise: float  # baseline change from one digit to the next, per unit height
    chalk: float  # share of a stroke's pixels missing (chalk, dry brush); 0 = solid
    variants: tuple[int, ...]  # the variant of each digit 0..9


def pick_hand(rng: np.random.Generator) -> Hand:
    return Hand(
        pen=float(rng.uniform(0.06, 0.17)),
        slant=float(np.clip(rng.normal(0.08, 0.12), -0.2, 0.35)),
        wobble=float(rng.uniform(0.0, 0.035)),
        width=float(rng.uniform(0.45, 0.7)),
        rise=float(np.clip(rng.normal(0, 0.06), -0.15, 0.15)),
        chalk=float(rng.uniform(0.1, 0.5)) if rng.random() < 0.25 else 0.0,
        variants=tuple(int(rng.integers(k)) for k in VARIANTS),
    )


def hand_glyph(digit: int, hand: Hand, height: int, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """The ink mask (float32 0..1, cropped tight) of `digit` written by `hand` about `height` px tall, and
    the offset of its top from the line's top (the digit's own drift and the writer's wander)."""
    if not 0 <= digit <= 9:
        raise ValueError(f"hand_glyph: a digit 0..9 expected, got {digit}")
    strokes = SKELETONS[digit](hand.variants[digit])
    h = max(8.0, float(height))
    pen = max(1.0, hand.pen * h)
    # this digit's own size, lean and rotation around the writer's
    sx = hand.width / WIDTH * float(np.exp(rng.normal(0, 0.06)))
    sy = float(np.exp(rng.normal(0, 0.04)))
    shear = hand.slant + float(rng.normal(0, 0.04))
    angle = math.radians(float(rng.normal(0, 3.0)))
    cos, sin = math.cos(angle), math.sin(angle)
    pad = int(math.ceil(pen + 0.25 * h))
    drawn = []
    for pts in strokes:
        pts = _dense(pts)
        t = np.linspace(0, 1, len(pts))[:, None]
        # a slow wander along the stroke, and a small independent shift of the whole stroke
        wander = np.zeros_like(pts)
        for _ in range(2):
            f, phase = rng.uniform(0.5, 2.0), rng.uniform(0, 2 * np.pi, size=2)
            wander += hand.wobble * np.sin(2 * np.pi * f * t + phase)
        pts = pts + wander + rng.normal(0, 0.015, size=2)
        x = (pts[:, 0] - WIDTH / 2) * sx
        y = (pts[:, 1] - 0.5) * sy
        x = x - shear * y
        xr, yr = x * cos - y * sin, x * sin + y * cos
        drawn.append(np.stack([xr, yr], axis=1) * h)
    allp = np.concatenate(drawn)
    x0, y0 = allp.min(axis=0) - pad
    x1, y1 = allp.max(axis=0) + pad
    img = Image.new("L", (int(math.ceil(x1 - x0)) + 1, int(math.ceil(y1 - y0)) + 1), 0)
    draw = ImageDraw.Draw(img)
    for pts in drawn:
        pts = pts - [x0, y0]
        # the pen's pressure varies slowly along a stroke
        n = len(pts)
        press = 1 + 0.25 * np.sin(np.linspace(0, rng.uniform(1, 4), n) + rng.uniform(0, 2 * np.pi))
        for i in range(n):
            r = pen * press[i] / 2
            draw.ellipse([pts[i, 0] - r, pts[i, 1] - r, pts[i, 0] + r, pts[i, 1] + r], fill=255)
            if i:
                draw.line([tuple(pts[i - 1]), tuple(pts[i])], fill=255, width=max(1, int(round(2 * r))))
    mask = np.asarray(img, dtype=np.float32) / 255.0
    if hand.chalk:
        mask = mask * (rng.random(mask.shape) >= hand.chalk)
    rows, cols = np.nonzero(mask > 0)
    if not len(rows):  # cannot happen with a pen of >= 1 px, but never return an empty glyph
        return np.ones((int(h), max(1, int(h) // 3)), np.float32), 0.0
    mask = mask[rows.min(): rows.max() + 1, cols.min(): cols.max() + 1]
    # where the glyph's top sits relative to the nominal line top (y = 0 at the digit's top)
    top = y0 + rows.min() + h / 2
    return np.ascontiguousarray(mask), float(top)


def _dense(pts: np.ndarray, step: float = 0.04) -> np.ndarray:
    """The polyline with points at most `step` apart, so that wander and pressure act along it."""
    out = [pts[:1]]
    for a, b in zip(pts[:-1], pts[1:]):
        k = max(1, int(math.ceil(np.hypot(*(b - a)) / step)))
        out.append(a + (b - a) * np.linspace(0, 1, k + 1)[1:, None])
    return np.concatenate(out)
