"""Tiling: partition of unity, receptive field, tiled output equal to whole-frame output."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from derain_deploy.backends.base import BackendError
from derain_deploy.backends.torch_backend import TorchBackend
from derain_deploy.model import DerainConfig, DerainNet
from derain_deploy.parity import psnr01
from derain_deploy.tiling import (
    DEFAULT_MARGIN,
    TiledBackend,
    blend_weights,
    receptive_field_radius,
    tile_starts,
    tiled_call,
)

TINY = DerainConfig(stages=2, channels=4)


def test_receptive_field_radius() -> None:
    assert receptive_field_radius(DerainConfig()) == 206  # 12 * (1 + 15 + 1) + 2
    assert receptive_field_radius(TINY) == 36
    assert receptive_field_radius(DerainConfig(refinement=False)) == 204
    assert receptive_field_radius(DerainConfig.ablation("no-dilation")) == 12 * 6 + 2


def test_receptive_field_radius_is_exact() -> None:
    """An impulse moves outputs exactly up to the computed radius, not one pixel further."""
    torch.manual_seed(0)
    net = DerainNet(DerainConfig(stages=1, channels=4, dilations=(1, 2))).eval()
    r = receptive_field_radius(net.config)  # 1 + 3 + 1 + 2 = 7
    size = 2 * r + 5
    x = torch.zeros(1, 3, size, size, requires_grad=True)
    net(x)[0, :, size // 2, size // 2].sum().backward()
    reach = np.argwhere(x.grad.abs().sum(dim=(0, 1)).numpy() > 0)
    assert np.abs(reach - size // 2).max() == r


@pytest.mark.parametrize(
    ("length", "tile", "margin", "ramp"), [(100, 40, 5, 6), (97, 33, 3, 1), (64, 64, 8, 8), (50, 80, 4, 4)]
)
def test_weights_sum_to_one(length: int, tile: int, margin: int, ramp: int) -> None:
    starts = tile_starts(length, tile, 2 * margin + ramp)
    size = min(tile, length)
    assert starts[0] == 0 and starts[-1] + size == length
    total = np.zeros(length)
    for s, w in zip(starts, blend_weights(length, starts, tile, ramp)):
        assert w.shape == (size,) and w.min() >= 0 and w.max() <= 1
        # a tile never counts within ``margin`` of an edge it shares with a neighbour
        if s > 0:
            assert not w[:margin].any()
        if s + size < length:
            assert not w[size - margin :].any()
        total[s : s + size] += w
    np.testing.assert_allclose(total, 1.0, atol=1e-6)


def box_blur(x: np.ndarray, radius: int = 6) -> np.ndarray:
    """A zero-padded box blur: a stand-in network with an exactly known receptive field."""
    k = 2 * radius + 1
    p = np.pad(x, ((0, 0), (0, 0), (radius, radius), (radius, radius)))
    c = np.cumsum(np.cumsum(np.pad(p, ((0, 0), (0, 0), (1, 0), (1, 0))), axis=2), axis=3)
    return (c[:, :, k:, k:] - c[:, :, :-k, k:] - c[:, :, k:, :-k] + c[:, :, :-k, :-k]) / k**2


def test_tiling_with_enough_margin_is_exact_and_without_it_fails() -> None:
    x = np.random.default_rng(0).random((1, 3, 61, 83), dtype=np.float32)  # odd sizes
    whole = box_blur(x)
    ok = tiled_call(box_blur, x, (32, 40), margin=6, ramp=4)
    np.testing.assert_allclose(ok, whole, atol=1e-5)
    bad = tiled_call(box_blur, x, (32, 40), margin=0, ramp=1)
    assert psnr01(bad, whole) < 50  # the check used below can fail


def test_tiled_network_matches_whole_frame() -> None:
    torch.manual_seed(0)
    config = DerainConfig(stages=2, channels=4, dilations=(1, 2))  # small receptive field: small test
    backend = TorchBackend(DerainNet(config).eval())
    rf = receptive_field_radius(config)
    assert rf == 12
    x = np.random.default_rng(1).random((2, 3, 83, 71), dtype=np.float32)  # odd sizes, batch 2
    tiled = TiledBackend(backend, (56, 48), margin=rf, ramp=4)  # 2 x 2 tiles
    whole = backend(x)
    out = tiled(x)
    assert out.shape == x.shape
    assert psnr01(out, whole) >= 50
    assert np.abs(out - whole).max() < 1e-4  # margin >= receptive field: equal up to rounding
    small = x[:, :, :56, :48]
    np.testing.assert_array_equal(tiled(small), backend(small))  # fits in a tile: not tiled
    assert TiledBackend(backend, (256, 256)).margin == DEFAULT_MARGIN


def test_tile_too_small_for_the_overlap() -> None:
    backend = TorchBackend(DerainNet(TINY).eval())
    with pytest.raises(BackendError, match="too small"):
        TiledBackend(backend, (64, 64), margin=32)
    with pytest.raises(BackendError, match="must exceed"):
        tile_starts(100, 10, 20)
