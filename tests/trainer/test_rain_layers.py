"""Rain layers of real pairs: exact round trip, clipped pixels filled, transplants exact."""

from __future__ import annotations

import numpy as np
import pytest

from trainer.rain_layers import rain_layer, transplant


def _pair(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A bright clean image under grey rain, quantized to 8 bits as the real pairs are: many
    channels clip at 1, some pixels in all three."""
    rng = np.random.default_rng(seed)
    h, w = 48, 64
    clean = np.clip(rng.uniform(0.3, 0.95, (h, w, 3)), 0, 1).astype(np.float32)
    clean[10:20, 10:30] = 0.97  # a white patch: rain over it clips in every channel
    rain = np.zeros((h, w), np.float32)
    rain[:, ::5] = 0.35  # vertical streaks, grey
    rain = np.repeat(rain[..., None], 3, axis=2)
    q = lambda a: np.round(np.clip(a, 0, 1) * 255) / 255  # noqa: E731
    return q(clean + rain).astype(np.float32), q(clean).astype(np.float32), rain


def test_layer_back_on_its_own_clean_image_reproduces_the_rainy_image() -> None:
    rainy, clean, _ = _pair()
    layer = rain_layer(rainy, clean)
    back = np.clip(clean + layer, 0, 1)
    unclipped = (rainy < 254.5 / 255).all(-1)
    assert unclipped.mean() > 0.5 and (~unclipped).any()
    assert np.abs(back - rainy)[unclipped].max() < 1e-6
    assert np.abs(back - rainy).max() < 1e-6  # clipped pixels clip again


def test_clipped_channels_take_the_grey_rain_of_the_others() -> None:
    rainy, clean, rain = _pair()
    layer = rain_layer(rainy, clean)
    clipped = rainy >= 254.5 / 255
    partly = clipped.any(-1) & ~clipped.all(-1)
    streak = rain[..., 0] > 0
    # The plain difference is only 1 - clean there: it underestimates the streak.
    naive = np.clip(rainy - clean, 0, 1)
    assert (np.abs(naive - rain)[partly & streak].max()) > 0.05
    assert np.abs(layer - rain)[partly & streak].max() < 2.5 / 255
    # Where all three clipped, the inpainted value is at least the bound 1 - clean.
    full = clipped.all(-1)
    assert full.any()
    assert (layer[full] >= (1 - clean)[full] - 1e-6).all()


def test_transplant_is_exact_and_varies() -> None:
    rainy, clean, _ = _pair()
    layer = rain_layer(rainy, clean)
    target = np.full((32, 32, 3), 0.2, np.float32)
    a = transplant(target, [layer], np.random.default_rng(1))
    b = transplant(target, [layer], np.random.default_rng(2))
    for r, rain in (a, b):
        assert r.shape == target.shape and np.array_equal(r - target, rain) and rain.min() >= 0
        assert rain.max() > 0.1
    assert not np.array_equal(a[0], b[0])
    with pytest.raises(ValueError, match="no rain layers"):
        transplant(target, [], np.random.default_rng(0))


def test_rain_layer_refuses_mismatched_images() -> None:
    with pytest.raises(ValueError, match="HxWx3"):
        rain_layer(np.zeros((4, 4, 3)), np.zeros((4, 5, 3)))
