"""source -> batches -> backend -> sink, with decoding, inference and encoding overlapped.

Three threads joined by bounded queues: a reader decodes frames and stacks them into batches,
the calling thread runs the backend (ONNX Runtime, TensorRT and torch release the GIL while they
compute), and a writer encodes. Each queue holds at most ``queue_batches`` batches, so memory
stays flat whatever the length of the input. An exception in any thread stops the other two
and is re-raised in the caller; the sink is then aborted (nothing is left at its final path).
Ctrl-C does the same.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from .backends.base import Backend, NonFiniteOutputError
from .streams.base import Frame, FrameSink, FrameSource

_END = object()  # end of stream marker
_POLL = 0.1  # seconds between checks of the stop flag while a queue is full or empty


@dataclass
class RunStats:
    """What a run did; ``describe`` is the summary line ``derain-run`` prints."""

    frames: int
    seconds: float
    backend: str
    precision: str
    output: str | None = None
    skipped: int = 0
    backend_seconds: float = 0.0  # time spent inside the backend's calls
    batches: int = 0
    details: dict[str, object] = field(default_factory=dict)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def backend_fps(self) -> float:
        return self.frames / self.backend_seconds if self.backend_seconds > 0 else 0.0

    def describe(self) -> str:
        text = (
            f"{self.frames} frames in {self.seconds:.1f} s ({self.fps:.2f} frames/s) "
            f"with {self.backend} ({self.precision})"
        )
        if self.skipped:
            text += f", {self.skipped} bad frames skipped"
        if self.output:
            text += f" -> {self.output}"
        return text


class _StopError(Exception):
    """Raised inside a worker when another thread asked everyone to stop."""


class _Run:
    """Shared state of one run: the stop flag and the first error."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.lock = threading.Lock()

    def fail(self, error: BaseException) -> None:
        with self.lock:
            if self.error is None:
                self.error = error
        self.stop.set()

    def put(self, q: queue.Queue, item: object) -> None:
        while True:
            if self.stop.is_set():
                raise _StopError
            try:
                q.put(item, timeout=_POLL)
                return
            except queue.Full:
                continue

    def get(self, q: queue.Queue) -> object:
        while True:
            if self.stop.is_set():
                raise _StopError
            try:
                return q.get(timeout=_POLL)
            except queue.Empty:
                continue

    def thread(self, target: Callable[[], None], name: str) -> threading.Thread:
        def body() -> None:
            try:
                target()
            except _StopError:
                pass
            except BaseException as e:  # handed to the caller's thread
                self.fail(e)

        t = threading.Thread(target=body, name=name, daemon=True)
        t.start()
        return t


def batches(frames: Iterator[Frame], size: int) -> Iterator[list[Frame]]:
    """Consecutive frames grouped by ``size``; a change of frame size closes a group early."""
    group: list[Frame] = []
    for frame in frames:
        if group and (len(group) == size or frame.image.shape != group[0].image.shape):
            yield group
            group = []
        group.append(frame)
    if group:
        yield group


def to_batch(frames: list[Frame]) -> np.ndarray:
    """HxWx3 frames -> one Nx3xHxW float32 array."""
    return np.stack([np.asarray(f.image, dtype=np.float32).transpose(2, 0, 1) for f in frames])


def _name_frame(error: NonFiniteOutputError, group: list[Frame]) -> NonFiniteOutputError:
    """The error of a non-finite output, naming the input frame it came from."""
    frame = group[error.index] if error.index is not None and error.index < len(group) else group[0]
    where = frame.name or f"frame {frame.index}"
    message = f"{error.model}: NaN or Inf in the output for {where}"
    return NonFiniteOutputError(message, error.model, error.index)


def run(
    source: FrameSource,
    backend: Backend,
    sink: FrameSink,
    batch: int = 1,
    *,
    progress: bool = True,
    output: str | None = None,
    queue_batches: int = 2,
    desc: str | None = None,
) -> RunStats:
    """Derain every frame of ``source`` with ``backend`` into ``sink``, then close the sink.

    On any error (or KeyboardInterrupt) the sink is aborted and the error re-raised. The
    source is closed in all cases. ``output`` is only reported in the stats."""
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    state = _Run()
    q_in: queue.Queue = queue.Queue(maxsize=queue_batches)
    q_out: queue.Queue = queue.Queue(maxsize=queue_batches)
    bar = tqdm(
        total=source.info.frames,
        unit="frame",
        desc=desc,
        disable=not progress,
        file=sys.stderr,
        dynamic_ncols=True,
    )
    written = 0

    def read() -> None:
        for group in batches(iter(source), batch):
            state.put(q_in, (group, to_batch(group)))
        state.put(q_in, _END)

    def write() -> None:
        nonlocal written
        while (item := state.get(q_out)) is not _END:
            group, out = item  # type: ignore[misc]
            for frame, image in zip(group, out):
                sink.write(frame, image.transpose(1, 2, 0))
                written += 1
                bar.update(1)

    start = time.perf_counter()
    backend_seconds, n_batches = 0.0, 0
    reader = state.thread(read, "derain-read")
    writer = state.thread(write, "derain-write")
    try:
        try:
            while (item := state.get(q_in)) is not _END:
                group, x = item  # type: ignore[misc]
                t0 = time.perf_counter()
                try:
                    y = backend(x)
                except NonFiniteOutputError as e:
                    raise _name_frame(e, group) from None
                backend_seconds += time.perf_counter() - t0
                n_batches += 1
                if y.shape != x.shape:
                    raise RuntimeError(f"backend returned shape {y.shape} for input {x.shape}")
                state.put(q_out, (group, y))
            state.put(q_out, _END)
        except _StopError:
            pass
        except BaseException as e:  # KeyboardInterrupt included: stop the workers, then re-raise
            state.fail(e)
        writer.join()
        if state.error is None:
            sink.close()
    except BaseException as e:  # e.g. Ctrl-C while joining, or sink.close() failing
        state.fail(e)
    finally:
        state.stop.set()
        reader.join(timeout=5.0)  # a reader stuck in a network read is a daemon: let it go
        writer.join()
        bar.close()
        try:
            if state.error is not None:
                sink.abort()
        finally:
            source.close()
    if state.error is not None:
        raise state.error
    seconds = time.perf_counter() - start
    skipped = len(getattr(source, "bad_frames", None) or [])
    info = backend.info
    return RunStats(
        frames=written,
        seconds=seconds,
        backend=info.describe().split(" (")[0],
        precision=info.precision,
        output=output,
        skipped=skipped,
        backend_seconds=backend_seconds,
        batches=n_batches,
    )
