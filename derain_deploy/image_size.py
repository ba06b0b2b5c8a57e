"""Image sizes read from the file header only (Pillow opens lazily), to refuse huge images
before a decoder allocates them: a 389 KB PNG can hold 20000x20000 pixels (4.5 GiB as float RGB)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import BinaryIO

DEFAULT_MAX_PIXELS = 100_000_000  # 100 megapixels: about 1.2 GB as float32 RGB
_PILLOW_LIMIT = threading.Lock()


def header_size(path: str | Path | BinaryIO) -> tuple[int, int] | None:
    """(width, height) from the header of a file (or a binary file object such as ``BytesIO``),
    or None when Pillow cannot read it (the decoder then gives its own error)."""
    from PIL import Image  # a scikit-image dependency; imported here as only this needs it

    with _PILLOW_LIMIT:  # Pillow's limit is global: swapped under a lock, threads may call this
        limit = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None  # our own limit applies, not Pillow's decompression-bomb one
        try:
            with Image.open(path) as image:
                return image.size
        except (OSError, ValueError, SyntaxError):  # Pillow's UnidentifiedImageError is an OSError
            return None
        finally:
            Image.MAX_IMAGE_PIXELS = limit


def too_large(path: str | Path, max_pixels: int | None, *, name: str | None = None) -> str | None:
    """Why ``path`` (called ``name`` in the message) is refused, its size being over
    ``max_pixels``, or None when it is within it."""
    size = header_size(path) if max_pixels else None
    return pixel_limit_message(name or str(path), size, max_pixels)


def pixel_limit_message(
    what: str, size: tuple[int, int] | None, max_pixels: int | None, flag: str = "--max-pixels"
) -> str | None:
    """The one-line refusal for a ``size`` (width, height) over ``max_pixels``, else None."""
    if not max_pixels or size is None or size[0] * size[1] <= max_pixels:
        return None
    w, h = size
    return (
        f"{what} is {w}x{h} ({_pixels(w * h)}), over the limit of {_pixels(max_pixels)} "
        f"({flag}; it is decoded whole, so --tile does not help)"
    )


def _pixels(n: int) -> str:
    return f"{n / 1e6:.4g} megapixels" if n >= 1_000_000 else f"{n} pixels"
