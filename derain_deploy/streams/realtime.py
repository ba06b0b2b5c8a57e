"""Real-time reading of a live input: a reader thread, reconnection, and latency accounting.

In real-time mode the reader keeps only the newest decoded frame: a frame not taken before the
next one arrives is dropped (and counted), so the backend always gets the latest scene and the
latency stays bounded (about one backend call of waiting plus one of processing), however slow
the backend. Each frame's pts is its capture time relative to the stream's first frame
(:data:`CLOCK` units), so the output plays at real speed with gaps where frames were dropped,
and the clock keeps running across reconnections. Without real-time mode every frame is kept
(a bounded queue of 2 holds the reader back) with the input's own timestamps, shifted after a
reconnection so that they keep rising.

A live input (camera, stream URL) that stalls (no frame within its read timeout) or ends is
reopened with exponential backoff, up to ``reconnect`` attempts in a row; a file just ends.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from .base import Frame, FrameSource, StreamError
from .files import one_line

log = logging.getLogger(__name__)

CLOCK = Fraction(1, 1000)  # real-time pts: milliseconds since the stream's first frame
LATENCY_WINDOW = 4096  # latencies kept for the percentiles (memory stays flat)


@dataclass
class LiveStats:
    """One stream's counters; latency is capture (frame decoded) -> output frame encoded."""

    received: int = 0
    dropped: int = 0
    processed: int = 0
    reconnects: int = 0
    started: float = field(default_factory=time.monotonic)
    last: float | None = None  # when the latest frame arrived or was encoded (rates end there)
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _mark: tuple[float, int, int] | None = field(default=None, repr=False)

    def encoded(self, frame: Frame, now: float | None = None) -> None:
        captured = frame.meta.get("captured")
        now = now or time.monotonic()
        with self._lock:
            self.processed += 1
            self.last = now
            if isinstance(captured, float):
                self.latencies.append(now - captured)

    def latency_ms(self, q: float) -> float | None:
        with self._lock:
            values = list(self.latencies)
        return float(np.percentile(values, q)) * 1000 if values else None

    def as_dict(self) -> dict[str, object]:
        seconds = max((self.last or time.monotonic()) - self.started, 1e-9)  # a final stall excluded
        return {
            "received": self.received,
            "processed": self.processed,
            "dropped": self.dropped,
            "reconnects": self.reconnects,
            "input_fps": round(self.received / seconds, 2),
            "processed_fps": round(self.processed / seconds, 2),
            "latency_p50_ms": _round(self.latency_ms(50)),
            "latency_p99_ms": _round(self.latency_ms(99)),
        }

    def window(self) -> str:
        """:meth:`describe` with the rates over the time since the last call (the status line)."""
        now = time.monotonic()
        mark = self._mark or (self.started, 0, 0)
        self._mark = (now, self.received, self.processed)
        seconds = max(now - mark[0], 1e-9)
        return self.describe((self.received - mark[1]) / seconds, (self.processed - mark[2]) / seconds)

    def describe(self, input_fps: float | None = None, processed_fps: float | None = None) -> str:
        d = self.as_dict()
        if input_fps is not None:
            d.update(input_fps=input_fps, processed_fps=processed_fps)
        p50, p99 = d["latency_p50_ms"], d["latency_p99_ms"]
        latency = f"latency p50 {p50:.0f} ms p99 {p99:.0f} ms" if p50 is not None else "latency -"
        text = (
            f"in {d['input_fps']:.1f} fps, out {d['processed_fps']:.1f} fps, "
            f"{d['dropped']} dropped of {d['received']}, {latency}"
        )
        return text + (f", {d['reconnects']} reconnects" if d["reconnects"] else "")


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


class LiveReader:
    """Reads ``source`` on a thread; :meth:`take` gives the next frame to process.

    ``reopen`` opens the input again after a stall or an end (``reconnect`` attempts in a row,
    waits of ``backoff`` doubling up to ``max_backoff`` seconds; None: never). ``wake`` is set
    whenever a frame arrives or the reader ends, so that one thread can wait on several readers."""

    def __init__(
        self,
        name: str,
        source: FrameSource,
        *,
        realtime: bool,
        reopen: Callable[[], FrameSource] | None = None,
        reconnect: int = 0,
        backoff: float = 0.5,
        max_backoff: float = 10.0,
        wake: threading.Event | None = None,
        stats: LiveStats | None = None,
        say: Callable[[str], None] | None = None,
    ) -> None:
        self.name = name
        self.realtime = realtime
        self.stats = stats or LiveStats()
        self.wake = wake or threading.Event()
        self.error: str | None = None  # why the stream ended early, one line
        self._source = source
        self._reopen = reopen
        self._reconnect = reconnect if reopen is not None else 0
        self._backoff, self._max_backoff = backoff, max_backoff
        self._say = say or log.warning
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._newest: Frame | None = None
        self._queue: queue.Queue[Frame] = queue.Queue(maxsize=2)
        self._t0: float | None = None
        self._last_pts: int | None = None
        self._offset = 0  # added to source pts after a reconnection (not real-time)
        self._step = 1  # one frame's duration in source pts units
        self._thread = threading.Thread(target=self._run, name=f"live-read-{name}", daemon=True)

    def start(self) -> LiveReader:
        self._thread.start()
        return self

    @property
    def done(self) -> bool:
        """The reader has ended and every frame it kept has been taken."""
        return not self._thread.is_alive() and self._newest is None and self._queue.empty()

    def take(self) -> Frame | None:
        """The newest frame (real-time) or the next one, without waiting; None if there is none."""
        if self.realtime:
            with self._lock:
                frame, self._newest = self._newest, None
            return frame
        try:
            return self._queue.get_nowait()
        except queue.Empty:
            return None

    def request_stop(self) -> None:
        """Ask the thread to stop, without waiting (see :meth:`stop`)."""
        self._stop.set()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop reading; a frame still waiting is counted as dropped."""
        self._stop.set()
        if self._thread.ident is None:  # never started
            self._source.close()
            return
        self._thread.join(timeout)
        leftover = (1 if self.take() is not None else 0) if self.realtime else self._drain()
        with self._lock:
            self.stats.dropped += leftover

    def _drain(self) -> int:
        n = 0
        while self.take() is not None:
            n += 1
        return n

    def _run(self) -> None:
        try:
            self._loop()
        finally:
            self.wake.set()

    def _loop(self) -> None:
        source: FrameSource | None = self._source
        failures, reason = 0, "ended"
        while not self._stop.is_set():
            if source is not None:
                reason = "ended"
                try:
                    for frame in source:
                        failures = 0
                        self._deliver(frame)
                        if self._stop.is_set():
                            return
                except StreamError as e:
                    reason = one_line(e)
                except Exception as e:  # a decoder or network error: the stream goes on or ends by name
                    reason = f"{type(e).__name__}: {one_line(e)}"
                finally:
                    source.close()
                source = None
            if self._stop.is_set():
                return
            if failures >= self._reconnect:
                if self._reconnect:
                    self.error = f"{reason} (gave up after {failures} reconnects)"
                elif reason != "ended":
                    self.error = reason
                return
            failures += 1
            wait = min(self._backoff * 2 ** (failures - 1), self._max_backoff)
            attempt = f"{failures} of {self._reconnect}"
            self._say(f"stream {self.name}: {reason}; reconnecting in {wait:.1f} s ({attempt})")
            if self._stop.wait(wait):
                return
            try:
                assert self._reopen is not None
                source = self._reopen()
            except StreamError as e:
                reason = one_line(e)
                continue
            self.stats.reconnects += 1
            self._resume()
            self._say(f"stream {self.name}: reconnected")

    def _resume(self) -> None:
        if self._last_pts is not None:  # a reopened input's pts start again near 0
            self._offset = self._last_pts + self._step

    def _deliver(self, frame: Frame) -> None:
        now = time.monotonic()
        frame.meta["captured"] = now
        if self.realtime:
            self._t0 = now if self._t0 is None else self._t0
            pts, frame.time_base = round((now - self._t0) / CLOCK), CLOCK
        else:
            pts = None if frame.pts is None else frame.pts + self._offset
            if pts is not None and self._last_pts is not None and pts > self._last_pts:
                self._step = pts - self._last_pts
        if pts is not None and self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1
        frame.pts = pts
        if pts is not None:
            self._last_pts = pts
        with self._lock:
            if self.stats.received == 0:  # rates count from the first frame, not from the open
                self.stats.started = now
            self.stats.received += 1
            self.stats.last = now
        if self.realtime:
            with self._lock:
                if self._newest is not None:
                    self.stats.dropped += 1
                self._newest = frame
            self.wake.set()
            return
        while not self._stop.is_set():
            try:
                self._queue.put(frame, timeout=0.1)
                self.wake.set()
                return
            except queue.Full:
                continue
