"""Live outputs (PyAV muxers): RTSP push, RTMP (FLV), SRT/UDP/TCP (MPEG-TS), and HLS on disk.

Encoded for live viewing: libx264 with ``tune=zerolatency``, preset veryfast, no B-frames and
a keyframe at least every ``gop_seconds`` of stream time (forced, so that a player joins fast
and HLS segments stay short even when the backend processes 2 frames/s of a 25 fps input);
``crf`` (default 23) or ``bitrate`` (constant-ish rate: maxrate = bitrate, bufsize = 2 s).
HLS keeps ``hls_list_size`` segments of ``hls_time`` seconds, deletes older ones, writes
segments and playlist under temporary names, and closes the playlist (``#EXT-X-ENDLIST``) on
:meth:`LiveSink.close`. A live output cannot be taken back: :meth:`LiveSink.abort` closes it
cleanly as well. The audio of a local video file input is carried over (copied or re-encoded
to AAC, :class:`~derain_deploy.streams.video.AudioCarrier`); the audio of live inputs is not.
"""

from __future__ import annotations

import contextlib
import logging
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from .base import Frame, SourceInfo, StreamError
from .files import ensure_writable_dir, one_line
from .video_sink import AudioCarrier, RisingPts

log = logging.getLogger(__name__)

# URL scheme -> muxer. RTSP/RTMP push to a media server (MediaMTX, nginx-rtmp, ...).
LIVE_FORMATS = {
    "rtsp": "rtsp",
    "rtsps": "rtsp",
    "rtmp": "flv",
    "rtmps": "flv",
    "srt": "mpegts",
    "udp": "mpegts",
    "tcp": "mpegts",
}
HLS_EXT = ".m3u8"


def live_format(target: str) -> str | None:
    """The muxer for a live output (``hls`` for a ``.m3u8`` path), or None for anything else."""
    scheme, sep, _ = target.partition("://")
    if sep:
        return LIVE_FORMATS.get(scheme.lower())
    return "hls" if target.lower().endswith(HLS_EXT) else None


def is_live_output(target: str | Path | None) -> bool:
    return target is not None and live_format(str(target)) is not None


def parse_bitrate(text: str | int) -> int:
    """``2M``, ``800k``, ``1500000`` -> bits per second."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmM]?)\s*(?:bps|b/s)?\s*", str(text))
    if not match:
        raise StreamError(f"bitrate must be a number of bits/s such as 2M or 800k, got {text!r}")
    value = float(match.group(1)) * {"": 1, "k": 1e3, "m": 1e6}[match.group(2).lower()]
    if value < 10_000:
        raise StreamError(f"bitrate {text!r} is below 10k bits/s")
    return int(value)


@dataclass
class LiveEncoding:
    """x264 settings for live outputs; ``bitrate`` (bits/s) wins over ``crf`` when given."""

    crf: int = 23
    bitrate: int | None = None
    preset: str = "veryfast"
    gop_seconds: float = 2.0
    hls_time: float = 2.0
    hls_list_size: int = 6

    def x264_options(self, fps: Fraction) -> dict[str, str]:
        options = {
            "tune": "zerolatency",
            "preset": self.preset,
            "bf": "0",
            "g": str(max(1, round(self.gop_seconds * fps))),
        }
        if self.bitrate is None:
            if not 0 <= self.crf <= 51:
                raise StreamError(f"crf must be in 0..51, got {self.crf}")
            options["crf"] = str(self.crf)
        else:
            options["maxrate"] = str(self.bitrate)
            options["bufsize"] = str(2 * self.bitrate)
        return options


class LiveSink(RisingPts):
    """Writes output frames to the live ``target`` (a URL, or ``DIR/NAME.m3u8``), opened at the
    first frame (its size fixes the stream's). ``info`` gives the frame rate and time base; the
    frames' own pts (made to rise) time the output."""

    def __init__(
        self,
        target: str | Path,
        info: SourceInfo,
        *,
        encoding: LiveEncoding | None = None,
        audio: bool = True,
        timeout: float = 10.0,
    ) -> None:
        self.target = str(target)
        fmt = live_format(self.target)
        if fmt is None:
            raise StreamError(f"not a live output (rtsp, rtmp, srt, udp, tcp URL or .m3u8): {target}")
        self.format = fmt
        self.encoding = encoding or LiveEncoding()
        self.fps = info.fps or Fraction(25)
        self.time_base = info.time_base or 1 / self.fps
        self._x264 = self.encoding.x264_options(self.fps)  # refuses a bad crf before any frame
        self.audio_source = info.path if audio and info.has_audio and info.kind == "video" else None
        self.timeout = timeout
        if fmt == "hls":
            ensure_writable_dir(Path(self.target).parent)
        self.frames_written = 0
        self.retimed = 0
        self._container: av.container.OutputContainer | None = None
        self._stream: av.VideoStream | None = None
        self._audio: AudioCarrier | None = None
        self._last_pts: int | None = None
        self._last_key: int | None = None
        self._closed = False

    def _container_options(self) -> dict[str, str]:
        if self.format == "hls":
            return {
                "hls_time": f"{self.encoding.hls_time:g}",
                "hls_list_size": str(self.encoding.hls_list_size),
                "hls_flags": "delete_segments+temp_file+independent_segments",
            }
        if self.format == "rtsp":
            return {"rtsp_transport": "tcp"}
        return {}

    def _open(self, width: int, height: int) -> None:
        try:
            container = av.open(
                self.target, "w", format=self.format, options=self._container_options(), timeout=self.timeout
            )
        except (av.FFmpegError, OSError, ValueError) as e:
            raise StreamError(f"cannot open the live output {self.target}: {one_line(e)}") from None
        try:
            stream = container.add_stream("libx264", rate=self.fps)
            stream.width, stream.height = width, height
            stream.pix_fmt = "yuv420p"
            stream.time_base = self.time_base
            stream.codec_context.time_base = self.time_base
            stream.options = dict(self._x264)
            if self.encoding.bitrate is not None:
                stream.bit_rate = self.encoding.bitrate
            if self.audio_source:
                self._audio = AudioCarrier(self.audio_source, container, reencode=self.format != "rtsp")
            container.start_encoding()
        except (av.FFmpegError, OSError, ValueError) as e:
            if self._audio is not None:
                self._audio.close()
                self._audio = None
            with contextlib.suppress(Exception):
                container.close()
            raise StreamError(f"cannot write to the live output {self.target}: {one_line(e)}") from None
        self._container, self._stream = container, stream

    def write(self, frame: Frame, output: np.ndarray) -> None:
        vf = self._video_frame(frame, output, self.target)
        pts = vf.pts
        assert self._stream is not None and self._container is not None
        gop = round(self.encoding.gop_seconds / self.time_base)
        if self._last_key is None or pts - self._last_key >= gop:
            vf.pict_type = av.video.frame.PictureType.I
            self._last_key = pts
        self._encode(vf, frame, f"cannot send frame {frame.index} to {self.target}")

    def close(self) -> None:
        """Flush the encoder and close the container (HLS: the playlist gets its ENDLIST)."""
        if self._closed:
            return
        self._closed = True
        if self._container is None:
            log.warning("no frames were sent to %s", self.target)
            return
        try:
            self._flush()
        except (av.FFmpegError, OSError) as e:
            with contextlib.suppress(Exception):
                self._container.close()
            raise StreamError(f"cannot finish {self.target}: {one_line(e)}") from None
        finally:
            if self._audio is not None:
                self._audio.close()

    def abort(self) -> None:
        """What was sent cannot be taken back: close cleanly (HLS playlist closed)."""
        with contextlib.suppress(StreamError):
            self.close()
