"""The bench's synthetic input: deterministic rainy frames from scikit-image's photos, and the
PSNR_Y of an output against their clean frames."""

from __future__ import annotations

import numpy as np

# ---------------------------------------------------------------- input and memory
# the one rainy-input helper (derain_deploy/rainy_inputs.py), re-exported for the bench's callers
from ..rainy_inputs import PHOTOS, rainy_batch, rainy_frame  # noqa: F401


def psnr_y_batch(output: np.ndarray, clean: np.ndarray) -> float:
    """Mean PSNR_Y (published convention) of an NCHW output against the clean frames, after
    rounding to 8 bits as a saved image would be."""
    from ..metrics import psnr

    def u8(a: np.ndarray) -> np.ndarray:
        return np.round(np.clip(a.transpose(1, 2, 0), 0, 1) * 255).astype(np.uint8)

    return float(np.mean([psnr(u8(o), u8(c)) for o, c in zip(output, clean)]))


