"""Video files and stream URLs in (PyAV, which bundles FFmpeg): :class:`VideoSource`.

Videos with a display rotation (phones) are decoded upright: the network sees the rain falling
down, and the output needs no rotation flag. Corrupt frames are an error naming the frame, or
skipped (``skip_bad_frames``) up to :data:`MAX_CONSECUTIVE_ERRORS` in a row.
"""

from __future__ import annotations

import bisect
import contextlib
import logging
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from ..image_size import DEFAULT_MAX_PIXELS, pixel_limit_message
from .base import Frame, SourceInfo, StreamError
from .files import (
    one_line,
)

log = logging.getLogger(__name__)

log = logging.getLogger(__name__)

STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "tcp", "srt", "rtp")
MAX_CONSECUTIVE_ERRORS = 100


def is_stream_url(spec: str) -> bool:
    scheme, sep, _ = spec.partition("://")
    return bool(sep) and scheme.lower() in STREAM_SCHEMES


class VideoSource:
    """Decoded frames of the first video stream of a file or stream URL.

    Each frame keeps its pts and the stream's time base. A frame that does not decode stops
    the iteration with a :class:`StreamError` naming its index and time, or, with
    ``skip_bad_frames``, is skipped and its index appended to ``bad_frames``. For stream URLs
    (``kind="stream"``) ``timeout`` bounds the wait for opening and for each read, pts are
    shifted to start at 0, and bad frames are always skipped (a live feed cannot be re-read)."""

    def __init__(
        self,
        spec: str | Path,
        *,
        kind: str = "video",
        skip_bad_frames: bool = False,
        timeout: float = 10.0,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
    ) -> None:
        self.spec = str(spec)
        # A live stream cannot be read again, and packet loss damages frames routinely: its bad
        # frames are always skipped (and counted, and logged).
        self.skip_bad_frames = skip_bad_frames or kind == "stream"
        self.bad_frames: list[int] = []
        self.timeout = timeout
        options = {"rtsp_transport": "tcp"} if self.spec.lower().startswith("rtsp") else {}
        try:
            self._container = av.open(self.spec, options=options, timeout=timeout)
        except FileNotFoundError:
            raise StreamError(f"no such file: {self.spec}") from None
        except (av.ExitError, av.error.TimeoutError):  # FFmpeg's interrupt: the timeout ran out
            raise StreamError(f"timed out after {timeout:g} s opening {self.spec}") from None
        except (av.FFmpegError, OSError, ValueError) as e:
            what = "stream" if kind == "stream" else "video (unsupported format or corrupt file)"
            raise StreamError(f"cannot open {what} {self.spec}: {one_line(e)}") from None
        if not self._container.streams.video:
            self._container.close()
            raise StreamError(f"no video stream in {self.spec}")
        stream = self._container.streams.video[0]
        # Slice threads only: frame threading reports a decode error several packets late, which
        # would name the wrong frame. Decoding is rarely the bottleneck next to the network.
        stream.thread_type = "SLICE"
        self._stream = stream
        fps = stream.average_rate or stream.guessed_rate or stream.base_rate
        frames = stream.frames or None
        self._frames_exact = frames is not None  # else estimated from duration x rate (+-1 frame)
        if frames is None and kind == "video" and fps:
            duration = None
            if stream.duration is not None and stream.time_base is not None:
                duration = stream.duration * stream.time_base
            elif self._container.duration is not None:
                duration = Fraction(self._container.duration, av.time_base)
            if duration:
                frames = round(duration * fps)  # an estimate (e.g. Matroska stores no frame count)
        cc = stream.codec_context
        width, height = cc.width or None, cc.height or None
        size = (width, height) if width and height else None
        if refusal := pixel_limit_message(f"the video {self.spec}", size, max_pixels):
            self._container.close()
            raise StreamError(refusal)
        self.rotation = self._display_rotation() if kind == "video" else 0
        if self.rotation % 180:
            width, height = height, width
        self.info = SourceInfo(
            kind=kind,
            path=self.spec,
            frames=frames if kind == "video" else None,
            fps=Fraction(fps) if fps else None,
            time_base=Fraction(stream.time_base) if stream.time_base else None,
            width=width,
            height=height,
            has_audio=kind == "video" and bool(self._container.streams.audio),
        )

    def _display_rotation(self) -> int:
        """The rotation (degrees counterclockwise, a multiple of 90) that phones record in the
        display matrix, read from the first frame (0 when it cannot be read)."""
        try:
            with av.open(self.spec) as c:
                frame = next(c.decode(video=0), None)
        except (av.FFmpegError, OSError):
            return 0
        angle = round((frame.rotation if frame is not None else 0) / 90) * 90
        return angle % 360

    def _bad(self, index: int, error: BaseException | str, pts: int | None = None) -> None:
        where = ""
        if pts is not None and self.info.time_base is not None:
            seconds = (pts - (self._stream.start_time or 0)) * self.info.time_base
            where = f" at {float(seconds):.3f} s"
        message = f"corrupt frame {index}{where} in {self.spec}: {one_line(error)}"
        if not self.skip_bad_frames:
            raise StreamError(message + " (skip such frames with --skip-bad-frames)")
        self.bad_frames.append(index)
        log.warning("%s (skipped)", message)
        recent = self.bad_frames[-MAX_CONSECUTIVE_ERRORS:]
        if len(recent) == MAX_CONSECUTIVE_ERRORS and max(recent) - min(recent) < MAX_CONSECUTIVE_ERRORS:
            raise StreamError(f"{MAX_CONSECUTIVE_ERRORS} corrupt frames in a row in {self.spec}: giving up")

    def _packets(self) -> Iterator[av.Packet | None]:
        """Demuxed packets of the video stream; ``None`` marks a packet that could not be read."""
        errors = 0
        while True:
            try:
                for packet in self._container.demux(self._stream):
                    errors = 0
                    yield packet
                return
            except (av.FFmpegError, OSError) as e:
                if isinstance(e, av.ExitError | av.error.TimeoutError):
                    raise StreamError(f"timed out after {self.timeout:g} s reading {self.spec}") from None
                if errors >= 3:
                    raise StreamError(f"cannot read {self.spec}: {one_line(e)}") from None
                errors += 1
                yield None

    def __iter__(self) -> Iterator[Frame]:
        # A frame's index counts the good frames before it plus the bad ones placed before it by
        # their pts (a decoder reports a damaged frame in decode order, before reordered frames).
        good = 0
        bad_pts: list[int] = []  # sorted; bad frames of unknown time count as "before"
        unknown_bad = 0
        first_pts: int | None = None
        time_base = self.info.time_base

        def index_of(pts: int | None) -> int:
            earlier = len(bad_pts) if pts is None else bisect.bisect_left(bad_pts, pts)
            return good + unknown_bad + earlier

        def bad(error: BaseException | str, pts: int | None) -> None:
            # Frames reordered after the damaged one may not have come out yet: estimate its
            # position from its time where the frame rate is known (exact at a constant rate).
            nonlocal unknown_bad
            index = index_of(pts)
            if pts is not None and time_base and self.info.fps and self.info.kind == "video":
                start = self._stream.start_time or 0
                index = max(index, round((pts - start) * time_base * self.info.fps))
            self._bad(index, error, pts)
            if pts is None:
                unknown_bad += 1
            else:
                bisect.insort(bad_pts, pts)

        for packet in self._packets():
            if packet is None:
                bad("unreadable packet", None)
                continue
            try:
                decoded = packet.decode()
            except av.FFmpegError as e:
                bad(e, packet.pts)
                continue
            for vf in decoded:
                if vf.is_corrupt:
                    bad("decoder flagged the frame as corrupt", vf.pts)
                    continue
                pts = vf.pts
                index = index_of(pts)
                if self.info.kind == "stream" and pts is not None:
                    first_pts = pts if first_pts is None else first_pts
                    pts -= first_pts
                yield Frame(image=frame_to_rgb(vf, self.rotation), index=index, pts=pts, time_base=time_base)
                good += 1
        self._account(good, good + unknown_bad + len(bad_pts))

    def _account(self, good: int, seen: int) -> None:
        """Compare the frames read (``seen``, ``good`` of them decoded) with the container's count:
        a shortfall is an error naming the missing span, or with ``skip_bad_frames`` a warning."""
        announced = self.info.frames if self.info.kind == "video" else None
        slack = 0 if self._frames_exact else 1  # duration x average rate rounds (variable rates)
        if not announced or seen >= announced - slack:
            return
        span = f"frame {seen}" if announced - seen == 1 else f"frames {seen}-{announced - 1}"
        message = (
            f"decoded {good} of {announced} frames announced by the container ({span} missing) in {self.spec}"
        )
        if not self.skip_bad_frames:
            raise StreamError(message + " (go on without them with --skip-bad-frames)")
        self.bad_frames.extend(range(seen, announced))
        log.warning("%s: %d frames missing (skipped)", message, announced - seen)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._container.close()


def frame_to_rgb(vf: av.VideoFrame, rotation: int = 0) -> np.ndarray:
    """HxWx3 float32 RGB in [0, 1] (16-bit path for high bit depth sources), turned
    ``rotation`` degrees counterclockwise (a multiple of 90) to stand upright."""
    deep = any(c.bits > 8 for c in vf.format.components)
    if deep:
        rgb = vf.to_ndarray(format="rgb48le").astype(np.float32) * np.float32(1 / 65535)
    else:
        rgb = vf.to_ndarray(format="rgb24").astype(np.float32) * np.float32(1 / 255)
    if rotation:
        rgb = np.ascontiguousarray(np.rot90(rgb, k=rotation // 90))
    return rgb
