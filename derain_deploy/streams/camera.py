"""A camera by index (``--camera 0``) through OpenCV's VideoCapture (V4L2, DirectShow, AVFoundation)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from fractions import Fraction

import cv2
import numpy as np

from .base import Frame, SourceInfo, StreamError

# Camera frames are timed by the wall clock, in milliseconds from the first frame.
CAMERA_TIME_BASE = Fraction(1, 1000)


@contextlib.contextmanager
def _quiet_opencv() -> Iterator[None]:
    """OpenCV logs a warning per backend it tries; the StreamError says it in one line instead."""
    logging = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging is None:
        yield
        return
    previous = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        logging.setLogLevel(previous)


class CameraSource:
    """Frames from camera ``index`` until it stops delivering or ``max_frames`` is reached.

    Each frame's pts is its capture time (ms since the first frame), so a video written from
    it plays at the real speed even when frames are processed slower than they arrive.
    OpenCV keeps a small buffer: when processing is slower than the camera, frames come out
    late, not dropped."""

    def __init__(self, index: int, *, max_frames: int | None = None) -> None:
        self.index = index
        self.max_frames = max_frames
        self.bad_frames: list[int] = []
        with _quiet_opencv():
            self._cap = cv2.VideoCapture(index)
            opened = self._cap.isOpened()
        if not opened:
            self._cap.release()
            raise StreamError(f"camera {index} did not open (no such camera, or it is busy or not permitted)")
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        width = int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH)) or None
        height = int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) or None
        self.info = SourceInfo(
            kind="camera",
            path=f"camera{index}",
            fps=Fraction(fps).limit_denominator(1001) if fps and fps > 0 else None,
            time_base=CAMERA_TIME_BASE,
            width=width,
            height=height,
        )

    def __iter__(self) -> Iterator[Frame]:
        start: float | None = None
        index = 0
        while self.max_frames is None or index < self.max_frames:
            ok, bgr = self._cap.read()
            if not ok or bgr is None:
                if index == 0:
                    raise StreamError(f"camera {self.index} opened but delivered no frame")
                return
            now = time.monotonic()
            start = now if start is None else start
            if bgr.ndim == 2:
                bgr = cv2.cvtColor(bgr, cv2.COLOR_GRAY2BGR)
            rgb = np.ascontiguousarray(bgr[:, :, 2::-1]).astype(np.float32) * np.float32(1 / 255)
            pts = round((now - start) / CAMERA_TIME_BASE)
            yield Frame(image=rgb, index=index, pts=pts, time_base=CAMERA_TIME_BASE)
            index += 1

    def close(self) -> None:
        self._cap.release()
