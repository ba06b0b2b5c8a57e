"""Texture-rich scenes for training: crops chosen for their detail, and drawn scene structure
(stripes, fences, wires, text) that belongs to the background and must pass through the model.

Rain-free samples made this way teach the model that thin bright lines of the scene are not
rain; the same crops under synthetic rain teach it to separate the two.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

TEXT_CHARS = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"


def detail(img: np.ndarray) -> float:
    """Mean gradient magnitude of the grey image (a cheap texture score)."""
    grey = cv2.cvtColor(np.ascontiguousarray(img, dtype=np.float32), cv2.COLOR_RGB2GRAY)
    gx, gy = cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1)
    return float(np.sqrt(gx * gx + gy * gy).mean())


def textured_window(img: np.ndarray, crop: int, rng: np.random.Generator,
                    candidates: int = 4) -> tuple[int, int]:
    """Top-left corner of the most detailed of ``candidates`` random ``crop`` windows."""
    h, w = img.shape[:2]
    best, corner = -1.0, (0, 0)
    for _ in range(candidates):
        y, x = int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1))
        score = detail(img[y : y + crop : 2, x : x + crop : 2])
        if score > best:
            best, corner = score, (y, x)
    return corner


def _colour(rng: np.random.Generator, bright: bool) -> tuple[float, float, float]:
    """A bright near-white or a dark colour, slightly tinted (stripes, text)."""
    base = rng.uniform(0.75, 1.0) if bright else rng.uniform(0.0, 0.3)
    tint = rng.uniform(-0.08, 0.08, size=3)
    return tuple(float(np.clip(base + t, 0, 1)) for t in tint)  # type: ignore[return-value]


def _unlike_rain(rng: np.random.Generator) -> tuple[float, float, float]:
    """A dark or saturated colour for thin lines: rain only adds grey light, so thin bright grey
    lines are left to the rain sources and never taught as scene structure."""
    if rng.random() < 0.5:
        return _colour(rng, bright=False)
    hsv = np.array([[[rng.uniform(0, 180), rng.uniform(150, 255), rng.uniform(90, 230)]]], np.uint8)
    rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0] / 255.0
    return tuple(float(v) for v in rgb)  # type: ignore[return-value]


def _stripes(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Periodic stripes (zebra, blinds, railings), slightly warped, over part of the crop."""
    h, w = img.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    a = rng.uniform(0, math.pi)
    period = rng.uniform(6.0, 20.0)
    warp = rng.uniform(0, 6) * np.sin(yy / rng.uniform(15, 60) + rng.uniform(0, 6.3))
    phase = (xx * math.cos(a) + yy * math.sin(a) + warp) / period
    duty = rng.uniform(0.3, 0.5)
    mask = (np.mod(phase, 1.0) < duty).astype(np.float32)
    mask = cv2.GaussianBlur(mask, (0, 0), 0.6)
    region = np.zeros((h, w), np.float32)
    y0, x0 = int(rng.integers(0, h // 2)), int(rng.integers(0, w // 2))
    region[y0 : y0 + int(rng.integers(h // 2, h + 1)), x0 : x0 + int(rng.integers(w // 2, w + 1))] = 1.0
    m = (mask * region)[..., None]
    return img * (1 - m) + m * np.array(_colour(rng, bool(rng.random() < 0.6)), np.float32)


def _lines(img: np.ndarray, rng: np.random.Generator, fence: bool) -> np.ndarray:
    """A fence (two families of parallel bars) or a few long wires, opaque, dark or coloured, and
    crossing the whole crop."""
    h, w = img.shape[:2]
    out = np.ascontiguousarray(img.copy())
    families = 2 if fence else 1
    for _ in range(families):
        a = rng.uniform(-math.pi / 2, math.pi / 2)
        count = int(rng.integers(3, 9)) if fence else int(rng.integers(1, 4))
        gap = rng.uniform(8, 25)
        thick = int(rng.integers(2, 5)) if fence else int(rng.integers(1, 3))
        colour = _unlike_rain(rng)
        dx, dy = math.cos(a), math.sin(a)
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        for k in range(count):
            off = (k - count / 2) * gap
            px, py = cx - dy * off, cy + dx * off
            p1 = (int(px - dx * 2 * (h + w)), int(py - dy * 2 * (h + w)))
            p2 = (int(px + dx * 2 * (h + w)), int(py + dy * 2 * (h + w)))
            cv2.line(out, p1, p2, colour, thick, cv2.LINE_AA)
    return out


def _text(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    out = img
    for _ in range(int(rng.integers(1, 4))):
        word = "".join(TEXT_CHARS[int(i)] for i in rng.integers(0, len(TEXT_CHARS), int(rng.integers(2, 7))))
        scale = rng.uniform(0.3, 1.2)
        org = (int(rng.integers(0, max(1, w - 20))), int(rng.integers(10, h)))
        mask = np.zeros((h, w), np.uint8)  # OpenCV draws text on 8-bit images only
        thickness = int(rng.integers(1, 3))
        cv2.putText(mask, word, org, cv2.FONT_HERSHEY_SIMPLEX, scale, 255, thickness, cv2.LINE_AA)
        m = (mask.astype(np.float32) / 255)[..., None]
        out = out * (1 - m) + m * np.array(_colour(rng, bool(rng.random() < 0.6)), np.float32)
    return out


def scene_structure(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``img`` (HxWx3 float in [0, 1]) with one or two drawn structures that are part of the scene."""
    out = np.ascontiguousarray(img, dtype=np.float32)
    for _ in range(int(rng.integers(1, 3))):
        kind = int(rng.integers(4))
        if kind == 0:
            out = _stripes(out, rng)
        elif kind in (1, 2):
            out = _lines(out, rng, fence=kind == 1)
        else:
            out = _text(out, rng)
    return np.clip(out, 0.0, 1.0).astype(np.float32)
