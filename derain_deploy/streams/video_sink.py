"""H.264 video files out (PyAV): :class:`VideoSink`, and the encode-and-mux pieces the file and
live sinks share (:class:`RisingPts`, :class:`AudioCarrier`).

The sink keeps the input's timing: it encodes with the input stream's time base and each
frame's own pts, so the output has the same number of frames at the same times (variable and
NTSC rates such as 24000/1001 included). The input's first audio stream is carried over:
packets are copied when the output container accepts the codec, otherwise the audio is
re-encoded to AAC. Odd frame sizes are padded by one replicated row/column (yuv420p needs
even sizes); nothing is cropped. The file is written under a temporary name and renamed on
``close``; ``abort`` removes it.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

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

log = logging.getLogger(__name__)

# Containers that hold H.264; other inputs (webm, ogv, gif, ...) get an .mp4 output by default.
H264_EXTS = (".mp4", ".m4v", ".mov", ".mkv", ".avi", ".ts", ".m2ts", ".mts", ".flv", ".3gp")


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

    def _flush(self) -> None:
        """The end of the output: the encoder's last packets, the rest of the audio, the container closed."""
        assert self._stream is not None and self._container is not None
        self._container.mux(self._stream.encode(None))
        if self._audio is not None:
            self._audio.finish()
        self._container.close()

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
            self._flush()
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
