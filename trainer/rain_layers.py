"""Rain transplanted from real pairs: each pair's rain layer composited onto other clean photos.

A pair's layer is ``rainy - clean`` per channel. Where ``clean + rain`` clipped at 1 the
difference is only a lower bound on the rain. The pairs' rain is achromatic (the same value in
R, G and B; measured on the 18 pairs), so a clipped channel takes the value of the pixel's
unclipped channels; where all three clipped, the grey value is inpainted from the surrounding
unclipped rain and never lower than the bound ``1 - clean``. Put back onto its own clean image,
the layer reproduces the rainy image exactly (after the clip at 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

CLIP_LEVEL = 254.5 / 255  # an 8-bit channel at 255 may have clipped


def rain_layer(rainy: np.ndarray, clean: np.ndarray) -> np.ndarray:
    """The HxWx3 rain layer (>= 0) of a pair, with clipped pixels filled as the module says."""
    rainy, clean = np.asarray(rainy, np.float32), np.asarray(clean, np.float32)
    if rainy.shape != clean.shape or rainy.ndim != 3 or rainy.shape[2] != 3:
        raise ValueError(f"expected two HxWx3 images of one size, got {rainy.shape} and {clean.shape}")
    diff = np.clip(rainy - clean, 0.0, 1.0)
    clipped = rainy >= CLIP_LEVEL
    free = ~clipped
    n_free = free.sum(-1)
    grey = (diff * free).sum(-1) / np.maximum(n_free, 1)
    lost = n_free == 0
    if lost.any():
        filled = cv2.inpaint(grey.astype(np.float32), lost.astype(np.uint8), 5, cv2.INPAINT_TELEA)
        grey = np.where(lost, filled, grey)
    bound = 1.0 - clean
    layer = np.where(clipped, np.maximum(grey[..., None], bound), diff)
    return np.clip(layer, 0.0, 1.0).astype(np.float32)


@dataclass(frozen=True)
class TransplantJitter:
    """Random changes to a layer before it is composited: scale, opacity and a gamma on its
    intensity (brightness), horizontal flips."""

    scale: tuple[float, float] = (0.8, 1.25)
    opacity: tuple[float, float] = (0.55, 1.1)
    gamma: tuple[float, float] = (0.8, 1.25)
    flip: bool = True


def transplant(clean: np.ndarray, layers: list[np.ndarray], rng: np.random.Generator,
               jitter: TransplantJitter = TransplantJitter()) -> tuple[np.ndarray, np.ndarray]:
    """``(rainy, rain)`` for ``clean`` (HxWx3 in [0, 1]) with a random crop of one of ``layers``;
    ``rain`` is exactly ``rainy - clean``."""
    if not layers:
        raise ValueError("no rain layers to transplant")
    h, w = clean.shape[:2]
    layer = layers[int(rng.integers(len(layers)))]
    s = float(rng.uniform(*jitter.scale))
    s = max(s, h / layer.shape[0], w / layer.shape[1])  # the crop must fit
    if abs(s - 1.0) > 1e-3:
        layer = cv2.resize(layer, None, fx=s, fy=s, interpolation=cv2.INTER_LINEAR)
    y = int(rng.integers(0, layer.shape[0] - h + 1))
    x = int(rng.integers(0, layer.shape[1] - w + 1))
    layer = layer[y : y + h, x : x + w]
    if jitter.flip and rng.random() < 0.5:
        layer = layer[:, ::-1]
    gamma, opacity = float(rng.uniform(*jitter.gamma)), float(rng.uniform(*jitter.opacity))
    layer = np.clip(layer, 0.0, 1.0) ** gamma * opacity
    rainy = np.clip(clean + layer, 0.0, 1.0).astype(np.float32)
    return rainy, rainy - clean
