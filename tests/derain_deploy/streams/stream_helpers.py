"""Helpers for the stream tests: tiny generated videos whose frames encode their index."""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from derain_deploy.streams import FrameSink, FrameSource

STEP = 28  # frame i is a flat grey of 16 + 28 * i: survives H.264 and tells the order


def indexed_frames(n: int, h: int = 32, w: int = 48) -> Iterator[np.ndarray]:
    for i in range(n):
        yield np.full((h, w, 3), 16 + STEP * i, np.uint8)


def frame_number(image: np.ndarray) -> int:
    """The index encoded by :func:`indexed_frames` in a decoded (float or uint8) frame."""
    mean = float(np.mean(image)) * (255 if image.dtype != np.uint8 else 1)
    return round((mean - 16) / STEP)


def run_identity(source: FrameSource, sink: FrameSink) -> int:
    """The pipeline with an identity model: every frame written as its own output."""
    n = 0
    try:
        for frame in source:
            sink.write(frame, frame.image)
            n += 1
    except BaseException:
        sink.abort()
        raise
    finally:
        source.close()
    sink.close()
    return n


def probe(path: Path) -> dict:
    """Decoded facts about a video file: frame pts and indices, time base, rate, audio."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        info = {
            "time_base": Fraction(v.time_base),
            "rate": v.average_rate,
            "width": v.codec_context.width,
            "height": v.codec_context.height,
            "audio_codec": c.streams.audio[0].codec_context.name if c.streams.audio else None,
        }
        frames = list(c.decode(video=0))
        info["pts"] = [f.pts for f in frames]
        info["numbers"] = [frame_number(f.to_ndarray(format="rgb24")) for f in frames]
        info["first"] = frames[0].to_ndarray(format="rgb24") if frames else None
    if info["audio_codec"]:
        with av.open(str(path)) as c:
            a = c.streams.audio[0]
            audio = list(c.decode(audio=0))
            info["audio_seconds"] = sum(f.samples for f in audio) / a.rate
            info["audio_start"] = float(audio[0].pts * audio[0].time_base)
            info["audio_packet_seconds"] = max(f.samples for f in audio) / a.rate
    return info


def corrupt_packet(path: Path, index: int) -> Path:
    """A copy of ``path`` (as bad.<ext>) with the data of video packet ``index`` zeroed."""
    with av.open(str(path)) as c:
        packets = [(p.pos, p.size) for p in c.demux(video=0) if p.size]
    pos, size = packets[index]
    data = bytearray(path.read_bytes())
    data[pos : pos + size - 2] = bytes(size - 2)
    bad = path.with_name("bad" + path.suffix)
    bad.write_bytes(bytes(data))
    return bad
