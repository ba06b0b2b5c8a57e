"""A live sender for tests and benchmarks: a generated clip streamed in real time (PyAV only).

``python derain_deploy/streams/loopback.py udp://127.0.0.1:PORT?pkt_size=1316 --seconds 3``
sends MPEG-TS (the reader must bind the port first); ``rtsp://`` pushes to a listening reader.
Frame ``i`` is a grey level that moves with ``i`` plus a moving bar, encoded with x264
zero-latency, at ``fps`` frames per second of wall clock. Self-contained (no package imports),
so that a sender process starts fast.
"""

from __future__ import annotations

import argparse
import socket
import time
from fractions import Fraction

import av
import numpy as np


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    """A port on 127.0.0.1 that nothing listens on now (UDP by default)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clip_frame(i: int, height: int, width: int) -> np.ndarray:
    image = np.full((height, width, 3), 40 + (i * 5) % 160, np.uint8)
    x = (i * 4) % max(width - 8, 1)
    image[:, x : x + 8] = 250
    return image


def send(url: str, *, fps: float = 25, seconds: float = 3.0, height: int = 48, width: int = 64) -> int:
    """Stream ``seconds`` of the clip to ``url`` at ``fps`` (paced by the wall clock); the frames sent."""
    fmt = "rtsp" if url.startswith("rtsp://") else "mpegts"
    rate = Fraction(fps).limit_denominator(1001)
    container = av.open(url, "w", format=fmt)
    stream = container.add_stream("libx264", rate=rate)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    stream.time_base = 1 / rate
    stream.options = {"tune": "zerolatency", "preset": "ultrafast", "bf": "0", "g": str(round(fps))}
    n = round(seconds * fps)
    t0 = time.monotonic()
    try:
        for i in range(n):
            delay = t0 + i / fps - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            vf = av.VideoFrame.from_ndarray(clip_frame(i, height, width), format="rgb24")
            vf.pts, vf.time_base = i, 1 / rate
            container.mux(stream.encode(vf))
        container.mux(stream.encode(None))
    finally:
        container.close()
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--fps", type=float, default=25.0)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--size", default="48x64", help="HEIGHTxWIDTH")
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.lower().split("x"))
    send(args.url, fps=args.fps, seconds=args.seconds, height=height, width=width)


if __name__ == "__main__":
    main()
