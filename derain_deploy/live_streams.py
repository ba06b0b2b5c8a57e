"""Live runs, opening side: the settings (:class:`LiveOptions`), one stream's state
(:class:`LiveStream`), naming and output paths, and opening every input with its reader and
sink (:func:`open_streams`). :mod:`derain_deploy.live` runs them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from .streams import default_output_path, open_sink, open_source
from .streams.base import FrameSink, FrameSource, SourceInfo, StreamError
from .streams.files import one_line
from .streams.live_sink import LiveEncoding, is_live_output, parse_bitrate
from .streams.realtime import CLOCK, LiveReader, LiveStats
from .streams.video_source import is_stream_url

if TYPE_CHECKING:
    from .job import JobOptions


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
