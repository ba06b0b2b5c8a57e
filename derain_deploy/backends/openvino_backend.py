"""OpenVINO backend: an exported ONNX file on Intel's CPU runtime, compiled per input shape.

Why a second CPU runtime: on the 2-core Xeon (AVX-512, AMX) of benchmarks/results, OpenVINO's
oneDNN kernels run the INT8 QDQ graph on AMX and the split FP32 graph faster than ONNX Runtime
(figures in benchmarks/results/intel-xeon-2c.md). Three precisions:

- ``fp32``: an FP32 ONNX file with ``INFERENCE_PRECISION_HINT=f32``. OpenVINO's default on CPUs
  with AMX or AVX-512 BF16 is bf16, so the hint is always set and checked after compiling;
- ``bf16``: the FP32 ONNX file computed in bf16 (the hint), where the CPU has native bf16;
- ``int8``: an INT8 QDQ file (``derain-export --int8``); the compiled convolutions must run in
  8 bits, else it stops rather than run a silently dequantized graph.

Shapes: a model compiled for one static shape ran 747 ms a frame at 480x640 against 909 ms for a
dynamic one, so each new input shape is compiled once (0.3 s for FP32) and the last few are kept.
"""

from __future__ import annotations

import collections
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnx

from ..cpu import usable_cores
from .base import BackendBase, BackendError, BackendInfo
from .onnx_check import check_io
from .registry import BackendDescriptor, dist_version

if TYPE_CHECKING:
    from ..backend_spec import BackendSpec
    from ..model import DerainNet

PRECISIONS = ("fp32", "bf16", "int8")
_HINT = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}  # int8: the non-quantized remainder in f32
_CONV_PRECISIONS = {"fp32": {"f32"}, "bf16": {"bf16"}, "int8": {"u8", "i8"}}
COMPILED_SHAPES_KEPT = 4
# The faster graph form on OpenVINO for every precision (benchmarks/results/intel-xeon-2c.md):
# oneDNN copies each Concat (the dense inputs feed several), while the split form's additions fuse.
FASTEST_GRAPH = "split"


def openvino_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("openvino") is not None


def _import_openvino():
    try:
        import openvino
    except ImportError:
        raise BackendError("openvino is not installed: pip install 'derain-deploy[openvino]'") from None
    return openvino


def check_device(device: str) -> None:
    if device not in ("cpu", "auto"):
        raise BackendError(f"openvino: device {device!r} is not offered here; it runs on the CPU only")


def load_onnx(path: Path) -> onnx.ModelProto:
    try:
        return onnx.load(str(path))
    except Exception as e:  # DecodeError and friends
        raise BackendError(f"openvino cannot read {path.name}: {type(e).__name__}: {e}") from None


def per_use_biases(proto: onnx.ModelProto) -> int:
    """Give every Conv its own copy of a bias initializer that several Convs share (in place);
    returns the number of copies made.

    The unrolled stages share each bias. OpenVINO then keeps the bias Add (and the LeakyReLU
    after it) out of the convolution as a separate kernel: 108 of them, 16 % of the FP32 time at
    480x640 (713 ms; 643 ms with per-use biases). The copies cost 16 floats each."""
    graph = proto.graph
    initializers = {t.name: t for t in graph.initializer}
    uses: collections.Counter[str] = collections.Counter()
    for node in graph.node:
        if node.op_type != "Conv" or len(node.input) < 3 or node.input[2] not in initializers:
            continue
        bias = node.input[2]
        uses[bias] += 1
        if uses[bias] > 1:
            copy = onnx.TensorProto()
            copy.CopyFrom(initializers[bias])
            copy.name = f"{bias}.use{uses[bias]}"
            graph.initializer.append(copy)
            node.input[2] = copy.name
    return sum(n - 1 for n in uses.values())


def conv_precisions(compiled: object) -> set[str]:
    """The runtime precisions of the compiled model's convolutions (what really computes)."""
    found = set()
    for op in compiled.get_runtime_model().get_ops():  # type: ignore[attr-defined]
        info = op.get_rt_info()
        if "layerType" in info and info["layerType"].astype(str) == "Convolution":
            found.add(info["runtimePrecision"].astype(str).lower())
    return found


class OpenVinoBackend(BackendBase):
    """An ONNX file on OpenVINO's CPU plugin. ``precision`` None means the file's own."""

    who = "openvino"  # its output is the infer request's buffer: clipped into a copy

    def __init__(
        self,
        model: str | Path,
        device: str = "cpu",
        precision: str | None = None,
        threads: int | None = None,
    ) -> None:
        ov = _import_openvino()
        path = Path(model)
        check_device(device)
        if not path.is_file():
            raise BackendError(f"openvino: model file not found: {path}")
        if path.suffix != ".onnx":
            raise BackendError(f"openvino needs an .onnx file, got {path.name}")
        proto = load_onnx(path)
        check_io(proto, path.name)  # one NCHW 3-channel float input, one output of its shape
        metadata = {p.key: p.value for p in proto.metadata_props}
        file_precision = metadata.get("precision", "fp32")
        if file_precision not in ("fp32", "int8"):
            raise BackendError(
                f"openvino: {path.name} is a {file_precision} model; it runs fp32 and int8 files"
            )
        precision = precision or file_precision
        if precision not in PRECISIONS:
            raise BackendError(
                f"openvino: precision {precision!r} is not offered; use {', '.join(PRECISIONS)}"
            )
        wanted_file = "int8" if precision == "int8" else "fp32"
        if wanted_file != file_precision:
            raise BackendError(
                f"openvino: {precision} was asked for but {path.name} is a {file_precision} model "
                f"({'export one with derain-export --int8' if precision == 'int8' else 'give an FP32 file'})"
            )
        self.core = ov.Core()
        if precision == "bf16" and "BF16" not in self.core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
            raise BackendError("openvino: bf16 was asked for but this CPU has no native bf16 (use fp32)")
        try:
            per_use_biases(proto)
            self.model = self.core.read_model(proto.SerializeToString())
        except Exception as e:  # OpenVINO raises RuntimeError subclasses with long texts
            raise BackendError(
                f"openvino cannot load {path.name}: {str(e).strip().splitlines()[0]}"
            ) from None
        if len(self.model.inputs) != 1:
            raise BackendError(
                f"openvino: {path.name} has {len(self.model.inputs)} inputs; expected one image batch"
            )
        self.precision = precision
        self.threads = threads or usable_cores()
        self.config = {
            "INFERENCE_PRECISION_HINT": _HINT[precision],
            "PERFORMANCE_HINT": "LATENCY",
            "NUM_STREAMS": 1,
            "INFERENCE_NUM_THREADS": self.threads,
        }
        self._compiled: collections.OrderedDict[tuple[int, ...], object] = collections.OrderedDict()
        self.info = BackendInfo(
            name="openvino",
            device="cpu",
            precision=precision,
            details={
                "model": str(path),
                "threads": self.threads,
                "openvino": ov.get_version(),
                "inference_precision_hint": _HINT[precision],
                "metadata": metadata,
            },
        )

    def request(self, shape: tuple[int, ...]) -> object:
        """The infer request compiled for ``shape`` (compiled now if new; the last few are kept)."""
        if shape in self._compiled:
            self._compiled.move_to_end(shape)
            return self._compiled[shape]
        model = self.model.clone()
        try:
            model.reshape(list(shape))
            compiled = self.core.compile_model(model, "CPU", self.config)
        except Exception as e:
            raise BackendError(
                f"openvino cannot compile for shape {list(shape)}: {str(e).strip().splitlines()[0]}"
            ) from None
        value = compiled.get_property("INFERENCE_PRECISION_HINT")
        hint = value.get_type_name() if hasattr(value, "get_type_name") else str(value)
        if hint != _HINT[self.precision]:
            raise BackendError(
                f"openvino: asked for {_HINT[self.precision]} inference but it compiled {hint}"
            )
        convs = conv_precisions(compiled)
        wanted = _CONV_PRECISIONS[self.precision]
        # int8 and bf16 may leave a few convolutions in f32; none in the asked precision is a failure
        if not convs & wanted or convs - wanted - {"f32"}:
            ran = ", ".join(sorted(convs)) or "nothing"
            raise BackendError(f"openvino: {self.precision} was asked for but its convolutions run in {ran}")
        self.info.details["conv_precisions"] = sorted(convs)
        self._compiled[shape] = compiled.create_infer_request()
        if len(self._compiled) > COMPILED_SHAPES_KEPT:
            self._compiled.popitem(last=False)
        return self._compiled[shape]

    def infer(self, batch: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(batch, dtype=np.float32)
        request = self.request(tuple(x.shape))
        request.infer({0: x})  # type: ignore[attr-defined]
        return request.get_output_tensor(0).data  # type: ignore[attr-defined]

    def close(self) -> None:
        self._compiled.clear()


def open_file(model: Path, device: str, precision: str | None, **options: object) -> OpenVinoBackend:
    """``derain-run``: an ``.onnx`` file, or weights exported once into the per-user cache."""
    _import_openvino()  # both before any export
    check_device(device)
    if model.suffix == ".safetensors":
        from ..artifacts import cached_onnx

        file_precision = "int8" if precision == "int8" else "fp32"  # bf16 computes from the FP32 file
        model, _ = cached_onnx(model, file_precision, FASTEST_GRAPH)
    elif model.suffix != ".onnx":
        raise BackendError(f"openvino runs .onnx files (or .safetensors weights), not {model.name}")
    return OpenVinoBackend(model, device="cpu", precision=precision, **options)  # type: ignore[arg-type]


def open_spec(spec: BackendSpec, model: DerainNet, workdir: Path) -> OpenVinoBackend:
    """``derain-bench`` / ``derain-eval``: the spec's file, or one exported from ``model`` in ``workdir``."""
    import torch

    from ..backend_spec import exported_path

    if spec.cuda_graphs:
        raise BackendError(f"{spec.label}: the openvino backend does not offer CUDA graphs")
    precision = None if spec.file else spec.precision
    threads = torch.get_num_threads()
    return OpenVinoBackend(exported_path(spec, model, workdir), "cpu", precision, threads=threads)


def available() -> tuple[bool, str]:
    if not openvino_available():
        return False, "openvino is not installed: pip install 'derain-deploy[openvino]'"
    return True, ""


def auto_check(kind: str, precision: str | None) -> str | None:
    """Why ``auto`` cannot try OpenVINO (None: try it)."""
    if not openvino_available():
        return "openvino is not installed"
    if precision not in (None, *PRECISIONS):
        return f"openvino does not run {precision}"
    return None


DESCRIPTOR = BackendDescriptor(
    name="openvino",
    short="ov",
    precisions=PRECISIONS,
    devices=("cpu",),
    suffixes=(".safetensors", ".onnx"),
    open_file=open_file,
    open_spec=open_spec,
    available=available,
    order=30,
    runtime="openvino",
    version=lambda: dist_version("openvino"),
    graph_forms=True,
    export_kind="onnx",
    cpu_threads=True,
    bench_defaults={"cpu": ("ov:split", "ov:int8:split")},
    auto_rank={"cpu": 20},
    auto_check=auto_check,
    auto_label={"cpu": "openvino is installed (the faster CPU runtime)"},
    auto_failed={"cpu": "openvino cannot run it ({error})"},
)
