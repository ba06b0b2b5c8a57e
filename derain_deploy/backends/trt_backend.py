"""TensorRT native backend: a plain engine file plus its sidecar JSON, torch CUDA tensors as buffers.

The sidecar (``model.engine.json`` next to ``model.engine``) is read and checked before the
engine is deserialized: an engine built by another TensorRT version or for another GPU is
refused with a one-line message instead of crashing or running wrong. ``tensorrt`` is imported
only when an engine is opened, so this module imports on machines without it.

Inference uses the named-tensor API of TensorRT 10/11 (``num_io_tensors``, ``get_tensor_name``,
``set_input_shape``, ``set_tensor_address``, ``execute_async_v3``) on a torch CUDA stream, and
replays a CUDA graph when consecutive batches have the same shape. No pycuda.

Graph capture is thread-local (``capture_error_mode="thread_local"``, as trtexec does: other
threads' CUDA calls do not break it). When capture fails the backend runs without a graph for
that shape and says why in one warning line that carries the first error (an enqueue that
failed under capture, not the follow-up "capture invalidated" error CUDA raises at its end).
"""

from __future__ import annotations

import importlib.util
import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .base import BackendBase, BackendError, BackendInfo
from .registry import BackendDescriptor, dist_version

if TYPE_CHECKING:
    from ..backend_spec import BackendSpec
    from ..model import DerainNet

# sidecar keys this backend needs; derain_deploy/build/trt_build.py writes them (and more)
SIDECAR_KEYS = ("tensorrt_version", "gpu", "compute_capability")
SIDECAR_FORMAT = "derain-deploy-engine"


def sidecar_path(engine: str | Path) -> Path:
    engine = Path(engine)
    return engine.with_name(engine.name + ".json")


def read_sidecar(engine: str | Path) -> dict[str, object]:
    """The engine's sidecar metadata; a missing or malformed one is an error."""
    engine, side = Path(engine), sidecar_path(engine)
    if not engine.is_file():
        raise BackendError(f"tensorrt: engine file not found: {engine}")
    if not side.is_file():
        raise BackendError(
            f"tensorrt: {engine.name} has no sidecar {side.name}; rebuild it with derain-export "
            "(the sidecar records the TensorRT version and GPU it was built for)"
        )
    try:
        meta = json.loads(side.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BackendError(f"tensorrt: cannot read sidecar {side.name}: {e}") from None
    if not isinstance(meta, dict):
        raise BackendError(f"tensorrt: sidecar {side.name} is not a JSON object")
    missing = [k for k in SIDECAR_KEYS if k not in meta]
    if missing:
        raise BackendError(f"tensorrt: sidecar {side.name} lacks {', '.join(missing)}")
    return meta


def _capability(value: object) -> str:
    if isinstance(value, (list, tuple)):
        return ".".join(str(v) for v in value)
    return str(value)


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(".") if p.isdigit())


def check_sidecar(meta: dict[str, object], trt_version: str, gpu_name: str, capability: str) -> None:
    """Refuse an engine built for another TensorRT version or GPU.

    Plain engines need the same TensorRT version and the same GPU. A ``version_compatible``
    engine also loads in later TensorRT versions of the same major version; a
    ``hardware_compatible`` one on any GPU of compute capability 8.0 (Ampere) or newer."""
    fmt = meta.get("format", SIDECAR_FORMAT)
    if fmt != SIDECAR_FORMAT:
        raise BackendError(f"tensorrt: the sidecar's format is {fmt!r}, expected {SIDECAR_FORMAT!r}")
    built_version = str(meta["tensorrt_version"])
    if built_version != trt_version:
        built, here = _version_tuple(built_version), _version_tuple(trt_version)
        if not (meta.get("version_compatible") and built[:1] == here[:1] and here >= built):
            raise BackendError(
                f"tensorrt: engine built with TensorRT {built_version} but this is TensorRT {trt_version}; "
                "rebuild it with derain-export on this machine"
            )
    built_gpu, built_cc = str(meta["gpu"]), _capability(meta["compute_capability"])
    if meta.get("hardware_compatible"):
        if _version_tuple(capability) < (8, 0):
            raise BackendError(
                f"tensorrt: hardware-compatible engines need compute capability 8.0 or newer; "
                f"this GPU is {gpu_name} ({capability})"
            )
    elif built_cc != capability or built_gpu != gpu_name:
        raise BackendError(
            f"tensorrt: engine built for {built_gpu} (compute capability {built_cc}) but this GPU is "
            f"{gpu_name} (compute capability {capability}); rebuild it with derain-export on this machine"
        )


def _import_trt():
    try:
        import tensorrt
    except ImportError:
        raise BackendError(
            "tensorrt is not installed: pip install 'derain-deploy[trt]' (from NVIDIA's package index)"
        ) from None
    return tensorrt


class TrtBackend(BackendBase):
    """A serialized TensorRT engine with one image input and one image output."""

    who = "tensorrt"
    fresh_output = True  # a host copy of the output buffer

    def __init__(
        self, engine: str | Path, device: str = "cuda", precision: str | None = None, cuda_graphs: bool = True
    ) -> None:
        import torch

        path = Path(engine)
        meta = read_sidecar(path)
        check_device(device)
        if not torch.cuda.is_available():
            raise BackendError("tensorrt: torch sees no CUDA GPU here (a CUDA build of torch is needed)")
        self.device = torch.device(device if ":" in device else "cuda:0")
        props = torch.cuda.get_device_properties(self.device)
        trt = _import_trt()
        check_sidecar(meta, trt.__version__, props.name, f"{props.major}.{props.minor}")
        built_precision = str(meta.get("precision", "fp32"))
        if precision and precision != built_precision:
            raise BackendError(
                f"tensorrt: {precision} was asked for but {path.name} was built {built_precision}"
            )

        torch.cuda.set_device(self.device)
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        if meta.get("version_compatible") and hasattr(self._runtime, "engine_host_code_allowed"):
            self._runtime.engine_host_code_allowed = True  # version-compatible plans embed a lean runtime
        self.engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
        if self.engine is None:
            raise BackendError(f"tensorrt: could not deserialize {path.name} (see the TensorRT log above)")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if len(inputs) != 1 or len(outputs) != 1:
            raise BackendError(
                f"tensorrt: {path.name} has inputs {inputs} and outputs {outputs}; expected one each"
            )
        self.input_name, self.output_name = inputs[0], outputs[0]
        dtypes = {trt.DataType.FLOAT: torch.float32, trt.DataType.HALF: torch.float16}
        try:
            self.input_dtype = dtypes[self.engine.get_tensor_dtype(self.input_name)]
            self.output_dtype = dtypes[self.engine.get_tensor_dtype(self.output_name)]
        except KeyError:
            raise BackendError(f"tensorrt: {path.name} has I/O types other than float32/float16") from None
        lo, _, hi = self.engine.get_tensor_profile_shape(self.input_name, 0)
        self.min_shape, self.max_shape = tuple(lo), tuple(hi)
        self.stream = torch.cuda.Stream(self.device)
        self.cuda_graphs = cuda_graphs
        self._shape: tuple[int, ...] | None = None
        self._graph: torch.cuda.CUDAGraph | None = None
        self._x = self._y = None
        self.info = BackendInfo(
            name="tensorrt",
            device=str(self.device),
            precision=built_precision,
            details={
                "model": str(path),
                "tensorrt": trt.__version__,
                "gpu": props.name,
                "profile_min": list(self.min_shape),
                "profile_max": list(self.max_shape),
                "cuda_graphs": cuda_graphs,
            },
        )

    def _prepare(self, shape: tuple[int, ...]) -> None:
        """Bind buffers for a new input shape and (optionally) capture a CUDA graph for it."""
        import torch

        if any(s < lo or s > hi for s, lo, hi in zip(shape, self.min_shape, self.max_shape)):
            raise BackendError(
                f"tensorrt: input {shape} is outside the engine profile {self.min_shape}..{self.max_shape} "
                "(use --tile to split large frames)"
            )
        if not self.context.set_input_shape(self.input_name, shape):
            raise BackendError(f"tensorrt: set_input_shape({self.input_name}, {shape}) was refused")
        out_shape = tuple(self.context.get_tensor_shape(self.output_name))
        self._x = torch.empty(shape, dtype=self.input_dtype, device=self.device)
        self._y = torch.empty(out_shape, dtype=self.output_dtype, device=self.device)
        self.context.set_tensor_address(self.input_name, self._x.data_ptr())
        self.context.set_tensor_address(self.output_name, self._y.data_ptr())
        self._graph = None
        with torch.cuda.stream(self.stream):
            self._execute()  # first run outside capture: TensorRT allocates lazily
        self.stream.synchronize()
        if self.cuda_graphs:
            self._graph = self._capture()
        self._shape = shape

    def _capture(self) -> object | None:
        """A CUDA graph of one enqueue, or None (with one warning line saying why) when capture fails."""
        import torch

        graph = torch.cuda.CUDAGraph()
        first: BaseException | None = None
        try:
            with torch.cuda.graph(graph, stream=self.stream, capture_error_mode="thread_local"):
                try:
                    self._execute()
                except BackendError as e:
                    first = e
                    raise
        except (BackendError, RuntimeError) as e:
            cause = first or e
            reason = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
            self.stream.synchronize()
            self.info.details["cuda_graphs"] = False
            self.info.details["cuda_graphs_fallback"] = reason
            warnings.warn(
                f"tensorrt: CUDA graph capture failed ({reason}); running without CUDA graphs",
                RuntimeWarning,
                stacklevel=3,
            )
            return None
        return graph

    def _execute(self) -> None:
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise BackendError("tensorrt: execute_async_v3 failed (see the TensorRT log above)")

    def infer(self, batch: np.ndarray) -> np.ndarray:
        import torch

        shape = tuple(batch.shape)
        if shape != self._shape:
            self._prepare(shape)
        host = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
        with torch.cuda.stream(self.stream):
            self._x.copy_(host)  # converts to the engine's input type
            self._run_bound()
            out = self._y.float().cpu()
        return out.numpy()

    def _run_bound(self) -> None:
        if self._graph is not None:
            self._graph.replay()
        else:
            self._execute()

    def run_device(self, x: object) -> object:
        """The engine on a CUDA tensor, enqueued on :attr:`stream` (the bench times compute
        alone with events there); returns the engine's output buffer."""
        import torch

        shape = tuple(x.shape)  # type: ignore[attr-defined]
        if shape != self._shape:
            self._prepare(shape)
        with torch.cuda.stream(self.stream):
            self._x.copy_(x)  # device to device, converting to the engine's input type
            self._run_bound()
        return self._y

    def close(self) -> None:
        self._graph = None
        self.context = None
        self.engine = None
        self._x = self._y = None


def check_device(device: str) -> None:
    if not device.startswith("cuda"):
        raise BackendError(f"tensorrt runs on a CUDA GPU; device {device!r} was asked for")


def open_file(model: Path, device: str, precision: str | None, **options: object) -> TrtBackend:
    """``derain-run``: an ``.engine`` file built by derain-export (with its sidecar), or weights
    built once into an engine for this GPU and TensorRT version in the per-user artifact cache."""
    device = "cuda" if device == "auto" else device
    if model.suffix == ".safetensors":
        from ..artifacts import cached_engine

        check_device(device)  # before any build
        model, _ = cached_engine(model, precision or "fp32")
    elif model.suffix != ".engine":
        raise BackendError(
            "the tensorrt backend runs .engine files built by derain-export (or .safetensors "
            f"weights), not {model.name}"
        )
    return TrtBackend(model, device=device, precision=precision, **options)  # type: ignore[arg-type]


def open_spec(spec: BackendSpec, model: DerainNet, workdir: Path) -> TrtBackend:
    """``derain-bench`` / ``derain-eval``: the spec's engine, or one built from ``model`` in ``workdir``."""
    from ..backend_spec import exported_path

    precision = None if spec.file else spec.precision
    return TrtBackend(
        exported_path(spec, model, workdir), spec.device, precision, cuda_graphs=spec.cuda_graphs
    )


def available() -> tuple[bool, str]:
    if importlib.util.find_spec("tensorrt") is None:
        return False, "tensorrt is not installed: pip install 'derain-deploy[trt]'"
    return True, ""


DESCRIPTOR = BackendDescriptor(
    name="tensorrt",
    short="trt",
    precisions=("fp32", "tf32", "fp16", "int8"),
    devices=("cuda", "tensorrt"),
    suffixes=(".safetensors", ".engine"),
    open_file=open_file,
    open_spec=open_spec,
    available=available,
    order=40,
    best_device=lambda: ("cuda", "TensorRT runs on CUDA only"),
    runtime="tensorrt",
    version=lambda: dist_version("tensorrt", "tensorrt-cu12", "tensorrt-cu13", "tensorrt_cu12_libs"),
    graph_forms=True,
    export_kind="engine",
    gpu_only=True,
    bench_defaults={"cuda": ("trt:fp16@cuda", "trt:fp16:graphs@cuda")},
    auto_file="TensorRT engine",
)
