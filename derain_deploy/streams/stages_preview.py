"""A grid of the stage outputs for one image, coarse to fine (the paper's Fig. 1)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from .images import write_image

if TYPE_CHECKING:
    from ..model import DerainNet


def stage_outputs(net: DerainNet, image: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Run ``net`` on one HxWx3 float RGB image: (O_1..O_T, final output), all HxWx3 float32."""
    from ..infer import batch_image, image_batch, run_net

    out, stages = run_net(net, image_batch(image), return_stages=True)
    return [batch_image(s) for s in stages], batch_image(out)  # type: ignore[arg-type]


def stages_grid(
    images: Sequence[np.ndarray],
    labels: Sequence[str] | None = None,
    *,
    columns: int | None = None,
    max_tile_width: int = 480,
    gap: int = 4,
) -> np.ndarray:
    """Tile HxWx3 float images row by row (white gaps), each shrunk to at most ``max_tile_width``
    pixels wide, with its label written in its top-left corner."""
    if not images:
        raise ValueError("no images to put in a grid")
    h, w = images[0].shape[:2]
    if any(im.shape[:2] != (h, w) for im in images):
        raise ValueError("all stage images must have the same size")
    if labels is not None and len(labels) != len(images):
        raise ValueError(f"{len(labels)} labels for {len(images)} images")
    scale = min(1.0, max_tile_width / w)
    th, tw = max(1, round(h * scale)), max(1, round(w * scale))
    cols = columns or math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / cols)
    grid = np.ones((rows * th + (rows - 1) * gap, cols * tw + (cols - 1) * gap, 3), np.float32)
    for i, im in enumerate(images):
        tile = np.clip(np.asarray(im, np.float32), 0, 1)  # a new array: labels do not touch ``im``
        if (th, tw) != (h, w):
            tile = cv2.resize(tile, (tw, th), interpolation=cv2.INTER_AREA)
        if labels is not None:
            _label(tile, labels[i])
        r, c = divmod(i, cols)
        grid[r * (th + gap) : r * (th + gap) + th, c * (tw + gap) : c * (tw + gap) + tw] = tile
    return grid


def _label(tile: np.ndarray, text: str) -> None:
    """White text with a black outline, drawn in place (OpenCV draws text on 8-bit images only,
    so the glyphs are drawn as 8-bit masks and blended into the float tile)."""
    size = max(0.3, tile.shape[0] / 300)
    thick = max(1, round(size))
    (_, text_h), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, size, thick + 2)
    org = (4, 4 + text_h)
    for width, value in ((thick + 2, 0.0), (thick, 1.0)):
        mask = np.zeros(tile.shape[:2], np.uint8)
        cv2.putText(mask, text, org, cv2.FONT_HERSHEY_SIMPLEX, size, 255, width, cv2.LINE_AA)
        a = mask.astype(np.float32)[:, :, None] * np.float32(1 / 255)
        tile *= 1 - a
        tile += a * np.float32(value)


def stages_preview(
    image: np.ndarray, stages: Sequence[np.ndarray], final: np.ndarray, **grid_options: int
) -> np.ndarray:
    """The grid ``input, O_1, ..., O_T, output`` with labels."""
    labels = ["input", *(f"O_{t}" for t in range(1, len(stages) + 1)), "output"]
    return stages_grid([image, *stages, final], labels, **grid_options)


def write_stages_preview(path: str | Path, net: DerainNet, image: np.ndarray) -> Path:
    """Run ``net`` on ``image`` and write its stages grid to ``path`` (atomically)."""
    stages, final = stage_outputs(net, image)
    return write_image(path, stages_preview(image, stages, final))
