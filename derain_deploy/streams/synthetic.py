"""Write short videos from arrays (PyAV): test data and the README demo's rainy clip."""

from __future__ import annotations

import os
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from .files import remove_quietly, temp_path


def write_test_video(
    path: str | Path,
    frames: Iterable[np.ndarray],
    *,
    fps: Fraction | int | str = 25,
    time_base: Fraction | None = None,
    codec: str = "libx264",
    crf: int = 18,
    audio: bool = False,
    audio_codec: str = "aac",
    sample_rate: int = 48000,
    tone_hz: float = 440.0,
) -> Path:
    """Encode ``frames`` (HxWx3 RGB, uint8 or float in [0, 1], even sizes for yuv420p codecs)
    into ``path``; the container follows the extension. Frame ``i`` gets pts ``i / fps`` in
    ``time_base`` units (default ``1 / fps``). With ``audio`` a sine tone as long as the video
    is added (``audio_codec``: aac, mp3, opus, flac, pcm_s16le, ...). Written atomically."""
    path = Path(path)
    fps = Fraction(fps)
    time_base = time_base or 1 / fps
    tmp = temp_path(path)
    count = 0
    try:
        with av.open(str(tmp), "w") as container:
            stream = container.add_stream(codec, rate=fps)
            stream.time_base = time_base
            stream.codec_context.time_base = time_base
            if codec in ("libx264", "libx265"):
                stream.options = {"crf": str(crf)}
            frames = iter(frames)
            first = next(frames, None)
            if first is None:
                raise ValueError("no frames to write")
            stream.height, stream.width = first.shape[:2]
            stream.pix_fmt = _pix_fmt(codec)
            a_stream = None
            if audio:
                a_stream = container.add_stream(audio_codec, rate=sample_rate)
                a_stream.layout = "stereo" if audio_codec != "pcm_s16le" else "mono"
            for image in _chain(first, frames):
                vf = av.VideoFrame.from_ndarray(_to_uint8(image), format="rgb24")
                vf.pts = round(count / fps / time_base)
                vf.time_base = time_base
                container.mux(stream.encode(vf))
                count += 1
            container.mux(stream.encode(None))
            if a_stream is not None:
                _write_tone(container, a_stream, seconds=count / fps, rate=sample_rate, hz=tone_hz)
        os.replace(tmp, path)
    except BaseException:
        remove_quietly(tmp)
        raise
    return path


def _chain(first: np.ndarray, rest: Iterable[np.ndarray]) -> Iterable[np.ndarray]:
    yield first
    yield from rest


def _pix_fmt(codec: str) -> str:
    return {"png": "rgb24", "ffv1": "yuv444p", "mjpeg": "yuvj420p", "rawvideo": "rgb24"}.get(codec, "yuv420p")


def _to_uint8(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint8:
        return np.ascontiguousarray(image)
    return np.floor(np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)


def _write_tone(
    container: av.container.OutputContainer,
    stream: av.AudioStream,
    *,
    seconds: Fraction,
    rate: int,
    hz: float,
) -> None:
    total = round(seconds * rate)
    cc = stream.codec_context
    channels = cc.layout.nb_channels
    chunk = cc.frame_size or 1024
    fmt = cc.format.name
    resampler = av.AudioResampler(format=fmt, layout=cc.layout, rate=rate)
    for start in range(0, total, chunk):
        n = min(chunk, total - start)
        t = (np.arange(start, start + n) / rate).astype(np.float32)
        wave = (0.2 * np.sin(2 * np.pi * hz * t)).astype(np.float32)
        samples = np.repeat(wave[None, :], channels, axis=0)  # planar float
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout=cc.layout)
        frame.sample_rate = rate
        frame.pts = start
        frame.time_base = Fraction(1, rate)
        for resampled in resampler.resample(frame):
            container.mux(stream.encode(resampled))
    for resampled in resampler.resample(None):
        container.mux(stream.encode(resampled))
    container.mux(stream.encode(None))


def rainy_clip(
    photo: str = "astronaut",
    *,
    frames: int = 24,
    size: tuple[int, int] = (240, 320),
    preset: str = "medium",
    pan: int = 2,
    seed: int = 0,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(rainy, clean) HxWx3 float32 frames: a window panning ``pan`` pixels per frame across a
    scikit-image sample photo (``astronaut``, ``coffee``, ``chelsea``, ...), with one rain
    style (from :mod:`derain_deploy.rain`, ``preset``) and new streaks in every frame."""
    from ..rain import sample_params
    from ..rainy_inputs import rainy_frame

    h, w = size
    rng = np.random.default_rng(seed)
    params = sample_params(preset, rng)  # one rain style, new streaks in every frame
    cover = (h, w + pan * max(frames - 1, 0))
    pairs = [
        rainy_frame(h, w, preset=params, photo_name=photo, rng=rng, cover=cover, at=(0, i * pan))
        for i in range(frames)
    ]
    rainy, clean = (list(x) for x in zip(*pairs)) if pairs else ([], [])
    return rainy, clean
