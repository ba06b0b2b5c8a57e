"""A toy backend (identity, optionally slow) that records its calls: for live tests and benchmarks."""

from __future__ import annotations

import threading
import time

import numpy as np

from .backends.base import BackendInfo, ContextManaged


class ToyBackend(ContextManaged):
    """Returns its input after ``delay`` seconds per call; ``batch_sizes`` lists every call's N."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.batch_sizes: list[int] = []
        self.info = BackendInfo(name="toy", device="cpu", precision="fp32", details={"delay_s": delay})
        self._lock = threading.Lock()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        if self.delay:
            time.sleep(self.delay)
        with self._lock:
            self.batch_sizes.append(int(batch.shape[0]))
        return batch

    def close(self) -> None:
        pass
