"""The one small interface every inference backend implements."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar, Protocol, runtime_checkable

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


class ContextManaged:
    """``with backend: ...`` closes it at the end of the block."""

    def close(self) -> None:  # pragma: no cover - every backend has its own
        pass

    def __enter__(self):  # type: ignore[no-untyped-def]
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_nchw(batch: np.ndarray, who: str) -> None:
    """Stop unless ``batch`` is an Nx3xHxW array (the one input every backend takes)."""
    if batch.ndim != 4 or batch.shape[1] != 3:
        raise BackendError(f"{who}: expected an Nx3xHxW batch, got shape {batch.shape}")


class BackendBase(ContextManaged):
    """The thin base of the backends: :meth:`__call__` checks the batch (:func:`check_nchw`),
    runs :meth:`infer` (all a backend implements besides opening and :meth:`close`) and clips
    the output to [0, 1] as float32. ``fresh_output``: ``infer`` returns an array of its own
    (not a runtime's buffer), which the clip may then overwrite instead of copying."""

    info: BackendInfo
    who: ClassVar[str] = "backend"  # how errors name the backend: "onnxruntime: expected ..."
    fresh_output: ClassVar[bool] = False

    def infer(self, batch: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        check_nchw(batch, self.who)
        y = self.infer(batch)
        if self.fresh_output and y.dtype == np.float32 and y.flags.writeable:
            return np.clip(y, 0.0, 1.0, out=y)
        return np.clip(y, 0.0, 1.0).astype(np.float32, copy=False)


class NonFiniteOutputError(BackendError):
    """A backend output holding NaN or Inf. ``index``: the frame's place in its batch."""

    def __init__(self, message: str, model: str, index: int | None = None) -> None:
        super().__init__(message)
        self.model, self.index = model, index


def first_nonfinite(output: np.ndarray) -> int | None:
    """The index of the first frame of ``output`` holding NaN or Inf, else None. One sum over
    the batch when all is finite (a frame is searched for only when the sum is not)."""
    with np.errstate(over="ignore", invalid="ignore"):
        if math.isfinite(float(np.sum(output, dtype=np.float32))):
            return None
    for index in range(len(output)):
        if not np.isfinite(output[index]).all():
            return index
    return None  # the float32 sum overflowed on large but finite values


def probe_batch(info: BackendInfo) -> np.ndarray:
    """A small grey 1x3x64x64 frame (or the model's static input shape, or an engine's smallest)."""
    shape = [1, 3, 64, 64]
    for key in ("profile_min", "input_shape"):
        dims = info.details.get(key)
        if isinstance(dims, list) and len(dims) == 4:
            shape = [d if isinstance(d, int) and d > 0 else s for d, s in zip(dims, shape)]
    rows = np.linspace(0.2, 0.8, shape[2], dtype=np.float32)[:, None]
    return np.broadcast_to(rows, shape).astype(np.float32)


class FiniteBackend(ContextManaged):
    """A backend whose every output is checked for NaN and Inf: a probe frame at open, then each
    batch (see :func:`first_nonfinite`); a non-finite output raises :class:`NonFiniteOutputError`
    naming the model. ``open_backend`` and ``open_spec`` return backends wrapped in it."""

    def __init__(self, inner: Backend, probe: bool = True, model: str | None = None) -> None:
        self.inner, self.info = inner, inner.info
        self.model = model or str(inner.info.details.get("model") or inner.info.name)  # named in errors
        if not probe:
            return
        try:
            self(probe_batch(inner.info))
        except NonFiniteOutputError:
            inner.close()
            raise NonFiniteOutputError(
                f"{self.model}: the model's output holds NaN or Inf (on a probe frame at open; "
                f"{inner.info.describe()})",
                self.model,
            ) from None
        except Exception:  # e.g. a static input shape the probe missed: the first batch will say it
            pass

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        output = self.inner(batch)
        index = first_nonfinite(output)
        if index is not None:
            raise NonFiniteOutputError(
                f"{self.model}: NaN or Inf in the output of frame {index} of the batch "
                f"({self.info.describe()})",
                self.model,
                index,
            )
        return output

    def __getattr__(self, name: str) -> object:  # run_stages, session, ... of the wrapped backend
        if name == "inner":  # not set yet (copy, unpickling): no endless recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    def close(self) -> None:
        self.inner.close()
