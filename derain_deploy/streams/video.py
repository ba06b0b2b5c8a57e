"""Video in and out, by job: :mod:`.video_source` (files and stream URLs in) and
:mod:`.video_sink` (H.264 files out, and the encode-and-mux pieces the live sink shares).
This module keeps the old import path: ``from derain_deploy.streams.video import VideoSink``.
"""

from __future__ import annotations

from .video_sink import (
    H264_EXTS,
    AudioCarrier,
    RisingPts,
    VideoSink,
    pad_even,
    remove_stale_parts,
    rgb_to_uint8,
)
from .video_source import MAX_CONSECUTIVE_ERRORS, STREAM_SCHEMES, VideoSource, frame_to_rgb, is_stream_url

__all__ = [
    "H264_EXTS",
    "MAX_CONSECUTIVE_ERRORS",
    "STREAM_SCHEMES",
    "AudioCarrier",
    "RisingPts",
    "VideoSink",
    "VideoSource",
    "frame_to_rgb",
    "is_stream_url",
    "pad_even",
    "remove_stale_parts",
    "rgb_to_uint8",
]
