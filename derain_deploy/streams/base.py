"""Frames, sources and sinks: the interfaces the pipeline moves data through."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Protocol, runtime_checkable

import numpy as np


class StreamError(RuntimeError):
    """An input or output that cannot be read or written; the message is one line."""


@dataclass
class Frame:
    """One image or video frame: ``image`` is HxWx3 float32 RGB in [0, 1]."""

    image: np.ndarray
    index: int
    name: str | None = None  # image sources: output name relative to the output folder
    pts: int | None = None  # video sources: presentation timestamp in ``time_base`` units
    time_base: Fraction | None = None
    meta: dict[str, object] = field(default_factory=dict)  # e.g. alpha channel, bit depth


@dataclass
class SourceInfo:
    kind: str  # "image", "folder", "video", "camera", "stream"
    path: str
    frames: int | None = None  # None when unknown (camera, live stream)
    fps: Fraction | None = None
    time_base: Fraction | None = None
    width: int | None = None
    height: int | None = None
    has_audio: bool = False


@runtime_checkable
class FrameSource(Protocol):
    info: SourceInfo

    def __iter__(self) -> Iterator[Frame]: ...

    def close(self) -> None: ...


@runtime_checkable
class FrameSink(Protocol):
    """Receives each input frame with its derained output (HxWx3 float32 in [0, 1]).

    ``close`` finalizes (temporary file renamed to the final path); ``abort`` removes
    everything written so far, leaving nothing at the final path."""

    def write(self, frame: Frame, output: np.ndarray) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...
