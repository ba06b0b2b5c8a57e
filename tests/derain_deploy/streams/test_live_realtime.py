"""The real-time reader: newest frame kept, drops counted, clock pts, reconnection (no network)."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from fractions import Fraction

import numpy as np
import pytest

from derain_deploy.streams.base import Frame, SourceInfo, StreamError
from derain_deploy.streams.realtime import CLOCK, LiveReader, LiveStats


class PacedSource:
    """``n`` frames at ``fps`` (wall clock), then the end, or a stall error with ``fail``."""

    def __init__(self, n: int, fps: float = 100, fail: bool = False) -> None:
        self.n, self.fps, self.fail = n, fps, fail
        self.info = SourceInfo(kind="stream", path="fake://cam", fps=Fraction(25), time_base=Fraction(1, 25))
        self.closed = False

    def __iter__(self) -> Iterator[Frame]:
        for i in range(self.n):
            time.sleep(1 / self.fps)
            yield Frame(np.zeros((4, 4, 3), np.float32), i, pts=i, time_base=Fraction(1, 25))
        if self.fail:
            raise StreamError("cannot read fake://cam: timed out")

    def close(self) -> None:
        self.closed = True


def drain(reader: LiveReader, per_frame: float, limit: float = 5.0) -> list[Frame]:
    """Take frames like a backend taking ``per_frame`` seconds each, until the reader is done."""
    taken: list[Frame] = []
    deadline = time.monotonic() + limit
    while not reader.done and time.monotonic() < deadline:
        reader.wake.wait(0.02)
        reader.wake.clear()
        frame = reader.take()
        if frame is not None:
            taken.append(frame)
            reader.stats.encoded(frame)
            time.sleep(per_frame)
    reader.stop()
    return taken


def test_realtime_keeps_the_newest_and_counts_every_drop() -> None:
    reader = LiveReader("cam", PacedSource(40), realtime=True).start()
    taken = drain(reader, per_frame=0.05)  # 100 fps in, ~20 fps out
    stats = reader.stats
    assert stats.received == 40 and stats.dropped > 0
    assert stats.received == stats.processed + stats.dropped
    assert [f.index for f in taken] == sorted(f.index for f in taken)
    assert all(f.time_base == CLOCK for f in taken)
    pts = [f.pts for f in taken]
    assert all(b > a for a, b in itertools.pairwise(pts))  # capture clock, rising
    assert stats.latency_ms(99) is not None and stats.latency_ms(99) < 200


def test_no_realtime_keeps_every_frame() -> None:
    reader = LiveReader("cam", PacedSource(30, fps=200), realtime=False).start()
    taken = drain(reader, per_frame=0.01)
    assert [f.index for f in taken] == list(range(30)) and reader.stats.dropped == 0
    assert [f.pts for f in taken] == list(range(30))  # the input's own timing


def test_a_stalled_input_is_reopened_and_timestamps_keep_rising() -> None:
    opened: list[PacedSource] = []
    lines: list[str] = []

    def reopen() -> PacedSource:  # the sender comes back once, then is gone for good
        if opened:
            raise StreamError("cannot open stream fake://cam: Connection refused")
        opened.append(PacedSource(10))
        return opened[-1]

    first = PacedSource(10, fail=True)
    reader = LiveReader("cam", first, realtime=False, reopen=reopen, reconnect=3, backoff=0.05,
                        say=lines.append).start()
    taken = drain(reader, per_frame=0.0)
    assert first.closed and len(opened) == 1 and reader.stats.reconnects == 1
    assert len(taken) == 20 and reader.error.endswith("Connection refused (gave up after 3 reconnects)")
    pts = [f.pts for f in taken]
    assert all(b > a for a, b in itertools.pairwise(pts)), pts
    assert any("reconnecting in 0.1 s (1 of 3)" in line for line in lines)
    assert any(line.endswith("reconnected") for line in lines)


def test_reconnection_gives_up_after_n_attempts_with_a_bounded_wait() -> None:
    def reopen() -> PacedSource:
        raise StreamError("cannot open stream fake://cam: Connection refused")

    lines: list[str] = []
    reader = LiveReader("cam", PacedSource(2, fail=True), realtime=True, reopen=reopen, reconnect=2,
                        backoff=0.05, max_backoff=0.1, say=lines.append).start()
    start = time.monotonic()
    drain(reader, per_frame=0.0)
    assert time.monotonic() - start < 2
    assert reader.error == "cannot open stream fake://cam: Connection refused (gave up after 2 reconnects)"
    assert len([line for line in lines if "reconnecting" in line]) == 2


def test_stats_window_and_latency_are_bounded_in_memory() -> None:
    stats = LiveStats()
    frame = Frame(np.zeros((1, 1, 3), np.float32), 0, meta={"captured": time.monotonic() - 0.1})
    for _ in range(10_000):
        stats.encoded(frame)
    assert len(stats.latencies) == 4096
    assert 90 < stats.latency_ms(50) < 1000
    assert "out" in stats.window() and threading.active_count() >= 1


def test_stream_names_and_outputs() -> None:
    from derain_deploy.live import LiveStream, output_for, stream_name, unique_names

    assert stream_name("rtsp://cam.local:8554/gate/cam1") == "cam1"
    assert stream_name("udp://127.0.0.1:5000?pkt_size=1316") == "127.0.0.1_5000"
    assert stream_name(None, camera=0) == "camera0"
    assert unique_names(["cam", "cam", "x", "cam"]) == ["cam", "cam-2", "x", "cam-3"]
    info = SourceInfo(kind="stream", path="rtsp://h/cam1")
    cam = LiveStream(name="cam1", spec="rtsp://h/cam1")
    assert output_for(cam, info, "hls/{name}/live.m3u8", several=True) == "hls/cam1/live.m3u8"
    assert output_for(cam, info, "out/", several=True) == "out/cam1.derained.mp4"
    assert output_for(cam, info, "rtsp://server:8554/derained", several=False) == "rtsp://server:8554/derained"
    assert output_for(cam, info, None, several=False) == "cam1.derained.mp4"
    with pytest.raises(StreamError, match=r"hold \{name\}"):
        output_for(cam, info, "one.m3u8", several=True)


def test_live_options_refuse_bitrate_with_crf() -> None:
    from derain_deploy.job import JobOptions
    from derain_deploy.live import live_options

    assert live_options(JobOptions(bitrate="1.5M")).encoding.bitrate == 1_500_000
    assert live_options(JobOptions(crf=28)).encoding.crf == 28
    with pytest.raises(StreamError, match="not both"):
        live_options(JobOptions(bitrate="2M", crf=20))
