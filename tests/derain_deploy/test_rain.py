"""Rain synthesis: determinism, exact rain layer, density and presets."""

from __future__ import annotations

import numpy as np
import pytest

from derain_deploy.rain import RainParams, StreakLayer, add_rain, sample_params, scale_density


@pytest.fixture()
def clean() -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.random((64, 80, 3)) * 0.8).astype(np.float32)


def test_deterministic_per_seed(clean: np.ndarray) -> None:
    a, b = add_rain(clean, "heavy", seed=7), add_rain(clean, "heavy", seed=7)
    c = add_rain(clean, "heavy", seed=8)
    assert np.array_equal(a.rainy, b.rainy) and a.params == b.params
    assert not np.array_equal(a.rainy, c.rainy)


@pytest.mark.parametrize("preset", ["light", "medium", "heavy", "mixed"])
def test_rain_layer_is_exact_and_non_negative(clean: np.ndarray, preset: str) -> None:
    for seed in range(5):
        s = add_rain(clean, preset, seed=seed)
        assert s.rain.min() >= 0.0
        assert s.rainy.min() >= 0.0 and s.rainy.max() <= 1.0
        np.testing.assert_array_equal(s.rainy - s.clean, s.rain)  # the loss target is exact
        np.testing.assert_allclose(s.clean + s.rain, s.rainy, atol=1e-6)
        assert s.rainy.dtype == np.float32 and s.rainy.shape == clean.shape


def test_rain_is_grey_and_additive_on_black() -> None:
    black = np.zeros((48, 48, 3), np.float32)
    layer = StreakLayer(angle=10, length=20, density=0.01, brightness=0.6)
    s = add_rain(black, RainParams(layers=(layer,)), seed=1)
    assert s.rain.max() > 0.2
    np.testing.assert_array_equal(s.rain[..., 0], s.rain[..., 2])


def test_coverage_grows_with_density(clean: np.ndarray) -> None:
    base = sample_params("light", np.random.default_rng(3))
    coverage = []
    for factor in (0.5, 2.0, 8.0):
        s = add_rain(clean, scale_density(base, factor), seed=11)
        coverage.append(float((s.rain.mean(axis=2) > 0.02).mean()))
    assert coverage[0] < coverage[1] < coverage[2]


def test_heavy_is_heavier_than_light_and_none_is_clean(clean: np.ndarray) -> None:
    light = np.mean([add_rain(clean, "light", seed=s).rain.mean() for s in range(8)])
    heavy = np.mean([add_rain(clean, "heavy", seed=s).rain.mean() for s in range(8)])
    assert heavy > 2 * light > 0
    none = add_rain(clean, "none", seed=0)
    assert not none.rain.any() and np.array_equal(none.rainy, clean)


def test_heavy_has_several_directions() -> None:
    angles = [len({round(l.angle) for l in sample_params("heavy", np.random.default_rng(s)).layers})
              for s in range(10)]
    assert max(angles) >= 2


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="unknown rain preset"):
        add_rain(np.zeros((8, 8, 3), np.float32), "drizzle", seed=0)
    with pytest.raises(ValueError, match="HxWx3"):
        add_rain(np.zeros((8, 8), np.float32), "light", seed=0)


def test_custom_mix(clean: np.ndarray) -> None:
    for seed in range(4):
        assert not add_rain(clean, "mixed", seed=seed, mix={"none": 1.0}).rain.any()
    assert add_rain(clean, "mixed", seed=0, mix={"heavy": 1.0}).rain.mean() > 0.02
    with pytest.raises(ValueError, match="bad rain mix"):
        add_rain(clean, "mixed", seed=0, mix={"drizzle": 1.0})
