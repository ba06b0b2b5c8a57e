"""Pipeline: order and count kept across threads and batches, errors propagate, sink aborted."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from derain_deploy.backends.base import BackendInfo
from derain_deploy.pipeline import RunStats, batches, run
from derain_deploy.streams.base import Frame, SourceInfo, StreamError


class ListSource:
    def __init__(
        self, n: int, shapes: list[tuple[int, int]] | None = None, fail_at: int | None = None
    ) -> None:
        self.n, self.shapes, self.fail_at = n, shapes, fail_at
        self.info = SourceInfo(kind="video", path="fake.mp4", frames=n)
        self.read = 0
        self.closed = False

    def __iter__(self) -> Iterator[Frame]:
        for i in range(self.n):
            if i == self.fail_at:
                raise StreamError(f"corrupt frame {i}")
            h, w = self.shapes[i] if self.shapes else (6, 8)
            self.read += 1
            yield Frame(image=np.full((h, w, 3), i / 100, np.float32), index=i, pts=i)

    def close(self) -> None:
        self.closed = True


class ScaleBackend:
    """Doubles its input; records batch sizes; optionally fails or sleeps."""

    def __init__(
        self, fail_on_call: int | None = None, error: BaseException | None = None, delay: float = 0
    ) -> None:
        self.info = BackendInfo("fake", "cpu", "fp32")
        self.sizes: list[int] = []
        self.fail_on_call, self.error, self.delay = fail_on_call, error, delay
        self.threads: set[str] = set()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.threads.add(threading.current_thread().name)
        if len(self.sizes) == self.fail_on_call:
            raise self.error or RuntimeError("backend exploded")
        self.sizes.append(len(batch))
        time.sleep(self.delay)
        return batch * 2

    def close(self) -> None:
        pass


class RecordingSink:
    def __init__(
        self, fail_at: int | None = None, delay: float = 0, source: ListSource | None = None
    ) -> None:
        self.frames: list[tuple[int, float]] = []
        self.closed = self.aborted = False
        self.fail_at, self.delay, self.source = fail_at, delay, source
        self.max_ahead = 0

    def write(self, frame: Frame, output: np.ndarray) -> None:
        if frame.index == self.fail_at:
            raise OSError("disk full")
        assert output.shape == frame.image.shape
        if self.source is not None:
            self.max_ahead = max(self.max_ahead, self.source.read - len(self.frames))
        time.sleep(self.delay)
        self.frames.append((frame.index, float(output[0, 0, 0])))

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True


def test_order_and_count_with_batches() -> None:
    source, backend, sink = ListSource(11), ScaleBackend(delay=0.002), RecordingSink()
    stats = run(source, backend, sink, batch=3, progress=False, output="out.mp4")
    assert [i for i, _ in sink.frames] == list(range(11))
    assert [v for _, v in sink.frames] == pytest.approx([2 * i / 100 for i in range(11)])
    assert backend.sizes == [3, 3, 3, 2]
    assert sink.closed and not sink.aborted and source.closed
    assert isinstance(stats, RunStats)
    assert (stats.frames, stats.batches, stats.output) == (11, 4, "out.mp4")
    assert stats.fps > 0 and stats.backend_seconds > 0
    assert "11 frames" in stats.describe() and "fake on cpu" in stats.describe()


def test_size_change_closes_a_batch() -> None:
    shapes = [(6, 8), (6, 8), (4, 4), (4, 4), (4, 4), (6, 8)]
    backend, sink = ScaleBackend(), RecordingSink()
    run(ListSource(6, shapes), backend, sink, batch=4, progress=False)
    assert backend.sizes == [2, 3, 1]
    assert [i for i, _ in sink.frames] == list(range(6))
    assert [len(g) for g in batches(iter(ListSource(6, shapes)), 2)] == [2, 2, 1, 1]


def test_memory_stays_bounded() -> None:
    source = ListSource(40)
    sink = RecordingSink(delay=0.003, source=source)
    run(source, ScaleBackend(), sink, batch=2, progress=False, queue_batches=2)
    assert len(sink.frames) == 40
    # in flight at most: 2 queued + 1 being read + 1 in the backend + 2 queued + 1 being written
    assert sink.max_ahead <= 7 * 2


@pytest.mark.parametrize(
    ("source", "backend", "sink", "error"),
    [
        (ListSource(9), ScaleBackend(fail_on_call=1), RecordingSink(), RuntimeError),
        (ListSource(9), ScaleBackend(), RecordingSink(fail_at=4), OSError),
        (ListSource(9, fail_at=5), ScaleBackend(), RecordingSink(), StreamError),
        (
            ListSource(9),
            ScaleBackend(fail_on_call=2, error=KeyboardInterrupt()),
            RecordingSink(),
            KeyboardInterrupt,
        ),
    ],
    ids=["backend", "sink", "source", "ctrl-c"],
)
def test_errors_propagate_and_abort_the_sink(source, backend, sink, error) -> None:
    with pytest.raises(error):
        run(source, backend, sink, batch=2, progress=False)
    assert sink.aborted and not sink.closed
    assert source.closed


def test_sink_close_failure_aborts() -> None:
    class FailingClose(RecordingSink):
        def close(self) -> None:
            raise OSError("cannot rename")

    sink = FailingClose()
    with pytest.raises(OSError, match="cannot rename"):
        run(ListSource(3), ScaleBackend(), sink, progress=False)
    assert sink.aborted


def test_inference_runs_in_the_calling_thread() -> None:
    backend = ScaleBackend()
    run(ListSource(3), backend, RecordingSink(), progress=False)
    assert backend.threads == {threading.current_thread().name}


def test_batch_must_be_positive() -> None:
    with pytest.raises(ValueError, match="batch"):
        run(ListSource(1), ScaleBackend(), RecordingSink(), batch=0)
