"""The one small interface every inference backend implements."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np


class BackendError(RuntimeError):
    """A backend that cannot give what was asked for (missing provider, GPU, engine mismatch...).

    The message is one line and says what was asked for and what is available."""


@dataclass
class BackendInfo:
    """What actually runs: reported in summaries and benchmark rows."""

    name: str  # "torch", "onnxruntime", "tensorrt"
    device: str  # "cpu", "cuda:0", ...
    precision: str  # "fp32", "fp16", "int8", "bf16"
    details: dict[str, object] = field(default_factory=dict)  # providers, model path, threads...

    def describe(self) -> str:
        return f"{self.name} on {self.device} ({self.precision})"


@runtime_checkable
class Backend(Protocol):
    """Runs the model: float32 NCHW RGB batches in [0, 1] in, same shape and range out."""

    info: BackendInfo

    def __call__(self, batch: np.ndarray) -> np.ndarray: ...

    def close(self) -> None: ...
