"""Live runs on loopback: UDP senders (PyAV processes) -> derain-run's live runner -> HLS/files."""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path

import av
import pytest
from live_helpers import rising, start_sender, stop, udp_url

from derain_deploy.live import LiveOptions, open_streams, run_streams
from derain_deploy.streams.loopback import free_port
from derain_deploy.toy_backend import ToyBackend


def options(**kw: object) -> LiveOptions:
    base = {"reconnect": 0, "timeout": 1.5, "status_seconds": 0, "backoff": 0.2, "max_backoff": 0.5}
    return LiveOptions(**{**base, **kw})  # type: ignore[arg-type]


def decoded_pts(path: Path) -> list[int]:
    with av.open(str(path)) as container:
        return [f.pts for f in container.decode(video=0)]


def test_slow_backend_latency_stays_bounded_and_drops_are_counted(tmp_path: Path) -> None:
    url = udp_url(free_port())
    sender = start_sender(url, seconds=3)
    try:
        streams = open_streams([url], str(tmp_path / "out.m3u8"), options())
        backend = ToyBackend(delay=0.2)  # 5 calls/s against 25 frames/s
        lines: list[str] = []
        [stats] = run_streams(streams, backend, options(), say=lines.append)
    finally:
        stop(sender)
    live = stats.details
    assert live["received"] >= 60 and live["dropped"] >= 40
    assert live["received"] == live["processed"] + live["dropped"]
    assert live["processed"] == len(backend.batch_sizes) == stats.frames
    # waiting for the current call, then one call: about two calls at most
    assert live["latency_p99_ms"] < 2 * 200 + 150, live
    playlist = tmp_path / "out.m3u8"
    assert playlist.read_text().rstrip().endswith("#EXT-X-ENDLIST")
    pts = decoded_pts(playlist)
    assert len(pts) == stats.frames and rising(pts)
    span = (pts[-1] - pts[0]) / 90000  # mpegts: 1/90000; the output spans the input's real time
    assert 2.0 < span < 4.5  # 3 s sent; arrival jitter on a busy machine
    assert any(line.startswith("summary: ") and "dropped" in line for line in lines)


def test_two_streams_share_backend_calls_and_a_dead_one_fails_by_name(tmp_path: Path) -> None:
    urls = [udp_url(free_port()) for _ in range(3)]
    senders = [start_sender(url, seconds=3) for url in urls[:2]]  # nothing is sent to urls[2]
    try:
        streams = open_streams(urls, str(tmp_path), options(timeout=2.5))
        backend = ToyBackend(delay=0.1)
        results = run_streams(streams, backend, options())
    finally:
        for sender in senders:
            stop(sender)
    dead = streams[2]
    assert dead.error is not None and urls[2] in dead.error and dead.name.startswith("127.0.0.1_")
    assert max(backend.batch_sizes) == 2 and backend.batch_sizes.count(2) >= 3
    outputs = {Path(r.output) for r in results[:2]}  # each stream its own output and counters
    assert len(outputs) == 2 and all(p.parent == tmp_path and p.suffix == ".mp4" for p in outputs)
    for result in results[:2]:
        assert result.frames >= 5 and result.details["processed"] == result.frames
        assert rising(decoded_pts(Path(result.output)))


def test_a_sender_stopped_and_restarted_is_reconnected(tmp_path: Path) -> None:
    url = udp_url(free_port())
    lines: list[str] = []
    opts = options(reconnect=8, timeout=1.0, backoff=0.1, max_backoff=0.4)
    done = threading.Event()
    sender = start_sender(url, seconds=1.5)
    try:
        streams = open_streams([url], str(tmp_path / "live.m3u8"), opts, say=lines.append)

        def restart() -> None:
            nonlocal sender
            sender.wait(timeout=10)
            time.sleep(2.0)  # well over the 1 s read timeout: the reader stalls, then reopens with backoff
            sender = start_sender(url, seconds=1.5)
            sender.wait(timeout=15)
            time.sleep(0.3)
            done.set()  # the run stops here (its outputs closed), not after 8 more attempts

        thread = threading.Thread(target=restart, daemon=True)
        thread.start()
        [stats] = run_streams(streams, ToyBackend(delay=0.02), opts, say=lines.append, stop=done)
        thread.join(5)
    finally:
        stop(sender)
    assert stats.details["reconnects"] >= 1, lines
    assert any("reconnecting" in line for line in lines) and any("reconnected" in line for line in lines)
    pts = decoded_pts(tmp_path / "live.m3u8")
    assert rising(pts) and len(pts) == stats.frames
    gaps = [(b - a) / 90000 for a, b in itertools.pairwise(pts)]
    assert max(gaps) > 0.8  # the outage is a gap in the same output, timestamps continue
    assert (pts[-1] - pts[0]) / 90000 > 2.5


@pytest.mark.parametrize("n", [1])
def test_never_opening_stream_alone_fails_in_one_line(n: int, tmp_path: Path) -> None:
    streams = open_streams([udp_url(free_port())], str(tmp_path), options(timeout=0.5))
    assert streams[0].error and "\n" not in streams[0].error and streams[0].reader is None
