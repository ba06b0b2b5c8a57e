"""Live runs: one or several inputs (cameras, stream URLs, files) through one backend, each to
its own output, with real-time frame dropping, reconnection and a periodic status line.

Each input has a :class:`~derain_deploy.streams.realtime.LiveReader` thread; the calling thread
takes the newest frame of every stream, stacks the frames that share a size into one backend
call (one GPU for many cameras), and encodes each result into its stream's output. A stream that
fails (never opens, its output refuses frames, its input is gone after ``reconnect`` attempts)
ends with a one-line error by name while the others go on. On Ctrl-C or SIGTERM every output is
closed cleanly (a valid file, a closed HLS playlist) and the interruption is re-raised.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from .backends.base import Backend
from .pipeline import RunStats, to_batch
from .streams import default_output_path, open_sink, open_source
from .streams.base import Frame, FrameSink, FrameSource, SourceInfo, StreamError
from .streams.files import one_line
from .streams.live_sink import LiveEncoding, is_live_output, parse_bitrate
from .streams.realtime import CLOCK, LiveReader, LiveStats
from .streams.video import is_stream_url

if TYPE_CHECKING:
    from .job import JobOptions

WAIT = 0.05  # seconds the runner waits for a frame before checking the clock and the readers


@dataclass
class LiveOptions:
    """How a live run reads, retries, reports and encodes."""

    realtime: bool = True
    reconnect: int = 5  # attempts in a row for a live input that stalls or ends (0: never)
    backoff: float = 0.5  # first wait before reopening, doubled per failed attempt
    max_backoff: float = 10.0
    timeout: float = 10.0  # seconds to open a stream URL and for each read (a stall)
    status_seconds: float = 10.0  # a status line every N seconds (0: none)
    max_batch: int = 16  # at most this many frames of one size in a backend call
    encoding: LiveEncoding = field(default_factory=LiveEncoding)
    quality: int = 18  # crf of file outputs (mp4 ...)
    skip_bad_frames: bool = False
    max_pixels: int | None = None


@dataclass
class LiveStream:
    """One input of a live run and its output."""

    name: str
    spec: str | None
    camera: int | None = None
    output: str | None = None
    reader: LiveReader | None = None
    sink: FrameSink | None = None
    stats: LiveStats = field(default_factory=LiveStats)
    error: str | None = None
    frames_written: int = 0
    ended: bool = False
    backend_seconds: float = 0.0


def is_live_input(spec: str | None, camera: int | None = None) -> bool:
    return camera is not None or (spec is not None and is_stream_url(spec))


def stream_name(spec: str | None, camera: int | None = None) -> str:
    """A short name for logs and outputs: ``camera0``, the URL's last path part (``cam1`` of
    ``rtsp://host/cam1``), ``HOST_PORT`` for a URL without path, a file's stem."""
    if camera is not None:
        return f"camera{camera}"
    text = str(spec)
    if is_stream_url(text):
        url = urlparse(text)
        stem = PurePosixPath(url.path).stem
        if stem:
            return stem
        host = (url.hostname or "stream").replace(":", "_")
        return f"{host}_{url.port}" if url.port else host
    return Path(text).stem


def unique_names(names: Sequence[str]) -> list[str]:
    """``names`` with repeats numbered: cam, cam -> cam, cam-2."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}-{seen[name]}")
    return out


def output_for(stream: LiveStream, info: SourceInfo, output: str | None, several: bool) -> str:
    """Where a stream writes: ``output`` with ``{name}`` filled in; a live URL or ``.m3u8`` as
    given (one stream); else ``<name>.derained.mp4`` in ``output`` (a folder) or here."""
    if output and "{name}" in output:
        return output.replace("{name}", stream.name)
    if several and output and (is_live_output(output) or Path(output).suffix):
        raise StreamError(f"several inputs need -o to be a folder or to hold {{name}}, not {output}")
    if output and is_live_output(output):
        return output
    if info.kind in ("camera", "stream"):
        folder = Path(output) if output else Path(".")
        if output and Path(output).suffix and not several:
            return output
        return str(folder / f"{stream.name}.derained.mp4")
    return str(default_output_path(info, output))


def _sink_info(info: SourceInfo, realtime: bool) -> SourceInfo:
    """The source's info as the sink needs it: real-time frames are timed by :data:`CLOCK`."""
    if not realtime:
        return info
    return SourceInfo(kind=info.kind, path=info.path, fps=info.fps, time_base=CLOCK,
                      width=info.width, height=info.height, has_audio=False)


def open_streams(
    specs: Sequence[str | None],
    output: str | None,
    options: LiveOptions,
    *,
    camera: int | None = None,
    say: Callable[[str], None] = print,
) -> list[LiveStream]:
    """Open each input and its output; one that fails is kept with its ``error`` set (one line),
    so that the others go on."""
    cameras = [camera] if camera is not None else [None] * len(specs)
    specs = [None] if camera is not None else list(specs)
    names = unique_names([stream_name(s, c) for s, c in zip(specs, cameras)])
    streams = [LiveStream(name=n, spec=s, camera=c) for n, s, c in zip(names, specs, cameras)]

    def open_one(stream: LiveStream) -> None:
        try:
            _open_stream(stream, output, options, several=len(streams) > 1, say=say)
        except StreamError as e:
            stream.error, stream.ended = one_line(e), True

    with ThreadPoolExecutor(max_workers=min(len(streams), 16)) as pool:  # a dead one delays none
        list(pool.map(open_one, streams))
    return streams


def _open_stream(
    stream: LiveStream, output: str | None, options: LiveOptions, *, several: bool, say: Callable[[str], None]
) -> None:
    def reopen() -> FrameSource:
        return open_source(stream.spec, camera=stream.camera, skip_bad_frames=options.skip_bad_frames,
                           timeout=options.timeout, max_pixels=options.max_pixels)

    source = reopen()
    try:
        stream.output = output_for(stream, source.info, output, several)
        sink_info = _sink_info(source.info, options.realtime)
        stream.sink = open_sink(sink_info, stream.output, quality=options.quality,
                                preset=options.encoding.preset, live=options.encoding)
    except BaseException:
        source.close()
        raise
    live = source.info.kind in ("camera", "stream")
    stream.reader = LiveReader(
        stream.name,
        source,
        realtime=options.realtime,
        reopen=reopen if live else None,
        reconnect=options.reconnect if live else 0,
        backoff=options.backoff,
        max_backoff=options.max_backoff,
        stats=stream.stats,
        say=say,
    )


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



def wants_live(inputs: Sequence[str], options: JobOptions) -> bool:
    """Whether ``derain-run`` runs live: a camera, a stream URL, a live output, or --realtime."""
    return (
        bool(options.realtime)
        or is_live_output(options.output)
        or (options.output is not None and "{name}" in options.output)
        or any(is_live_input(s, options.camera) for s in inputs or [None])
    )


def live_options(options: JobOptions) -> LiveOptions:
    """The live settings of ``derain-run``'s options; real-time unless --no-realtime, or a file input
    without --realtime."""
    encoding = LiveEncoding(crf=options.crf if options.crf is not None else 23)
    if options.bitrate is not None:
        if options.crf is not None:
            raise StreamError("give --bitrate or --crf, not both")
        encoding.bitrate = parse_bitrate(options.bitrate)
    return LiveOptions(
        realtime=True if options.realtime is None else options.realtime,
        reconnect=options.reconnect,
        status_seconds=options.status_seconds,
        max_batch=max(options.batch, 16),
        encoding=encoding,
        quality=options.quality,
        skip_bad_frames=options.skip_bad_frames,
        max_pixels=options.max_pixels,
    )


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
