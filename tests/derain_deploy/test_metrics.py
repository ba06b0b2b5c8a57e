"""PSNR/SSIM against closed forms and an independent MATLAB-style implementation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from derain_deploy.metrics import psnr, psnr_ssim, rgb_to_y, ssim


def _matlab_y(rgb01: np.ndarray) -> np.ndarray:
    r, g, b = rgb01[..., 0], rgb01[..., 1], rgb01[..., 2]
    return 16.0 + 65.481 * r + 128.553 * g + 24.966 * b


def _gauss11() -> np.ndarray:
    # fspecial('gaussian', 11, 1.5)
    x = np.arange(-5, 6, dtype=np.float64)
    xx, yy = np.meshgrid(x, x)
    w = np.exp(-(xx**2 + yy**2) / (2 * 1.5**2))
    return w / w.sum()


def _filter_valid(img: np.ndarray, w: np.ndarray) -> np.ndarray:
    # filter2(w, img, 'valid'): correlation over the positions where the window fits
    win = np.lib.stride_tricks.sliding_window_view(img, w.shape)
    return np.einsum("ijkl,kl->ij", win, w)


def _ssim_index(x: np.ndarray, y: np.ndarray, peak: float = 255.0) -> float:
    """Wang et al.'s ssim_index.m (K = [0.01 0.03], 11x11 Gaussian sigma 1.5, 'valid')."""
    C1, C2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    w = _gauss11()
    mu1, mu2 = _filter_valid(x, w), _filter_valid(y, w)
    s1 = _filter_valid(x * x, w) - mu1**2
    s2 = _filter_valid(y * y, w) - mu2**2
    s12 = _filter_valid(x * y, w) - mu1 * mu2
    m = ((2 * mu1 * mu2 + C1) * (2 * s12 + C2)) / ((mu1**2 + mu2**2 + C1) * (s1 + s2 + C2))
    return float(m.mean())


@pytest.fixture
def pair() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    a = rng.random((24, 32, 3))
    b = np.clip(a + rng.normal(0, 0.08, a.shape), 0, 1)
    return a, b


def test_y_channel_matches_matlab_rgb2ycbcr_values() -> None:
    px = np.array([[[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    np.testing.assert_allclose(rgb_to_y(px)[0], [16.0, 235.0, 81.481, 144.553], atol=1e-9)
    u8 = np.array([[[255, 0, 0]]], dtype=np.uint8)
    np.testing.assert_allclose(rgb_to_y(u8), [[81.481]], atol=1e-9)


def test_psnr_constant_offset_closed_form() -> None:
    a = np.full((16, 16, 3), 0.5)
    d = 10 / 255
    b = a + d
    assert psnr(a, b, y_channel=False) == pytest.approx(20 * math.log10(255 / 10), abs=1e-9)
    # an equal offset d in R, G, B moves Y by (65.481 + 128.553 + 24.966) d = 219 d
    assert psnr(a, b) == pytest.approx(20 * math.log10(255 / (219 * d)), abs=1e-9)


def test_psnr_matches_direct_formula(pair: tuple[np.ndarray, np.ndarray]) -> None:
    a, b = pair
    mse_y = np.mean((_matlab_y(a) - _matlab_y(b)) ** 2)
    assert psnr(a, b) == pytest.approx(10 * math.log10(255**2 / mse_y), abs=1e-9)
    mse_rgb = np.mean((a * 255 - b * 255) ** 2)
    assert psnr(a, b, y_channel=False) == pytest.approx(10 * math.log10(255**2 / mse_rgb), abs=1e-9)


def test_psnr_identical_is_inf() -> None:
    a = np.zeros((12, 12, 3))
    assert psnr(a, a) == math.inf


def test_ssim_identical_is_one(pair: tuple[np.ndarray, np.ndarray]) -> None:
    a, _ = pair
    assert ssim(a, a) == pytest.approx(1.0, abs=1e-12)
    assert ssim(a, a, y_channel=False) == pytest.approx(1.0, abs=1e-12)


def test_ssim_matches_independent_matlab_formula(pair: tuple[np.ndarray, np.ndarray]) -> None:
    a, b = pair
    ref_y = _ssim_index(_matlab_y(a), _matlab_y(b))
    assert ssim(a, b) == pytest.approx(ref_y, abs=1e-10)
    ref_rgb = np.mean([_ssim_index(a[..., c] * 255, b[..., c] * 255) for c in range(3)])
    assert ssim(a, b, y_channel=False) == pytest.approx(ref_rgb, abs=1e-10)
    assert 0.0 < ref_y < 0.99  # the pair is really different: the comparison means something


def test_uint8_equals_float(pair: tuple[np.ndarray, np.ndarray]) -> None:
    a, b = pair
    a8, b8 = (np.round(a * 255)).astype(np.uint8), (np.round(b * 255)).astype(np.uint8)
    fa, fb = a8 / 255.0, b8 / 255.0
    assert psnr(a8, b8) == pytest.approx(psnr(fa, fb), abs=1e-9)
    assert ssim(a8, b8) == pytest.approx(ssim(fa, fb), abs=1e-12)
    assert set(psnr_ssim(a8, b8)) == {"psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb"}


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="shape"):
        psnr(np.zeros((8, 8, 3)), np.zeros((8, 9, 3)))
    with pytest.raises(ValueError, match="HxWx3"):
        psnr(np.zeros((8, 8)), np.zeros((8, 8)))
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(np.zeros((8, 8, 3)), np.zeros((8, 8, 3)))
