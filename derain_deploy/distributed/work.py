"""The work itself, the same code wherever it runs (``derain-run``, the local loop, Ray workers).

:func:`derain_deploy.job.process_input` is ``derain-run`` on one input. A job cuts its inputs
into :class:`Task` s (a whole input, a segment of a long video, or a chunk of an image folder);
:func:`run_task` runs one on an open backend and returns a :class:`TaskResult`.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from ..backends import resolve_model
from ..backends.base import Backend
from ..job import CountingSink, JobOptions, process_input
from ..pipeline import RunStats, run
from ..streams import open_sink, open_source
from ..streams.base import StreamError
from ..streams.images import ImageSource
from ..weights import file_sha256
from .segments import Segment, SegmentSource

FAULT_DIR_ENV = "DERAIN_FAULT_DIR"  # tests: marker files here make a task fail (or its worker die) once


@dataclass
class Task:
    """One unit of work: a whole input, a segment of a video, or a chunk of an image folder."""

    item: int  # index of the input in the job
    spec: str  # the input as given
    kind: str  # "whole", "segment", "chunk"
    output: str  # final output (whole, chunk) or the segment's file
    part: int = 0
    frames: int | None = None  # expected frames, for progress
    segment: Segment | None = None
    files: list[str] = field(default_factory=list)  # chunk: the image files
    attempts: int = 0

    @property
    def label(self) -> str:
        name = Path(self.spec).name or self.spec
        return name if self.kind == "whole" else f"{name} [{self.kind} {self.part}]"


@dataclass
class TaskResult:
    frames: int
    seconds: float
    backend: str
    worker: str
    skipped_frames: int = 0
    first_time: Fraction | None = None  # segment: input time of its first frame
    names: list[str] = field(default_factory=list)  # chunk: the images written, relative to the output


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def settings_key(options: JobOptions) -> str:
    """A digest of every setting that changes an output's bytes, the model file's contents included."""
    settings = {
        "model_sha256": file_sha256(resolve_model(options.model)),
        "backend": options.backend,
        "device": options.device,
        "precision": options.precision,
        "batch": options.batch,
        "tile": options.tile,
        "compare": options.compare,
        "quality": options.quality,
        "skip_bad_frames": options.skip_bad_frames,
        "backend_options": {k: v for k, v in sorted(options.backend_options.items()) if k != "threads"},
    }
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:32]


def _run_segment(
    task: Task, options: JobOptions, backend: Backend, on_frame: Callable[[int], None] | None
) -> tuple[RunStats, Fraction | None]:
    assert task.segment is not None
    source = SegmentSource(task.spec, task.segment, skip_bad_frames=options.skip_bad_frames)
    try:
        info = source.info
        sink = open_sink(info, task.output, quality=options.quality, audio=False)
    except BaseException:
        source.close()
        raise
    stats = run(
        source, backend, CountingSink(sink, on_frame), options.batch, progress=False, output=task.output
    )
    first = None
    if source.first_pts is not None and info.time_base is not None:
        first = source.first_pts * info.time_base
    return stats, first


def _run_chunk(
    task: Task, options: JobOptions, backend: Backend, on_frame: Callable[[int], None] | None
) -> tuple[RunStats, list[str]]:
    source = open_source(task.spec, skip_bad_frames=options.skip_bad_frames, max_pixels=options.max_pixels)
    try:
        if not isinstance(source, ImageSource) or source.info.kind != "folder":
            raise StreamError(f"{task.spec} is no longer an image folder")
        source.files = [Path(f) for f in task.files]  # this chunk's images, named as in the whole folder
        source.info.frames = len(source.files)
        sink = open_sink(source.info, options.output, compare=options.compare, quality=options.quality)
    except BaseException:
        source.close()
        raise
    counting = CountingSink(sink, on_frame)
    stats = run(source, backend, counting, options.batch, progress=False, output=task.output)
    return stats, counting.names


def _fault_hook(task: Task, allow_exit: bool) -> None:
    """Tests only: ``$DERAIN_FAULT_DIR/<input name>.fail`` makes this input's next task raise,
    ``<input name>.exit`` makes the worker process running it exit. A marker holding a number
    N acts N times (empty: once); it is removed when spent."""
    folder = os.environ.get(FAULT_DIR_ENV)
    if not folder:
        return
    name = Path(task.spec).name
    for action in ("exit", "fail") if allow_exit else ("fail",):
        marker = Path(folder) / f"{name}.{action}"
        try:
            left = int(marker.read_text().strip() or 1) - 1
        except FileNotFoundError:
            continue
        if left > 0:
            marker.write_text(str(left))
        else:
            marker.unlink()
        if action == "exit":
            os._exit(3)
        raise RuntimeError(f"injected failure for {name} (test hook)")


def run_task(
    task: Task,
    options: JobOptions,
    backend: Backend,
    *,
    on_frame: Callable[[int], None] | None = None,
    allow_exit: bool = False,
) -> TaskResult:
    """Run ``task`` on an open ``backend``; raises what the source, sink or backend raise."""
    _fault_hook(task, allow_exit)
    start = time.perf_counter()
    result = TaskResult(0, 0.0, backend.info.describe(), worker_name())
    if task.kind == "segment":
        stats, result.first_time = _run_segment(task, options, backend, on_frame)
    elif task.kind == "chunk":
        stats, result.names = _run_chunk(task, options, backend, on_frame)
    else:
        stats = process_input(task.spec, options, backend, on_frame=on_frame)
        result.names = list(stats.details.get("names", []))  # type: ignore[call-overload]
    result.frames, result.skipped_frames = stats.frames, stats.skipped
    result.seconds = time.perf_counter() - start
    return result
