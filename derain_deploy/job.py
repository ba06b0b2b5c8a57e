"""One ``derain-run`` job: open the backend once, then each input's source and sink, and run them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .backends import open_backend, resolve_model
from .backends.base import Backend, BackendError
from .image_size import DEFAULT_MAX_PIXELS
from .live import run_live_inputs, wants_live
from .output_guard import check_writes, is_inside
from .pipeline import RunStats, run
from .streams import compare_output_path, default_output_path, open_sink, open_source, write_stages_preview
from .streams.base import Frame, FrameSink, FrameSource, StreamError
from .tiling import TiledBackend
from .weights import load_weights


@dataclass
class JobOptions:
    """Everything ``derain-run`` accepts, with the library's defaults."""

    output: str | None = None
    backend: str = "auto"
    device: str = "auto"
    precision: str | None = None
    model: str | None = None
    batch: int = 1
    tile: int | None = None  # max tile side; frames larger than this are tiled
    compare: bool = False
    stages_preview: bool = False
    quality: int = 18
    skip_bad_frames: bool = False
    camera: int | None = None
    progress: bool = True
    max_pixels: int | None = DEFAULT_MAX_PIXELS  # larger images and frames are refused (None: no limit)
    backend_options: dict[str, object] = field(default_factory=dict)
    # live runs (derain_deploy.live): None = real-time for cameras and stream URLs
    realtime: bool | None = None
    reconnect: int = 5
    bitrate: str | None = None  # live outputs: e.g. 2M (else crf)
    crf: int | None = None  # live outputs: x264 crf (default 23)
    status_seconds: float = 10.0
    chosen_because: str | None = None  # why this backend, when a choice made it (--precision fastest)


def check_inputs(inputs: Sequence[str], options: JobOptions) -> None:
    """Argument combinations that cannot work, refused before anything is opened."""
    if options.camera is not None and inputs:
        raise StreamError("give either INPUTS or --camera N, not both")
    if options.camera is None and not inputs:
        raise StreamError("no input given (a file, folder, glob pattern, URL, or --camera N)")
    if options.batch < 1:
        raise StreamError(f"--batch must be at least 1, got {options.batch}")
    if (
        len(inputs) > 1
        and options.output
        and Path(options.output).suffix
        and "{name}" not in options.output  # live runs: one output per stream name
        and not Path(options.output).is_dir()
    ):
        raise StreamError(f"{len(inputs)} inputs need -o to be a folder, not the file {options.output}")
    if options.stages_preview and resolve_model(options.model).suffix != ".safetensors":
        raise BackendError(
            "--stages-preview needs .safetensors weights: the stage outputs come from the PyTorch model"
        )


def prepare_backend(options: JobOptions) -> Backend:
    """The backend, wrapped for tiling when ``tile`` is set or an engine profile caps the frame size."""
    backend = open_backend(
        options.backend, options.model, options.device, options.precision, **options.backend_options
    )
    if options.chosen_because:
        backend.info.details["chosen_because"] = options.chosen_because
    tile: tuple[int, int] | None = (options.tile, options.tile) if options.tile else None
    profile_max = backend.info.details.get("profile_max")
    if isinstance(profile_max, list):  # an engine cannot take frames beyond its profile: tile them
        h, w = int(profile_max[2]), int(profile_max[3])
        tile = (min(tile[0], h), min(tile[1], w)) if tile else (h, w)
    if tile is not None:
        try:
            backend = TiledBackend(backend, tile)
        except BaseException:
            backend.close()
            raise
    return backend


class CountingSink:
    """A sink that calls ``on_frame`` after each frame written and keeps the frames' names."""

    def __init__(self, sink: FrameSink, on_frame: Callable[[int], None] | None) -> None:
        self.sink, self.on_frame = sink, on_frame
        self.names: list[str] = []

    def write(self, frame: Frame, output: np.ndarray) -> None:
        self.sink.write(frame, output)
        if frame.name:
            self.names.append(frame.name)
        if self.on_frame is not None:
            self.on_frame(1)

    def close(self) -> None:
        self.sink.close()

    def abort(self) -> None:
        self.sink.abort()


def output_folders(out: Path, options: JobOptions) -> list[Path]:
    """The folders a folder input's run writes: its output and, with --compare, the side-by-side one."""
    return [out, compare_output_path(out, folder=True)] if options.compare else [out]


def skip_own_outputs(source: FrameSource, out: Path, options: JobOptions) -> None:
    """A folder or glob input never takes this run's outputs as inputs (``derain-run real -o
    real/out`` run twice would otherwise derain real/out/*.png into real/out/out/)."""
    if source.info.kind != "folder" or not isinstance(getattr(source, "files", None), list):
        return
    folders = output_folders(out, options)
    kept = [f for f in source.files if not any(is_inside(f, folder) for folder in folders)]
    if not kept:
        raise StreamError(f"no images in {source.info.path} besides this run's outputs in {out}")
    source.files, source.info.frames = kept, len(kept)  # type: ignore[attr-defined]


def process_input(
    spec: str | None,
    options: JobOptions,
    backend: Backend | Callable[[], Backend],
    *,
    progress: bool = False,
    on_frame: Callable[[int], None] | None = None,
) -> RunStats:
    """``derain-run`` on one input (or the camera): its default output, written atomically.

    ``backend`` may be a function that opens it: it is called only once the input and the
    output have opened, so a bad input fails before any model export."""
    source = open_source(
        spec, camera=options.camera, skip_bad_frames=options.skip_bad_frames, max_pixels=options.max_pixels
    )
    try:
        if options.stages_preview and source.info.kind not in ("image", "folder"):
            raise StreamError(f"--stages-preview works on images; {source.info.path} is a {source.info.kind}")
        out = default_output_path(source.info, options.output)
        check_writes({"the output": out}, [resolve_model(options.model)])
        skip_own_outputs(source, out, options)
        sink = open_sink(source.info, options.output, compare=options.compare, quality=options.quality)
    except BaseException:
        source.close()
        raise
    try:
        backend = backend if isinstance(backend, Backend) else backend()
    except BaseException:
        sink.abort()
        source.close()
        raise
    counting = CountingSink(sink, on_frame)
    stats = run(source, backend, counting, options.batch, progress=progress, output=str(out))
    if source.info.kind == "folder":
        stats.details["names"] = counting.names
    if options.stages_preview:
        stats.details["stages_previews"] = [str(p) for p in write_previews(spec, out, options)]
    return stats


def run_inputs(
    inputs: Sequence[str], options: JobOptions, log: Callable[[str], None] = print
) -> list[RunStats]:
    """Derain each input (or the camera) into its output; ``log`` gets the one-line messages."""
    check_inputs(inputs, options)
    opened: list[Backend] = []  # opened once the first input has opened: bad inputs fail fast

    def backend() -> Backend:
        if not opened:
            opened.append(prepare_backend(options))
            info = opened[0].info
            log(f"backend: {info.describe()} ({info.details.get('chosen_because', '')})")
        return opened[0]

    results = []
    try:
        if wants_live(inputs, options):  # cameras, stream URLs, live outputs, --realtime
            return run_live_inputs(inputs, options, backend, log)
        for spec in inputs or [None]:
            stats = process_input(spec, options, backend, progress=options.progress)
            results.append(stats)
            log(f"summary: {stats.describe()}")
            for path in stats.details.get("stages_previews", []):
                log(f"stages preview: {path}")
    finally:
        for b in opened:
            b.close()
    return results


def write_previews(spec: str | None, out: Path, options: JobOptions) -> list[Path]:
    """A grid of the stage outputs (coarse to fine) per image, beside its output image."""
    net = load_weights(resolve_model(options.model))
    source = open_source(spec, skip_bad_frames=options.skip_bad_frames, max_pixels=options.max_pixels)
    written = []
    try:
        for frame in source:
            if source.info.kind == "image":
                stem = out.name[: -len(out.suffix)] if out.suffix else out.name
                path = out.with_name(f"{stem.removesuffix('.derained')}.stages.png")
            else:
                rel = Path(frame.name or f"{frame.index:06d}")
                path = out / rel.parent / f"{rel.stem}.stages.png"
            written.append(write_stages_preview(path, net, frame.image))
    finally:
        source.close()
    return written
