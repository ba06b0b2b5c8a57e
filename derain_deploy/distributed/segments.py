"""Long videos in time segments: planned at keyframes, derained apart, joined back by remuxing.

A segment holds the frames whose pts lies in ``[start_pts, end_pts)`` (input time base), in
presentation order, so consecutive segments hold every frame exactly once whatever the GOP
structure. A segment source seeks to the keyframe at its start and drops frames before it.
Each segment is encoded as H.264 without audio by the same video sink as a whole-file run; the
join copies their packets into one file, shifting each segment onto the input's timeline, and
carries the input's audio over as a whole-file run does. A joined output has the same frames,
timing and audio as a whole-file run, but not the same bytes (each segment starts with a
keyframe and has its own rate control).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from ..streams.base import Frame, StreamError
from ..streams.files import one_line, remove_quietly, temp_path
from ..streams.video_sink import AudioCarrier
from ..streams.video_source import VideoSource


@dataclass(frozen=True)
class Segment:
    index: int
    start_pts: int | None  # None: from the first frame (no seek)
    end_pts: int | None  # None: to the last frame
    frames: int  # frames in the segment, counted from the demuxed packets


def plan_segments(path: str | Path, seconds: float) -> list[Segment]:
    """Cut the first video stream into segments of at least ``seconds``, each starting at a
    keyframe. One segment means the video is too short (or has no usable timestamps) to cut."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            time_base = stream.time_base
            packets = [(p.pts, p.is_keyframe) for p in container.demux(stream) if p.size]
    except (av.FFmpegError, OSError, IndexError) as e:
        raise StreamError(f"cannot read video {path}: {one_line(e)}") from None
    if not packets or time_base is None or any(pts is None for pts, _ in packets):
        return [Segment(0, None, None, len(packets))]
    length = round(Fraction(seconds) / Fraction(time_base))
    first = min(pts for pts, _ in packets)
    starts = [None]
    last_start = first
    for pts, key in sorted(packets):
        if key and pts - last_start >= length:
            starts.append(pts)
            last_start = pts
    bounds = [*starts[1:], None]
    all_pts = [pts for pts, _ in packets]
    segments = []
    for index, (start, end) in enumerate(zip(starts, bounds)):
        count = sum(1 for pts in all_pts if (start is None or pts >= start) and (end is None or pts < end))
        segments.append(Segment(index, start, end, count))
    return segments


class SegmentSource(VideoSource):
    """The frames of one :class:`Segment` of a video file, as :class:`VideoSource` decodes them.

    ``first_pts`` is the pts of the first frame given (None before any)."""

    def __init__(self, path: str | Path, segment: Segment, *, skip_bad_frames: bool = False) -> None:
        super().__init__(path, skip_bad_frames=skip_bad_frames)
        self.segment = segment
        self.first_pts: int | None = None
        self._inside = segment.start_pts is None
        self.info = dataclasses.replace(self.info, frames=segment.frames)
        if segment.start_pts is not None:
            try:
                self._container.seek(segment.start_pts, stream=self._stream, backward=True, any_frame=False)
            except (av.FFmpegError, OSError) as e:
                self.close()
                raise StreamError(
                    f"cannot seek to pts {segment.start_pts} in {path}: {one_line(e)}"
                ) from None

    def _bad(self, index: int, error: BaseException | str, pts: int | None = None) -> None:
        start = self.segment.start_pts
        before = self._inside is False and (pts is None or (start is not None and pts < start))
        if not before:  # frames between the keyframe and the segment start are another segment's
            super()._bad(index, error, pts)

    def __iter__(self) -> Iterator[Frame]:
        start, end = self.segment.start_pts, self.segment.end_pts
        for frame in super().__iter__():
            if frame.pts is not None and start is not None and frame.pts < start:
                continue
            if frame.pts is not None and end is not None and frame.pts >= end:
                return
            self._inside = True
            if self.first_pts is None:
                self.first_pts = frame.pts
            yield frame


def _first_pts(path: Path) -> tuple[int, Fraction]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        pts = [p.pts for p in container.demux(stream) if p.size and p.pts is not None]
        if not pts:
            raise StreamError(f"segment {path} holds no frames")
        return min(pts), Fraction(stream.time_base)


def join_segments(
    parts: Sequence[Path],
    starts: Sequence[Fraction],
    output: Path,
    audio_from: str | None = None,
) -> int:
    """Concatenate the H.264 ``parts`` into ``output`` (atomically) and return its frame count.

    ``starts[k]`` is the input time (seconds) of segment k's first frame: segment k is shifted
    so its first frame lies ``starts[k] - starts[0]`` after segment 0's. ``audio_from`` names
    the input whose first audio stream is carried over (copied, or re-encoded to AAC where the
    container refuses the codec), interleaved with the video."""
    shifts: list[int] = []
    time_base: Fraction | None = None
    origin: Fraction | None = None
    for part, start in zip(parts, starts):
        first, tb = _first_pts(part)
        if time_base is None:
            time_base, origin = tb, first * tb - start
        elif tb != time_base:
            raise StreamError(f"cannot join {part}: time base {tb} differs from {time_base}")
        shifts.append(round((start + origin - first * tb) / time_base))
    for reencode in (False, True):
        try:
            return _remux(parts, shifts, output, audio_from, reencode)
        except _AudioRefusedError:
            continue
    raise StreamError(f"cannot write the audio of {audio_from} into {output}")


class _AudioRefusedError(Exception):
    pass


def _remux(
    parts: Sequence[Path], shifts: list[int], output: Path, audio_from: str | None, reencode: bool
) -> int:
    tmp = temp_path(output)
    inputs = [av.open(str(p)) for p in parts]
    carrier = None
    try:
        out = av.open(str(tmp), "w")
        try:
            template = inputs[0].streams.video[0]
            extradata = template.codec_context.extradata
            for part, container in zip(parts[1:], inputs[1:]):
                if container.streams.video[0].codec_context.extradata != extradata:
                    raise StreamError(
                        f"cannot join {part}: its H.264 parameters differ from the first segment's"
                    )
            video = out.add_stream_from_template(template)
            if audio_from:
                carrier = AudioCarrier(audio_from, out, reencode)
            try:
                out.start_encoding()
            except (av.FFmpegError, ValueError) as e:
                if audio_from and not reencode:
                    raise _AudioRefusedError from e
                raise
            frames = 0
            last_dts: int | None = None
            for container, shift in zip(inputs, shifts):
                stream = container.streams.video[0]
                for packet in container.demux(stream):
                    if not packet.size:
                        continue
                    packet.pts += shift
                    packet.dts = packet.pts if packet.dts is None else packet.dts + shift
                    if last_dts is not None and packet.dts <= last_dts:
                        packet.dts = last_dts + 1
                        if packet.dts > packet.pts:
                            raise StreamError(f"cannot join the segments into {output}: timestamps overlap")
                    last_dts = packet.dts
                    if carrier is not None:
                        carrier.until(float(packet.pts * stream.time_base))
                    packet.stream = video
                    out.mux(packet)
                    frames += 1
            if carrier is not None:
                carrier.finish()
        finally:
            out.close()
        os.replace(tmp, output)
        return frames
    except (av.FFmpegError, OSError) as e:
        raise StreamError(f"cannot join the segments into {output}: {one_line(e)}") from None
    finally:
        if carrier is not None:
            carrier.close()
        for container in inputs:
            with contextlib.suppress(Exception):
                container.close()
        remove_quietly(tmp)
