"""Decode encoded image bytes (a file's content, an HTTP body) into the float RGB frames the
model takes, with the metadata :func:`~.images.encode_image` needs to write them back.
The rules for grey, alpha and bit depth are those of :mod:`.images`."""

from __future__ import annotations

import cv2
import numpy as np

from .base import StreamError

JPEG_EXTS = (".jpg", ".jpeg")


def decode_image(data: bytes | np.ndarray, ext: str, name: str) -> tuple[np.ndarray, dict[str, object]]:
    """``data`` (the bytes of a ``ext`` image, called ``name`` in errors) as HxWx3 float32 RGB in
    [0, 1] and ``meta = {"bit_depth": 8 | 16 | 32, "grey": bool, "alpha": HxW array | None}``."""
    buf = np.frombuffer(data, dtype=np.uint8) if isinstance(data, (bytes, bytearray, memoryview)) else data
    # IMREAD_UNCHANGED ignores EXIF orientation; JPEG has no alpha, so ANYCOLOR|ANYDEPTH loses nothing.
    flags = cv2.IMREAD_ANYCOLOR | cv2.IMREAD_ANYDEPTH if ext.lower() in JPEG_EXTS else cv2.IMREAD_UNCHANGED
    img = cv2.imdecode(buf, flags) if buf.size else None
    if img is None:
        raise StreamError(f"cannot decode image (corrupt or not a {ext} file): {name}")
    if img.dtype == np.uint8:
        depth, scale = 8, 1.0 / 255.0
    elif img.dtype == np.uint16:
        depth, scale = 16, 1.0 / 65535.0
    elif img.dtype == np.float32:
        depth, scale = 32, 1.0
    else:
        raise StreamError(f"unsupported pixel type {img.dtype} in {name}")
    alpha = None
    if img.ndim == 3 and img.shape[2] == 4:
        alpha = img[:, :, 3].copy()
        img = img[:, :, :3]
    grey = img.ndim == 2 or img.shape[2] == 1
    if grey:
        img = img.reshape(img.shape[0], img.shape[1])
        rgb = np.repeat(img[:, :, None], 3, axis=2)
    elif img.shape[2] == 3:
        rgb = img[:, :, ::-1]
    else:
        raise StreamError(f"unsupported channel count {img.shape[2]} in {name}")
    rgb = np.clip(rgb.astype(np.float32) * np.float32(scale), 0.0, 1.0)
    return np.ascontiguousarray(rgb), {"bit_depth": depth, "grey": grey, "alpha": alpha}
