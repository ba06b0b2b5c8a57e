"""PSNR and SSIM with the convention of published deraining tables, and their RGB variants.

Convention (``y_channel=True``, the default): the Y channel of YCbCr as MATLAB's ``rgb2ycbcr``
computes it (BT.601, studio range): ``Y = 16 + 65.481 R + 128.553 G + 24.966 B`` for RGB in
[0, 1], so Y lies in [16, 235]; peak 255; SSIM with an 11x11 Gaussian window of sigma 1.5,
K1 = 0.01, K2 = 0.03, population covariances, averaged over the positions where the window
fits inside the image (MATLAB ``ssim_index``'s 'valid' filtering); no border crop beyond that.
Y is kept in floating point (MATLAB rounds it to uint8 when given uint8 images; the difference
is a few hundredths of a dB).

``y_channel=False`` is the RGB variant some toolboxes report: PSNR over all three channels,
SSIM averaged over the channels, both on the 0..255 scale.

scikit-image computes both: with ``gaussian_weights=True, sigma=1.5`` it truncates the Gaussian
at radius ``int(3.5 * 1.5 + 0.5) = 5`` (an 11x11 window) and crops that radius before averaging,
which equals the 'valid' region. tests/derain_deploy/test_metrics.py checks it against a
straightforward implementation of the MATLAB formula.
"""

from __future__ import annotations

import math

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

PEAK = 255.0
SSIM_WINDOW = 11  # pixels; the smallest image side SSIM accepts
SSIM_SIGMA = 1.5
Y_WEIGHTS = np.array([65.481, 128.553, 24.966])  # MATLAB rgb2ycbcr, per unit of [0, 1] RGB
Y_OFFSET = 16.0


def to_float01(image: np.ndarray) -> np.ndarray:
    """HxWx3 image as float64 in [0, 1]: uint8 is divided by 255, floats are taken as they are."""
    a = np.asarray(image)
    if a.dtype == np.uint8:
        return a.astype(np.float64) / 255.0
    if not np.issubdtype(a.dtype, np.floating):
        raise ValueError(f"expected a uint8 or float image, got dtype {a.dtype}")
    return a.astype(np.float64)


def rgb_to_y(image: np.ndarray) -> np.ndarray:
    """Y of YCbCr on the 0..255 scale (values in [16, 235]) from an HxWx3 RGB image."""
    a = to_float01(image)
    return Y_OFFSET + a @ Y_WEIGHTS


def _pair(a: np.ndarray, b: np.ndarray, y_channel: bool) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"expected HxWx3 RGB images, got shape {a.shape}")
    if y_channel:
        return rgb_to_y(a), rgb_to_y(b)
    return to_float01(a) * PEAK, to_float01(b) * PEAK


def psnr(a: np.ndarray, b: np.ndarray, *, y_channel: bool = True, data_range: float = PEAK) -> float:
    """PSNR in dB between two HxWx3 RGB images (float in [0, 1] or uint8), on the 0..255 scale.

    ``inf`` for identical images. ``data_range`` is the peak on that scale (255 by convention)."""
    x, y = _pair(a, b, y_channel)
    if np.array_equal(x, y):
        return math.inf
    return float(peak_signal_noise_ratio(x, y, data_range=data_range))


def ssim(a: np.ndarray, b: np.ndarray, *, y_channel: bool = True) -> float:
    """SSIM between two HxWx3 RGB images (float in [0, 1] or uint8): 11x11 Gaussian window,
    sigma 1.5, peak 255; the RGB variant averages the three channels' SSIM."""
    x, y = _pair(a, b, y_channel)
    if min(x.shape[:2]) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW}, got {x.shape[:2]}")
    return float(
        structural_similarity(
            x,
            y,
            data_range=PEAK,
            gaussian_weights=True,
            sigma=SSIM_SIGMA,
            use_sample_covariance=False,
            channel_axis=None if y_channel else 2,
        )
    )


def psnr_ssim(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """All four figures at once: psnr_y, ssim_y, psnr_rgb, ssim_rgb."""
    return {
        "psnr_y": psnr(a, b, y_channel=True),
        "ssim_y": ssim(a, b, y_channel=True),
        "psnr_rgb": psnr(a, b, y_channel=False),
        "ssim_rgb": ssim(a, b, y_channel=False),
    }
