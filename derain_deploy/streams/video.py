"""Video files and stream URLs in (PyAV, which bundles FFmpeg), H.264 video files out.

The sink keeps the input's timing: it encodes with the input stream's time base and each
frame's own pts, so the output has the same number of frames at the same times (variable and
NTSC rates such as 24000/1001 included). The input's first audio stream is carried over:
packets are copied when the output container accepts the codec, otherwise the audio is
re-encoded to AAC. Odd frame sizes are padded by one replicated row/column (yuv420p needs
even sizes); nothing is cropped. Videos with a display rotation (phones) are decoded upright:
the network sees the rain falling down, and the output needs no rotation flag. The file is
written under a temporary name and renamed on ``close``; ``abort`` removes it.
"""

from __future__ import annotations

import bisect
import contextlib
import glob
import logging
import os
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from ..image_size import DEFAULT_MAX_PIXELS, pixel_limit_message
from .base import Frame, SourceInfo, StreamError
from .files import (
    check_not_input,
    ensure_writable_dir,
    one_line,
    remove_created_dirs,
    remove_quietly,
    temp_path,
)

log = logging.getLogger(__name__)

STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "tcp", "srt", "rtp")
# Containers that hold H.264; other inputs (webm, ogv, gif, ...) get an .mp4 output by default.
H264_EXTS = (".mp4", ".m4v", ".mov", ".mkv", ".avi", ".ts", ".m2ts", ".mts", ".flv", ".3gp")
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


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_parts(final: Path) -> None:
    """Remove the temporary files (:func:`temp_path`) that dead processes left beside ``final``;
    those of running processes (this one included) are kept."""
    prefix = f".{final.stem}.part-"
    for part in final.parent.glob(f"{glob.escape(prefix)}*{glob.escape(final.suffix)}"):
        pid = part.name[len(prefix) : len(part.name) - len(final.suffix)]
        if pid.isdigit() and not _alive(int(pid)):
            log.warning("removing %s, left by process %s, which has ended", part, pid)
            remove_quietly(part)


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


def rgb_to_uint8(image: np.ndarray) -> np.ndarray:
    return np.floor(np.clip(image, 0.0, 1.0) * np.float32(255) + np.float32(0.5)).astype(np.uint8)


def pad_even(image: np.ndarray) -> np.ndarray:
    """Pad an odd height/width by one replicated row/column (yuv420p needs even sizes)."""
    h, w = image.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return image
    return np.pad(image, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


class AudioCarrier:
    """Copies (or re-encodes to AAC) the first audio stream of ``source`` into ``container``,
    interleaved with the video: :meth:`until` writes packets up to a time, :meth:`finish` the rest."""

    def __init__(self, source: str, container: av.container.OutputContainer, reencode: bool) -> None:
        self._input = av.open(source)
        self._in_stream = self._input.streams.audio[0]
        self._container = container
        self.copied = not reencode and self._in_stream.codec_context.name in container.supported_codecs
        if self.copied:
            self._out = container.add_stream_from_template(self._in_stream)
        else:
            cc = self._in_stream.codec_context
            rate = cc.sample_rate or 48000
            self._out = container.add_stream("aac", rate=rate)
            self._out.layout = cc.layout if cc.layout and cc.layout.nb_channels <= 8 else "stereo"
            self._resampler = av.AudioResampler(format="fltp", layout=self._out.layout, rate=rate)
        self._packets = self._input.demux(self._in_stream)
        self._pending: av.Packet | None = None
        self._done = False
        self._last_dts: int | None = None
        self._next_pts: int | None = None
        self.bad_packets = 0

    def until(self, seconds: float | None) -> None:
        """Mux audio packets whose time is at most ``seconds`` (all remaining if None)."""
        while not self._done:
            packet = self._pending or next(self._packets, None)
            self._pending = None
            if packet is None:
                self._done = True
                break
            if packet.dts is None and packet.pts is None:  # demuxer's final flush packet
                continue
            t = float((packet.pts if packet.pts is not None else packet.dts) * packet.time_base)
            if seconds is not None and t > seconds:
                self._pending = packet
                return
            self._write(packet)

    def _write(self, packet: av.Packet) -> None:
        if self.copied:
            if packet.dts is not None and self._last_dts is not None and packet.dts <= self._last_dts:
                return  # a muxer rejects non-increasing dts; such packets are duplicates
            self._last_dts = packet.dts
            packet.stream = self._out
            self._container.mux(packet)
            return
        try:
            frames = packet.decode()
        except av.FFmpegError:
            self.bad_packets += 1  # a damaged audio packet costs a moment of sound, not the run
            return
        for frame in frames:
            if self._next_pts is None:  # keep the audio's start time; count samples from there
                start = frame.pts * frame.time_base if frame.pts is not None else 0
                self._next_pts = round(start * self._out.rate)
            self._encode(self._resampler.resample(frame))

    def _encode(self, frames: list[av.AudioFrame]) -> None:
        for resampled in frames:
            resampled.pts = self._next_pts
            resampled.time_base = Fraction(1, self._out.rate)
            self._next_pts += resampled.samples
            self._container.mux(self._out.encode(resampled))

    def finish(self) -> None:
        self.until(None)
        if not self.copied:
            if self._next_pts is not None:
                self._encode(self._resampler.resample(None))
            self._container.mux(self._out.encode(None))
        self.close()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._input.close()


class RisingPts:
    """What the file and live H.264 sinks share: the output opened at the first frame's size,
    every frame checked against it, and timestamps: each frame's pts in the sink's ``time_base``
    (frames without one placed at ``frames_written / fps``), moved on where needed so that they
    rise strictly; ``retimed`` counts the frames whose pts was missing or moved."""

    fps: Fraction
    time_base: Fraction
    frames_written: int
    retimed: int
    _last_pts: int | None
    _closed: bool
    _container: av.container.OutputContainer | None
    _stream: av.video.stream.VideoStream | None
    _audio: AudioCarrier | None

    def _open(self, width: int, height: int) -> None:
        raise NotImplementedError

    def _video_frame(self, frame: Frame, output: np.ndarray, target: object) -> av.VideoFrame:
        """``output`` as the next frame to encode, the output opened on the first call."""
        if self._closed:
            raise StreamError(f"{target} is already closed")
        image = pad_even(rgb_to_uint8(output))
        h, w = image.shape[:2]
        if self._container is None:
            self._open(w, h)
        assert self._stream is not None and self._container is not None
        if (w, h) != (self._stream.width, self._stream.height):
            raise StreamError(
                f"frame {frame.index} is {w}x{h}, the output is {self._stream.width}x{self._stream.height}"
            )
        vf = av.VideoFrame.from_ndarray(image, format="rgb24")
        vf.pts, vf.time_base = self._pts(frame), self.time_base
        return vf

    def _encode(self, vf: av.VideoFrame, frame: Frame, failure: str) -> None:
        """Encode and mux ``vf`` (audio first up to its time); ``failure`` starts the error."""
        assert self._stream is not None and self._container is not None
        try:
            if self._audio is not None:
                self._audio.until(float(vf.pts * self.time_base))
            self._container.mux(self._stream.encode(vf))
        except (av.FFmpegError, OSError) as e:
            raise StreamError(f"{failure}: {one_line(e)}") from None
        self.frames_written += 1

    def _pts(self, frame: Frame) -> int:
        pts = frame.pts
        if pts is not None and frame.time_base and frame.time_base != self.time_base:
            pts = round(pts * frame.time_base / self.time_base)
        if pts is None:
            pts = round(self.frames_written / self.fps / self.time_base)
        if self._last_pts is not None and pts <= self._last_pts:
            self.retimed += 1
            pts = self._last_pts + 1
        elif frame.pts is None:
            self.retimed += 1
        self._last_pts = pts
        return pts


class VideoSink(RisingPts):
    """Writes output frames as H.264 (libx264, yuv420p, ``crf`` = ``quality``) to ``path``.

    ``info`` is the source's :class:`SourceInfo`: its time base and frame rate are used for the
    output, and with ``audio=True`` the audio of ``info.path`` (a local file) is carried over.
    Frames without pts (cameras, some raw streams) are timed from the frame rate."""

    def __init__(
        self,
        path: Path,
        info: SourceInfo,
        *,
        quality: int = 18,
        preset: str = "medium",
        audio: bool = True,
    ) -> None:
        if not 0 <= quality <= 51:
            raise StreamError(f"video quality (x264 crf) must be in 0..51, got {quality}")
        self.path = Path(path)
        if info.kind in ("video", "image") and info.path:
            check_not_input(self.path, Path(info.path))
        self._made_dirs = ensure_writable_dir(self.path.parent)  # removed again if the run fails
        remove_stale_parts(self.path)
        self.info = info
        self.quality, self.preset = quality, preset
        self.audio_source = info.path if audio and info.has_audio and info.kind == "video" else None
        self.fps = info.fps or Fraction(25)
        self.time_base = info.time_base or 1 / self.fps
        self.frames_written = 0
        self.audio_copied: bool | None = None  # True: packets copied, False: re-encoded to AAC
        self.retimed = 0  # frames whose pts had to be moved (missing or not increasing)
        self._tmp = temp_path(self.path)
        self._container: av.container.OutputContainer | None = None
        self._stream: av.VideoStream | None = None
        self._audio: AudioCarrier | None = None
        self._last_pts: int | None = None
        self._closed = False

    def _open(self, width: int, height: int) -> None:
        for reencode in (False, True):
            try:
                container = av.open(str(self._tmp), "w")
            except (av.FFmpegError, OSError) as e:
                raise StreamError(f"cannot create {self.path}: {one_line(e)}") from None
            audio = None
            try:
                stream = container.add_stream("libx264", rate=self.fps)
                stream.width, stream.height = width, height
                stream.pix_fmt = "yuv420p"
                stream.time_base = self.time_base
                stream.codec_context.time_base = self.time_base
                stream.options = {"crf": str(self.quality), "preset": self.preset}
                if self.audio_source:
                    audio = AudioCarrier(self.audio_source, container, reencode)
                container.start_encoding()
            except (av.FFmpegError, OSError, ValueError) as e:
                if audio is not None:
                    audio.close()
                with contextlib.suppress(Exception):
                    container.close()
                remove_quietly(self._tmp)
                if self.audio_source and not reencode:
                    continue  # the container refused the copied audio codec: re-encode it
                raise StreamError(f"cannot write video {self.path}: {one_line(e)}") from None
            self._container, self._stream, self._audio = container, stream, audio
            self.audio_copied = audio.copied if audio is not None else None
            return

    def write(self, frame: Frame, output: np.ndarray) -> None:
        vf = self._video_frame(frame, output, self.path)
        self._encode(vf, frame, f"cannot write frame {frame.index} to {self.path}")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._container is None:
            raise StreamError(f"no frames were written: {self.path} was not created")
        try:
            assert self._stream is not None
            self._container.mux(self._stream.encode(None))
            if self._audio is not None:
                self._audio.finish()
            self._container.close()
            os.replace(self._tmp, self.path)
        except (av.FFmpegError, OSError) as e:
            self._discard()
            raise StreamError(f"cannot finish {self.path}: {one_line(e)}") from None
        except BaseException:
            self._discard()
            raise

    def abort(self) -> None:
        self._closed = True
        self._discard()

    def _discard(self) -> None:
        if self._audio is not None:
            self._audio.close()
        if self._container is not None:
            with contextlib.suppress(Exception):
                self._container.close()
        remove_quietly(self._tmp)
        remove_created_dirs(self._made_dirs)
