"""Sources and sinks: what ``derain-run`` reads frames from and writes results to.

``open_source`` picks the source from what it is given (camera index, stream URL, folder, glob,
image or video file); ``open_sink`` picks the matching sink and its default output path
(``<name>.derained.<ext>`` beside the input, or inside ``-o`` when that is a folder). No sink
ever writes over an input, and each output appears at its final path only when complete.
"""

from __future__ import annotations

import glob
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

from ..image_size import DEFAULT_MAX_PIXELS
from .base import Frame, FrameSink, FrameSource, SourceInfo, StreamError
from .camera import CameraSource
from .compare import CompareSink, TeeSink, side_by_side
from .files import check_not_input, same_file
from .images import IMAGE_EXTS, ImageSink, ImageSource, is_image_path, read_image, write_image
from .live_sink import LiveEncoding, LiveSink, is_live_output
from .stages_preview import stages_grid, stages_preview, write_stages_preview
from .synthetic import write_test_video
from .video_sink import H264_EXTS, VideoSink
from .video_source import VideoSource, is_stream_url

__all__ = [
    "CameraSource",
    "CompareSink",
    "Frame",
    "FrameSink",
    "FrameSource",
    "ImageSink",
    "ImageSource",
    "LiveEncoding",
    "LiveSink",
    "SourceInfo",
    "StreamError",
    "TeeSink",
    "VideoSink",
    "VideoSource",
    "compare_output_path",
    "default_output_path",
    "open_sink",
    "open_source",
    "read_image",
    "side_by_side",
    "stages_grid",
    "stages_preview",
    "write_image",
    "write_stages_preview",
    "write_test_video",
]

TAG = "derained"


def open_source(
    spec: str | Path | None,
    *,
    camera: int | None = None,
    skip_bad_frames: bool = False,
    timeout: float = 10.0,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> FrameSource:
    """The source for ``spec``: a camera when ``camera`` is given, a stream URL (rtsp, http, ...;
    ``timeout`` seconds for opening and each read), a folder (its images, recursively), a glob
    pattern (the images it matches), an image file (by extension) or any video file FFmpeg
    reads. Images (and video frames) larger than ``max_pixels`` are refused from their header.
    Raises :class:`StreamError` with a one-line message when it cannot be opened."""
    if camera is not None:
        return CameraSource(camera)
    if spec is None or str(spec) == "":
        raise StreamError("no input given (a file, folder, glob pattern, URL, or --camera N)")
    text = str(spec)
    if is_stream_url(text):
        return VideoSource(
            text, kind="stream", skip_bad_frames=skip_bad_frames, timeout=timeout, max_pixels=max_pixels
        )
    path = Path(text)
    if path.is_dir():
        return ImageSource(path, skip_bad_frames=skip_bad_frames, max_pixels=max_pixels)
    if path.is_file():
        if is_image_path(path):
            return ImageSource(path, skip_bad_frames=skip_bad_frames, max_pixels=max_pixels)
        return VideoSource(path, skip_bad_frames=skip_bad_frames, max_pixels=max_pixels)
    if glob.has_magic(text):
        return ImageSource(text, skip_bad_frames=skip_bad_frames, max_pixels=max_pixels)
    if path.exists():
        raise StreamError(f"not a file or folder: {text}")
    if path.is_symlink():
        raise StreamError(f"broken symbolic link (its target is missing, or a loop): {text}")
    raise StreamError(f"no such file: {text}")


def _is_folder_target(output: Path) -> bool:
    return output.is_dir() or str(output).endswith(("/", "\\")) or (not output.exists() and not output.suffix)


def _stream_name(info: SourceInfo) -> str:
    if info.kind == "camera":
        return info.path or "camera"
    stem = PurePosixPath(urlparse(info.path).path).stem
    return stem or "stream"


def default_output_path(info: SourceInfo, output: str | Path | None = None, *, tag: str = TAG) -> Path:
    """Where a run on ``info`` writes: ``output`` itself when it names a file; otherwise
    ``<name>.<tag>.<ext>`` beside the input (or inside ``output`` when it is a folder, existing,
    ending in a slash, or without extension). Folders and globs get the folder
    ``<folder>.<tag>`` beside the input folder, or ``output``. Videos keep their container when
    it holds H.264 (else .mp4); cameras and streams give ``<camera0|stream name>.<tag>.mp4`` in
    the current folder."""
    out = Path(output) if output is not None else None
    if info.kind == "folder":
        if out is not None:
            return out
        root = Path(info.path)
        return root.parent / f"{root.resolve().name}.{tag}"
    if info.kind == "image":
        src = Path(info.path)
        name, parent = f"{src.stem}.{tag}{src.suffix}", src.parent
    elif info.kind == "video":
        src = Path(info.path)
        ext = src.suffix if src.suffix.lower() in H264_EXTS else ".mp4"
        name, parent = f"{src.stem}.{tag}{ext}", src.parent
    else:  # camera, stream
        name, parent = f"{_stream_name(info)}.{tag}.mp4", Path(".")
    if out is None:
        return parent / name
    return out / name if _is_folder_target(out) else out


def compare_output_path(output: Path, *, folder: bool = False) -> Path:
    """The side-by-side file (or ``folder``) next to ``output``: ``x.derained.mp4`` ->
    ``x.compare.mp4``, ``out.mp4`` -> ``out.compare.mp4``, folder ``rainy.derained`` -> ``rainy.compare``."""
    suffix = "" if folder else output.suffix
    stem = output.name[: len(output.name) - len(suffix)]
    if stem.endswith(f".{TAG}"):
        stem = stem[: -len(TAG) - 1]
    return output.with_name(f"{stem}.compare{suffix}")


def _sink_for(info: SourceInfo, path: Path, *, quality: int, preset: str, audio: bool) -> FrameSink:
    if info.kind == "folder":
        if same_file(path, Path(info.path)):
            raise StreamError(f"refusing to write into the input folder {info.path}: choose another with -o")
        return ImageSink(folder=path)
    if info.kind == "image":
        if not is_image_path(path):
            raise StreamError(f"an image's output must be an image file ({', '.join(IMAGE_EXTS)}): {path}")
        if same_file(path, Path(info.path)):
            raise StreamError(f"refusing to overwrite the input {info.path}: choose another output with -o")
        return ImageSink(path=path)
    if path.suffix.lower() not in H264_EXTS:
        raise StreamError(f"cannot write H.264 video to {path}: use one of {', '.join(H264_EXTS)}")
    return VideoSink(path, info, quality=quality, preset=preset, audio=audio)


def open_sink(
    source_info: SourceInfo,
    output: str | Path | None = None,
    *,
    compare: bool = False,
    quality: int = 18,
    preset: str = "medium",
    audio: bool = True,
    live: LiveEncoding | None = None,
) -> FrameSink:
    """The sink for a source: images (same names, same formats) for image sources, H.264 video
    (``quality`` = x264 crf, lower is better, 18 is visually lossless; ``preset`` = x264 preset;
    the input's audio carried over unless ``audio=False``) for video, camera and stream sources.
    The output is :func:`default_output_path`; ``compare`` also writes input|output side by side
    to :func:`compare_output_path`. A live output (rtsp/rtmp/srt/udp/tcp URL, ``.m3u8``) gets a
    :class:`LiveSink` encoded with ``live`` (default :class:`LiveEncoding`). Refuses
    (StreamError) any output that is an input."""
    if is_live_output(output):
        return _live_sink(source_info, str(output), compare=compare, audio=audio, encoding=live)
    path = default_output_path(source_info, output)
    sink = _sink_for(source_info, path, quality=quality, preset=preset, audio=audio)
    if not compare:
        return sink
    side_path = compare_output_path(path, folder=source_info.kind == "folder")
    side = _sink_for(source_info, side_path, quality=quality, preset=preset, audio=audio)
    return TeeSink([sink, CompareSink(side)])


def _live_sink(
    info: SourceInfo, target: str, *, compare: bool, audio: bool, encoding: LiveEncoding | None
) -> FrameSink:
    if info.kind in ("image", "folder"):
        raise StreamError(f"a live output needs a video, camera or stream input, not {info.path}")
    if compare:
        raise StreamError("--compare writes files; it cannot go with the live output " + target)
    if info.kind == "video" and "://" not in target:
        check_not_input(Path(target), Path(info.path))
    return LiveSink(target, info, encoding=encoding, audio=audio)
