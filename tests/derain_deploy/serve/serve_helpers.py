"""Test images as encoded bytes, and a backend that fails on a marked frame (sent to the
replicas by value, as Ray workers cannot import the tests)."""

from __future__ import annotations

import dataclasses
import struct
import zlib

import cv2
import numpy as np

from derain_deploy.backends.base import Backend, BackendError
from derain_deploy.serve.options import ServeOptions

POISON = (1.0, 0.0, 1.0)  # a pure magenta top-left pixel: the backend fails on that frame


def image_bytes(
    ext: str, h: int = 48, w: int = 64, channels: int = 3, depth: int = 8, seed: int = 0
) -> bytes:
    """A noisy test image encoded as ``ext`` (OpenCV's BGR order), grey with ``channels=1``."""
    rng = np.random.default_rng(seed)
    maxv = 255 if depth == 8 else 65535
    shape = (h, w) if channels == 1 else (h, w, channels)
    img = rng.integers(0, maxv + 1, size=shape).astype(np.uint8 if depth == 8 else np.uint16)
    if channels == 4:
        img[:, :, 3] = np.linspace(0, maxv, w, dtype=img.dtype)[None, :]
    ok, buf = cv2.imencode(ext, img)
    assert ok
    return buf.tobytes()


def poisoned_png(h: int = 48, w: int = 64, seed: int = 0) -> bytes:
    img = np.random.default_rng(seed).integers(0, 256, size=(h, w, 3)).astype(np.uint8)
    img[0, 0] = (255, 0, 255)  # BGR magenta
    ok, buf = cv2.imencode(".png", img)
    assert ok
    return buf.tobytes()


def png_claiming(width: int, height: int) -> bytes:
    """A small PNG whose header claims ``width`` x ``height`` (its pixel data is a 1x1 image's):
    decoding it would fail or allocate, the header check must refuse it first."""
    data = bytearray(image_bytes(".png", 1, 1))
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


class PoisonBackend:
    """The real backend, failing any batch holding a :data:`POISON`-marked frame."""

    def __init__(self, inner: Backend) -> None:
        self.inner, self.info = inner, inner.info

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        marked = np.all(np.isclose(batch[:, :, 0, 0], POISON), axis=1)
        if marked.any():
            raise BackendError(f"poisoned frame at index {int(np.argmax(marked))} of a batch of {len(batch)}")
        return self.inner(batch)

    def close(self) -> None:
        self.inner.close()


def open_poisoned(options: ServeOptions) -> Backend:
    return PoisonBackend(dataclasses.replace(options, backend_factory=None).open_backend())
