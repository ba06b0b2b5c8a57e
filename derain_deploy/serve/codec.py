"""Request bodies to frames and frames to response bodies: format sniffing, the size check from
the header, ``Accept`` negotiation. Decoding and encoding are :mod:`derain_deploy.streams`'."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from ..image_size import header_size
from ..streams.base import StreamError
from ..streams.image_decode import decode_image
from ..streams.images import encode_image

# media type -> the file extension OpenCV encodes it with
MEDIA_TYPES = {"image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp", "image/tiff": ".tif"}
EXT_MEDIA = {ext: media for media, ext in MEDIA_TYPES.items()}


class RequestError(ValueError):
    """A request the service refuses: ``status`` is the HTTP status, the message one line."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def sniff(data: bytes) -> str | None:
    """The media type of ``data`` from its first bytes (PNG, JPEG, WebP, TIFF), else None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "image/tiff"
    return None


@dataclass
class Decoded:
    """One request's frame: HxWx3 float32 RGB, its metadata for encoding, and its media type."""

    rgb: np.ndarray
    meta: dict[str, object]
    media_type: str


def decode_body(data: bytes, max_pixels: int | None) -> Decoded:
    """Decode a request body; :class:`RequestError` 415 (not an image), 413 (over
    ``max_pixels``, judged from the header before decoding) or 400 (corrupt)."""
    if not data:
        raise RequestError(400, "the request body is empty: send the image's bytes (PNG, JPEG, WebP or TIFF)")
    media = sniff(data)
    if media is None:
        raise RequestError(415, "the request body is not a PNG, JPEG, WebP or TIFF image")
    if max_pixels:
        _check_pixels(header_size(io.BytesIO(data)), max_pixels)  # type: ignore[arg-type]  # file objects work
    try:
        rgb, meta = decode_image(data, MEDIA_TYPES[media], "the request body")
    except StreamError as e:
        raise RequestError(400, str(e)) from None
    if max_pixels:  # a header Pillow could not read is judged after decoding
        _check_pixels((rgb.shape[1], rgb.shape[0]), max_pixels)
    return Decoded(rgb, meta, media)


def _check_pixels(size: tuple[int, int] | None, max_pixels: int) -> None:
    if size is not None and size[0] * size[1] > max_pixels:
        w, h = size
        raise RequestError(
            413, f"the image is {w}x{h} ({w * h} pixels), over the server's --max-pixels of {max_pixels}"
        )


def response_type(accept: str | None, request_type: str) -> str:
    """The media type to answer in: the first supported one ``Accept`` names (by q-value), else
    the request's own; :class:`RequestError` 406 when ``Accept`` names only unsupported types."""
    if not accept or not accept.strip():
        return request_type
    ranked: list[tuple[float, int, str]] = []
    for i, part in enumerate(accept.split(",")):
        media, *params = (p.strip().lower() for p in part.split(";"))
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if q > 0:
            ranked.append((-q, i, media))
    for _, _, media in sorted(ranked):
        if media in ("*/*", "image/*"):
            return request_type
        if media in MEDIA_TYPES:
            return media
    raise RequestError(
        406, f"cannot answer in {accept.strip()!r}: the service writes {', '.join(MEDIA_TYPES)}"
    )


def encode_body(rgb: np.ndarray, meta: dict[str, object], media_type: str) -> bytes:
    """Encode the derained HxWx3 frame as ``media_type`` with the input's grey/alpha/depth rules."""
    return encode_image(MEDIA_TYPES[media_type], rgb, meta)
