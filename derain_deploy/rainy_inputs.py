"""Rainy test inputs: natural photos bundled with scikit-image (no download) under synthetic rain
from :mod:`derain_deploy.rain`, as (rainy, clean) float32 pairs in [0, 1].

One frame helper, :func:`rainy_frame`; :func:`rainy_batch` stacks frames (the bench's inputs,
the builder's calibration and quality images); ``streams.synthetic.rainy_clip`` pans one frame
window across a photo for the demo video.
"""

from __future__ import annotations

import numpy as np

from .rain import RainParams, add_rain

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "stereo_motorcycle")  # colour photos in scikit-image


def photo(name: str) -> np.ndarray:
    """scikit-image's sample photo ``name`` as HxWx3 float32 RGB in [0, 1]."""
    import skimage.data

    loader = getattr(skimage.data, name, None)
    if loader is None:
        raise ValueError(f"scikit-image has no sample image {name!r}")
    image = loader()
    if isinstance(image, tuple):  # stereo_motorcycle: (left, right, disparity)
        image = image[0]
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    return np.ascontiguousarray(image[..., :3], dtype=np.float32) / 255.0


def _cover(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """``image`` scaled (aspect kept) to cover ``height`` x ``width``."""
    import cv2

    h, w = image.shape[:2]
    scale = max(height / h, width / w)
    size = (max(width, round(w * scale)), max(height, round(h * scale)))
    resized = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    return np.clip(resized, 0.0, 1.0)  # cubic overshoots


def rainy_frame(
    height: int,
    width: int,
    seed: int = 0,
    preset: str | RainParams = "heavy",
    *,
    photo_name: str | None = None,
    rng: np.random.Generator | None = None,
    cover: tuple[int, int] | None = None,
    at: tuple[int, int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """A deterministic (rainy, clean) pair of HxWx3 float32 frames: a photo (``photo_name``, else
    drawn from ``rng``, else ``PHOTOS[seed % 5]``) scaled to cover ``cover`` (default the frame,
    1 to 1.5 times more with ``rng``), cropped at ``at`` (row, column; default the centre, a
    random place with ``rng``), under rain ``preset`` (a name or fixed :class:`RainParams`) from
    ``rng``, else from ``seed``."""
    if photo_name is None:
        photo_name = PHOTOS[int(rng.integers(len(PHOTOS))) if rng is not None else seed % len(PHOTOS)]
    if cover is None:
        zoom = float(rng.uniform(1.0, 1.5)) if rng is not None else 1.0
        cover = (round(height * zoom), round(width * zoom))
    image = _cover(photo(photo_name), max(height, cover[0]), max(width, cover[1]))
    if at is None:
        room = image.shape[0] - height, image.shape[1] - width
        centre = (room[0] // 2, room[1] // 2)
        at = centre if rng is None else (int(rng.integers(room[0] + 1)), int(rng.integers(room[1] + 1)))
    y, x = at
    clean = np.ascontiguousarray(image[y : y + height, x : x + width])
    sample = add_rain(clean, preset, seed=seed, rng=rng)
    return sample.rainy.astype(np.float32, copy=False), sample.clean.astype(np.float32, copy=False)


def rainy_batch(
    height: int, width: int, batch: int, seed: int = 0, preset: str = "heavy", *, random: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """(rainy, clean) Nx3xHxW float32 batches of different frames: frame ``i`` is
    ``rainy_frame(..., seed + i)``, or with ``random`` every photo, zoom, crop and rain is drawn
    from one generator seeded with ``seed``."""
    rng = np.random.default_rng(seed) if random else None
    pairs = [rainy_frame(height, width, seed + i, preset, rng=rng) for i in range(batch)]
    rainy, clean = (np.ascontiguousarray(np.stack(x).transpose(0, 3, 1, 2)) for x in zip(*pairs))
    return rainy, clean
