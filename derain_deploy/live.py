"""Live runs: one or several inputs (cameras, stream URLs, files) through one backend, each to
its own output, with real-time frame dropping, reconnection and a periodic status line.

Each input has a :class:`~derain_deploy.streams.realtime.LiveReader` thread; the calling thread
takes the newest frame of every stream, stacks the frames that share a size into one backend
call (one GPU for many cameras), and encodes each result into its stream's output. A stream that
fails (never opens, its output refuses frames, its input is gone after ``reconnect`` attempts)
ends with a one-line error by name while the others go on. On Ctrl-C or SIGTERM every output is
closed cleanly (a valid file, a closed HLS playlist) and the interruption is re-raised.
Opening the streams (settings, names, outputs, readers and sinks) is :mod:`.live_streams`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from .backends.base import Backend
from .live_streams import (  # re-exported: the public names stay importable from here
    LiveOptions,
    LiveStream,
    is_live_input,
    live_options,
    open_streams,
    output_for,
    stream_name,
    unique_names,
    wants_live,
)
from .pipeline import RunStats, to_batch
from .streams.base import Frame, StreamError
from .streams.files import one_line

if TYPE_CHECKING:
    from .job import JobOptions

__all__ = [
    "LiveOptions", "LiveRun", "LiveStream", "is_live_input", "live_options", "open_streams", "output_for",
    "run_live_inputs", "run_streams", "stream_name", "unique_names", "wants_live",
]  # fmt: skip

WAIT = 0.05  # seconds the runner waits for a frame before checking the clock and the readers


class LiveRun:
    """The runner's loop over opened :class:`LiveStream` s (see :func:`run_streams`)."""

    def __init__(self, streams: list[LiveStream], backend: Backend, options: LiveOptions,
                 say: Callable[[str], None]) -> None:
        self.streams, self.backend, self.options, self.say = streams, backend, options, say
        self.calls = 0
        self.backend_seconds = 0.0

    def active(self) -> list[LiveStream]:
        return [s for s in self.streams if not s.ended]

    def loop(self, stop: threading.Event | None = None) -> None:
        wake = self.streams[0].reader.wake if self.streams[0].reader else None
        next_status = time.monotonic() + (self.options.status_seconds or float("inf"))
        while self.active() and not (stop is not None and stop.is_set()):
            assert wake is not None
            wake.wait(WAIT)
            wake.clear()
            taken = [(s, f) for s in self.active() if s.reader and (f := s.reader.take()) is not None]
            for group in _by_size(taken, self.options.max_batch):
                self._infer(group)
            for stream in self.active():
                if stream.reader is not None and stream.reader.done:
                    self._finish(stream)
            if time.monotonic() >= next_status:
                next_status += self.options.status_seconds
                for stream in self.active():
                    self.say(f"status: {stream.name}: {stream.stats.window()}")

    def _infer(self, group: list[tuple[LiveStream, Frame]]) -> None:
        x = to_batch([f for _, f in group])
        t0 = time.perf_counter()
        y = self.backend(x)
        seconds = time.perf_counter() - t0
        self.calls += 1
        self.backend_seconds += seconds
        if y.shape != x.shape:
            raise RuntimeError(f"backend returned shape {y.shape} for input {x.shape}")
        for (stream, frame), image in zip(group, y):
            stream.backend_seconds += seconds / len(group)
            if stream.ended or stream.sink is None:
                continue
            try:
                stream.sink.write(frame, image.transpose(1, 2, 0))
            except StreamError as e:
                self._fail(stream, one_line(e))
                continue
            stream.frames_written += 1
            stream.stats.encoded(frame)

    def _fail(self, stream: LiveStream, message: str) -> None:
        stream.error = message
        self._report(stream)
        self._finish(stream)

    def _report(self, stream: LiveStream) -> None:
        """A stream's failure, said when it happens if others go on (else the run's error says it)."""
        if len(self.streams) > 1:
            self.say(f"error: {stream.name}: {stream.error}")

    def _finish(self, stream: LiveStream) -> None:
        """Stop the stream's reader and close its output cleanly (also after an error)."""
        if stream.ended:
            return
        stream.ended = True
        if stream.reader is not None:
            stream.reader.stop()
            if stream.reader.error and stream.error is None:
                stream.error = stream.reader.error
                self._report(stream)
        if stream.sink is not None:
            try:
                stream.sink.close()
            except StreamError as e:
                if stream.error is None:
                    stream.error = one_line(e)
                    self._report(stream)

    def close_all(self) -> None:
        for stream in self.streams:  # every reader told first: one join does not wait for another
            if stream.reader is not None:
                stream.reader.request_stop()
        for stream in self.streams:
            self._finish(stream)


def _by_size(taken: list[tuple[LiveStream, Frame]], max_batch: int) -> list[list[tuple[LiveStream, Frame]]]:
    """Frames grouped by image shape, each group at most ``max_batch`` long."""
    groups: dict[tuple[int, ...], list[tuple[LiveStream, Frame]]] = {}
    for item in taken:
        groups.setdefault(item[1].image.shape, []).append(item)
    return [g[i : i + max_batch] for g in groups.values() for i in range(0, len(g), max_batch)]


def run_streams(
    streams: list[LiveStream],
    backend: Backend,
    options: LiveOptions,
    say: Callable[[str], None] = print,
    stop: threading.Event | None = None,
) -> list[RunStats]:
    """Run the opened ``streams`` through ``backend`` until every one has ended or ``stop`` is
    set (outputs closed cleanly); the stats of each (``details`` holds the live counters).
    Ctrl-C/SIGTERM: outputs closed, then re-raised with ``outputs_closed = True`` on it."""
    opened = [s for s in streams if s.reader is not None and not s.ended]
    wake = threading.Event()
    for stream in opened:
        assert stream.reader is not None
        stream.reader.wake = wake
        stream.stats.started = time.monotonic()
        stream.reader.start()
    runner = LiveRun(opened, backend, options, say)
    start = time.perf_counter()
    try:
        if opened:
            runner.loop(stop)
            runner.close_all()
    except KeyboardInterrupt as e:
        runner.close_all()
        e.outputs_closed = True  # type: ignore[attr-defined]
        _summaries(streams, runner, backend, time.perf_counter() - start, say)
        raise
    except BaseException:
        runner.close_all()
        raise
    return _summaries(streams, runner, backend, time.perf_counter() - start, say)


def _summaries(streams: list[LiveStream], runner: LiveRun, backend: Backend, seconds: float,
               say: Callable[[str], None]) -> list[RunStats]:
    info = backend.info
    results = []
    for stream in streams:
        stats = RunStats(
            frames=stream.frames_written,
            seconds=seconds,
            backend=info.describe().split(" (")[0],
            precision=info.precision,
            output=stream.output,
            backend_seconds=stream.backend_seconds,
            batches=runner.calls,
        )
        stats.details.update(stream.stats.as_dict(), name=stream.name, error=stream.error,
                             backend_calls=runner.calls)
        if stream.reader is not None:
            say(f"summary: {stream.name}: {stats.describe()}; {stream.stats.describe()}")
        results.append(stats)
    return results



def run_live_inputs(
    inputs: Sequence[str],
    options: JobOptions,
    open_backend: Callable[[], Backend],
    say: Callable[[str], None] = print,
) -> list[RunStats]:
    """``derain-run`` live: every input (or the camera) at once into one backend. Real-time is the
    default when any input is live; with only files it is --realtime's. Raises StreamError naming
    the streams that failed, after the others have finished."""
    settings = live_options(options)
    if options.realtime is None and not any(is_live_input(s, options.camera) for s in inputs or [None]):
        settings.realtime = False  # files to a live output: every frame, at the file's timing
    streams = open_streams(list(inputs), options.output, settings, camera=options.camera, say=say)
    opened = [s for s in streams if s.error is None]
    if not opened:
        raise StreamError("; ".join(f"{s.name}: {s.error}" for s in streams))
    for stream in streams:
        if stream.error is not None:
            say(f"error: {stream.name}: {stream.error}")
    try:
        backend = open_backend()
    except BaseException:
        for stream in opened:
            _discard(stream)
        raise
    results = run_streams(streams, backend, settings, say)
    failed = [s for s in streams if s.error is not None]
    if len(streams) == 1 and failed:
        raise StreamError(f"{failed[0].name}: {failed[0].error}")
    if failed:
        names = ", ".join(s.name for s in failed)
        raise StreamError(f"{len(failed)} of {len(streams)} streams failed: {names}")
    return results


def _discard(stream: LiveStream) -> None:
    """Undo an opened stream that never ran: source closed, output removed (or closed if live)."""
    if stream.reader is not None:
        stream.reader.stop(timeout=0)
    if stream.sink is not None:
        stream.sink.abort()
