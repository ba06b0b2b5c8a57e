"""Loopback helpers for the live tests: a sender process and a listening receiver, both bounded."""

from __future__ import annotations

import itertools
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import av

import derain_deploy.streams.loopback as loopback

SENDER = Path(loopback.__file__)


def udp_url(port: int) -> str:
    return f"udp://127.0.0.1:{port}?pkt_size=1316"


def start_sender(url: str, seconds: float, size: str = "48x64", fps: float = 25) -> subprocess.Popen:
    """A PyAV process streaming the generated clip to ``url`` in real time."""
    args = [sys.executable, str(SENDER), url, "--seconds", str(seconds), "--size", size, "--fps", str(fps)]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.kill()
    process.wait(timeout=5)


@dataclass
class Received:
    pts: list[int] = field(default_factory=list)
    keyframes: int = 0
    shape: tuple[int, ...] | None = None
    error: str | None = None


def receive(url: str, options: dict[str, str], timeout: float | None, max_frames: int = 500) -> Received:
    """Decode what arrives at ``url`` (the reader listens/binds), until the sender ends, ``timeout``
    passes without data (PyAV's interrupt; None for RTSP listen, bounded by listen_timeout), or
    ``max_frames``."""
    got = Received()
    try:
        with av.open(url, options=options, timeout=timeout) as container:
            for vf in container.decode(video=0):
                if vf.pts is not None:
                    got.pts.append(vf.pts)
                got.keyframes += int(vf.key_frame)
                got.shape = (vf.height, vf.width)
                if len(got.pts) >= max_frames:
                    break
    except (av.FFmpegError, OSError) as e:  # the end of a UDP stream is a read timeout
        got.error = type(e).__name__
    return got


def receive_in_thread(
    url: str, options: dict[str, str], timeout: float | None
) -> tuple[threading.Thread, Received]:
    box: list[Received] = []
    thread = threading.Thread(target=lambda: box.append(receive(url, options, timeout)), daemon=True)
    thread.start()
    return thread, _Lazy(box)  # type: ignore[return-value]


class _Lazy:
    """The receiver's result once its thread has ended."""

    def __init__(self, box: list[Received]) -> None:
        self._box = box

    def __getattr__(self, name: str) -> object:
        return getattr(self._box[0], name)


def rising(values: list[int]) -> bool:
    return all(b > a for a, b in itertools.pairwise(values))
