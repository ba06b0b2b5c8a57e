"""Side-by-side input|output frames, and a sink that writes to several sinks at once."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .base import Frame, FrameSink


def side_by_side(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """``left | right`` (HxWx3 each, same size) as one Hx2Wx3 image."""
    if left.shape != right.shape:
        raise ValueError(f"cannot put {left.shape} beside {right.shape}")
    return np.concatenate([np.asarray(left, np.float32), np.asarray(right, np.float32)], axis=1)


class CompareSink:
    """Writes ``input | output`` side by side into ``inner`` (an image or video sink).

    An alpha channel is repeated on both halves."""

    def __init__(self, inner: FrameSink) -> None:
        self.inner = inner

    def write(self, frame: Frame, output: np.ndarray) -> None:
        meta = dict(frame.meta)
        alpha = meta.get("alpha")
        if isinstance(alpha, np.ndarray):
            meta["alpha"] = np.concatenate([alpha, alpha], axis=1)
        both = Frame(
            image=frame.image,
            index=frame.index,
            name=frame.name,
            pts=frame.pts,
            time_base=frame.time_base,
            meta=meta,
        )
        self.inner.write(both, side_by_side(frame.image, output))

    def close(self) -> None:
        self.inner.close()

    def abort(self) -> None:
        self.inner.abort()


class TeeSink:
    """Writes every frame to each of ``sinks``; closing finalizes all, or aborts all if one fails."""

    def __init__(self, sinks: Sequence[FrameSink]) -> None:
        self.sinks = list(sinks)

    def write(self, frame: Frame, output: np.ndarray) -> None:
        for sink in self.sinks:
            sink.write(frame, output)

    def close(self) -> None:
        for i, sink in enumerate(self.sinks):
            try:
                sink.close()
            except BaseException:
                for rest in self.sinks[i + 1 :]:
                    rest.abort()
                raise

    def abort(self) -> None:
        for sink in self.sinks:
            sink.abort()
