"""Tiled inference for frames larger than an engine profile or a memory budget.

Tiles overlap by ``2 * margin + ramp`` pixels. In each overlap the two tiles' outputs are
cross-faded by complementary linear ramps ``ramp`` pixels wide, centred in the overlap; the
``margin`` pixels on either side of the ramp carry weight 0 for the tile whose edge is near, so
every pixel that contributes lies at least ``margin`` pixels inside its tile. Weights form a
partition of unity (they sum to exactly 1 at every pixel), so no normalisation is needed and
there is no seam: the blend is continuous.

How large must ``margin`` be? The network's exact receptive-field radius
(:func:`receptive_field_radius`, 206 px for the default config) makes tiled output identical to
whole-frame output, at a heavy cost (a 428 px overlap). The *effective* receptive field is far
smaller. benchmarks/tiling_overlap.py measured, on a 12-stage model after 147 training
iterations (benchmarks/results/tiling_overlap.json), PSNR between tiled and whole-frame output
inside the overlap bands (the only place they can differ) of 41 dB at margin 0, 53 dB at 4,
62 dB at 8, 87 dB at 16, 130 dB at 32 and 149 dB (float rounding) at 48; the share of the
output's input gradient lying beyond 48 px was 2e-6. The untrained model's field is narrower
still (161 dB at margin 16), and training widened it: :data:`DEFAULT_MARGIN` = 48 keeps a wide
reserve above the 50 dB target for a fully trained model, for an overlap of 112 px instead of 428.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from .backends.base import Backend, BackendError, BackendInfo, ContextManaged
from .model import DerainConfig

DEFAULT_MARGIN = 48  # measured: see the module doc and benchmarks/results/tiling_overlap.json
DEFAULT_RAMP = 16


def receptive_field_radius(config: DerainConfig) -> int:
    """Exact receptive-field radius in pixels: how far an input pixel can reach an output pixel.

    A k=3 conv with dilation d adds d; 1x1 convs add nothing. Each stage runs fs (3x3), the
    DCDCB's dilated convs and rs (3x3); dense links only add shorter paths. Refinement adds two
    3x3 convs. Default: 12 * (1 + 1 + 2 + 4 + 8 + 1) + 2 = 206."""
    per_stage = 1 + sum(config.dilations) + 1
    return config.stages * per_stage + (2 if config.refinement else 0)


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size ``tile`` covering ``length`` with at least ``overlap`` shared."""
    if length <= tile:
        return [0]
    if tile <= overlap:
        raise BackendError(f"tile size {tile} must exceed the tile overlap {overlap}")
    n = math.ceil((length - overlap) / (tile - overlap))
    return [round(i * (length - tile) / (n - 1)) for i in range(n)]


def blend_weights(length: int, starts: list[int], tile: int, ramp: int) -> list[np.ndarray]:
    """1-D weights of each tile (over its own ``tile`` pixels); over the whole axis they sum to 1.

    Tile i's weight is ``g_i - g_{i-1}``, where ``g_i`` falls linearly from 1 to 0 across a
    ramp centred in the overlap of tiles i and i+1 (``g_{-1} = 0``, ``g_{n-1} = 1``), so the
    sum telescopes to 1 at every pixel."""
    size = min(tile, length)
    x = np.arange(length, dtype=np.float64) + 0.5  # pixel centres
    ramp = max(ramp, 1)

    def g(i: int) -> np.ndarray:
        if i < 0:
            return np.zeros(length)
        if i >= len(starts) - 1:
            return np.ones(length)
        centre = (starts[i + 1] + starts[i] + size) / 2
        return np.clip((centre + ramp / 2 - x) / ramp, 0.0, 1.0)

    return [(g(i) - g(i - 1))[s : s + size].astype(np.float32) for i, s in enumerate(starts)]


def tiled_call(
    fn: Callable[[np.ndarray], np.ndarray],
    batch: np.ndarray,
    tile: tuple[int, int],
    margin: int = DEFAULT_MARGIN,
    ramp: int = DEFAULT_RAMP,
) -> np.ndarray:
    """Run ``fn`` (Nx3xhxw -> Nx3xhxw) over ``batch`` in overlapping tiles of at most ``tile`` (h, w)."""
    n, c, H, W = batch.shape
    th, tw = min(tile[0], H), min(tile[1], W)
    overlap = 2 * margin + ramp
    ys, xs = tile_starts(H, th, overlap), tile_starts(W, tw, overlap)
    wy, wx = blend_weights(H, ys, th, ramp), blend_weights(W, xs, tw, ramp)
    out = np.zeros((n, c, H, W), dtype=np.float32)
    for y0, wy_i in zip(ys, wy):
        for x0, wx_j in zip(xs, wx):
            piece = fn(np.ascontiguousarray(batch[:, :, y0 : y0 + th, x0 : x0 + tw]))
            out[:, :, y0 : y0 + th, x0 : x0 + tw] += piece * (wy_i[:, None] * wx_j[None, :])
    return out


class TiledBackend(ContextManaged):
    """Wraps a backend; frames larger than ``tile`` (h, w) go through :func:`tiled_call`."""

    def __init__(
        self, backend: Backend, tile: tuple[int, int], margin: int | None = None, ramp: int = DEFAULT_RAMP
    ) -> None:
        self.backend = backend
        self.tile = tile
        self.margin = DEFAULT_MARGIN if margin is None else margin
        self.ramp = ramp
        overlap = 2 * self.margin + ramp
        if min(tile) <= overlap:
            raise BackendError(
                f"tile {tile[0]}x{tile[1]} is too small for the {overlap} px overlap "
                f"(margin {self.margin}, ramp {ramp}); use a tile larger than {overlap}"
            )
        inner = backend.info
        self.info = BackendInfo(
            name=inner.name,
            device=inner.device,
            precision=inner.precision,
            details={**inner.details, "tile": list(tile), "tile_margin": self.margin, "tile_ramp": ramp},
        )

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        if batch.shape[2] <= self.tile[0] and batch.shape[3] <= self.tile[1]:
            return self.backend(batch)
        return tiled_call(self.backend, batch, self.tile, self.margin, self.ramp)

    def close(self) -> None:
        self.backend.close()
