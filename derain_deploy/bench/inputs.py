"""The bench's synthetic input: deterministic rainy frames from scikit-image's photos, and the
PSNR_Y of an output against their clean frames."""

from __future__ import annotations

import numpy as np

# ---------------------------------------------------------------- input and memory


PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")  # natural photos bundled with scikit-image


def rainy_frame(height: int, width: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A deterministic (rainy, clean) pair of HxWx3 float32 frames: a natural photo bundled with
    scikit-image, scaled to cover the size and centre-cropped, under heavy synthetic rain."""
    import cv2
    import skimage.data

    from ..rain import add_rain

    photo = getattr(skimage.data, PHOTOS[seed % len(PHOTOS)])()[..., :3]
    h, w = photo.shape[:2]
    scale = max(height / h, width / w)
    size = (max(width, round(w * scale)), max(height, round(h * scale)))
    photo = cv2.resize(photo, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    y, x = (photo.shape[0] - height) // 2, (photo.shape[1] - width) // 2
    clean = np.ascontiguousarray(photo[y : y + height, x : x + width], dtype=np.float32) / 255.0
    sample = add_rain(clean, "heavy", seed=seed)
    return sample.rainy, sample.clean


def rainy_batch(height: int, width: int, batch: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(rainy, clean) Nx3xHxW float32 batches of different frames."""
    pairs = [rainy_frame(height, width, seed + i) for i in range(batch)]
    rainy, clean = (
        np.ascontiguousarray(np.stack(x).transpose(0, 3, 1, 2), dtype=np.float32) for x in zip(*pairs)
    )
    return rainy, clean


def psnr_y_batch(output: np.ndarray, clean: np.ndarray) -> float:
    """Mean PSNR_Y (published convention) of an NCHW output against the clean frames, after
    rounding to 8 bits as a saved image would be."""
    from ..metrics import psnr

    def u8(a: np.ndarray) -> np.ndarray:
        return np.round(np.clip(a.transpose(1, 2, 0), 0, 1) * 255).astype(np.uint8)

    return float(np.mean([psnr(u8(o), u8(c)) for o, c in zip(output, clean)]))


