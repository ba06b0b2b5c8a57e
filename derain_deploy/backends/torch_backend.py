"""PyTorch eager backend: CPU or CUDA, FP32, TF32 (CUDA), FP16 (CUDA) or BF16 (autocast), channels_last.

FP32 on CUDA is FP32: cuDNN's and cuBLAS's TF32 switches are turned off around each call and
restored after it (torch leaves cuDNN's on by default); precision ``tf32`` turns them on. The
module handed in is copied first: moving, casting and re-laying it out would change the
caller's model.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..model import DerainNet
from ..weights import load_weights
from .base import BackendBase, BackendError, BackendInfo, check_nchw
from .registry import BackendDescriptor

if TYPE_CHECKING:
    from ..backend_spec import BackendSpec

PRECISIONS = ("fp32", "tf32", "fp16", "bf16")


def tf32_setting(device_type: str, precision: str) -> bool | None:
    """Whether TF32 is allowed for a call: None (not a CUDA device: leave the switches alone),
    else True only when ``precision`` is tf32."""
    return None if device_type != "cuda" else precision == "tf32"


@contextlib.contextmanager
def tf32_mode(allow: bool | None) -> Iterator[None]:
    """Set torch's two TF32 switches to ``allow`` for the block and restore them after (no-op for None)."""
    if allow is None:
        yield
        return
    saved = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = allow
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def resolve_torch_device(device: str) -> torch.device:
    """``cpu``, ``cuda`` or ``cuda:N``; a CUDA device that is not there is an error, not a fallback."""
    if device in ("auto", ""):
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise BackendError(f"unknown device {device!r}; expected cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise BackendError(f"device {device} was asked for but torch sees no CUDA GPU here")
        index = dev.index or 0
        if index >= torch.cuda.device_count():
            raise BackendError(
                f"device {device} was asked for but only {torch.cuda.device_count()} GPU(s) exist"
            )
        dev = torch.device("cuda", index)
    elif dev.type != "cpu":
        raise BackendError(f"device {device!r} is not supported; expected cpu, cuda or cuda:N")
    return dev


class TorchBackend(BackendBase):
    """Eager PyTorch. ``model`` is a :class:`DerainNet` or a ``.safetensors`` weights file.

    FP16 runs the model in half precision on CUDA only (PyTorch's CPU half convolutions are
    slow and not what a user means); BF16 uses autocast (fast on CPUs with AVX-512 BF16).
    ``channels_last`` defaults to on: it measured about 2x faster than NCHW on this CPU."""

    who = "torch backend"
    fresh_output = True  # the forward's own output tensor

    def __init__(
        self,
        model: DerainNet | str | Path,
        device: str = "cpu",
        precision: str = "fp32",
        channels_last: bool = True,
        stages: int | None = None,
    ) -> None:
        if precision not in PRECISIONS:
            raise BackendError(
                f"torch backend: precision {precision!r} is not supported; use {', '.join(PRECISIONS)}"
            )
        self.device = resolve_torch_device(device)
        if precision == "fp16" and self.device.type != "cuda":
            raise BackendError(
                "torch backend: fp16 was asked for on the CPU; use --precision bf16 or fp32 there"
            )
        if precision == "tf32" and self.device.type != "cuda":
            raise BackendError("torch backend: tf32 needs a CUDA GPU; use --precision fp32 on the CPU")
        if precision == "bf16" and self.device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise BackendError(f"torch backend: bf16 was asked for but {self.device} does not support it")
        path = None
        if not isinstance(model, DerainNet):
            path = Path(model)
            if path.suffix != ".safetensors":
                raise BackendError(f"torch backend needs a .safetensors weights file, got {path.name}")
            model = load_weights(path)
        else:
            model = copy.deepcopy(model)  # never move or cast the caller's module
        self.model = model.eval().to(self.device)
        if precision == "fp16":
            self.model = self.model.half()
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model = self.model.to(memory_format=self.memory_format)
        self.precision = precision
        self._tf32 = tf32_setting(self.device.type, precision)
        self.stages = stages
        self.info = BackendInfo(
            name="torch",
            device=str(self.device),
            precision=precision,
            details={
                "model": str(path) if path else "in-memory DerainNet",
                "channels_last": channels_last,
                "stages": stages or self.model.config.stages,
                "threads": torch.get_num_threads(),
                "torch": torch.__version__,
            },
        )

    def _input(self, batch: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
        if self.precision == "fp16":
            x = x.half()
        return x.contiguous(memory_format=self.memory_format)

    def _forward(self, x: torch.Tensor, return_stages: bool) -> object:
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")
        with torch.inference_mode(), autocast, tf32_mode(self._tf32):
            return self.model(x, return_stages=return_stages, stages=self.stages)

    def run_device(self, x: torch.Tensor) -> torch.Tensor:
        """The forward on a float32 NCHW tensor already on the device (bench: compute alone)."""
        if self.precision == "fp16":
            x = x.half()
        return self._forward(x.contiguous(memory_format=self.memory_format), False)  # type: ignore[return-value]

    @staticmethod
    def _output(y: torch.Tensor) -> np.ndarray:
        return y.float().clamp(0.0, 1.0).contiguous().cpu().numpy()

    def infer(self, batch: np.ndarray) -> np.ndarray:
        y = self._forward(self._input(batch), False)
        return y.float().contiguous().cpu().numpy()  # type: ignore[attr-defined]  # clipped by __call__

    def run_stages(self, batch: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """The output and every stage's O_t (coarse to fine), each Nx3xHxW in [0, 1]."""
        check_nchw(batch, self.who)
        out, stages = self._forward(self._input(batch), True)  # type: ignore[misc]
        return self._output(out), [self._output(s) for s in stages]

    def close(self) -> None:
        self.model = None  # type: ignore[assignment]
        if self.device.type == "cuda":
            torch.cuda.empty_cache()


def open_file(model: Path, device: str, precision: str | None, **options: object) -> TorchBackend:
    """``derain-run``: a ``.safetensors`` weights file on ``device``."""
    if model.suffix != ".safetensors":
        raise BackendError(
            f"the torch backend runs .safetensors weights, not {model.suffix or model.name} files"
        )
    return TorchBackend(model, device=device, precision=precision or "fp32", **options)  # type: ignore[arg-type]


def open_spec(spec: BackendSpec, model: DerainNet, workdir: Path) -> TorchBackend:
    """``derain-bench`` / ``derain-eval``: ``model`` itself (or the spec's weights file)."""
    if spec.cuda_graphs:
        raise BackendError(f"{spec.label}: the torch backend does not offer CUDA graphs")
    # a copy: the backend moves, casts and re-lays out the module it is given, in place
    source = spec.file or copy.deepcopy(model)
    return TorchBackend(
        source, device=spec.device, precision=spec.precision, channels_last=spec.channels_last
    )


def best_device() -> tuple[str, str]:
    if torch.cuda.is_available():
        return "cuda", "torch sees a CUDA GPU"
    return "cpu", "torch sees no CUDA GPU"


DESCRIPTOR = BackendDescriptor(
    name="torch",
    short="torch",
    aliases=("pytorch",),
    precisions=PRECISIONS,
    devices=("cpu", "cuda"),
    suffixes=(".safetensors",),
    open_file=open_file,
    open_spec=open_spec,
    available=lambda: (True, ""),
    order=10,
    best_device=best_device,
    version=lambda: torch.__version__,
    channels_last=True,
    bench_defaults={"cpu": ("torch:cl", "torch"), "cuda": ("torch@cuda", "torch:fp16@cuda")},
)
