"""ONNX Runtime backend: CPU, CUDA or TensorRT execution providers, checked after creation.

onnxruntime-gpu lists CUDA and TensorRT providers even where they cannot load and then quietly
runs on the CPU; this backend asks for providers explicitly and compares what was asked with
``session.get_providers()``, stopping with a :class:`BackendError` on any difference.

FP32 on CUDA is FP32: the CUDA provider gets ``use_tf32=0`` (its default is on); precision
``tf32`` asks for TF32 explicitly. The TensorRT provider has no such option (onnxruntime issue
26029): TensorRT's TF32 default holds unless ``NVIDIA_TF32_OVERRIDE=0`` is in the environment
(process-wide, read once), so an FP32 file there reports ``tf32``, and ``fp32`` asked for without
that variable is refused. The TensorRT provider keeps its engines and timing cache
under the artifact cache (``$DERAIN_DEPLOY_CACHE/ort-tensorrt/<GPU>.sm<CC>.trt<version>``: one
folder per GPU and TensorRT version) and gets an explicit profile for dynamic inputs (the
video profile of derain_deploy/build/profiles.py), so it builds once instead of at every new shape.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..cpu import usable_cores
from .base import BackendBase, BackendError, BackendInfo
from .onnx_check import check_batch, check_io
from .registry import BackendDescriptor, dist_version

if TYPE_CHECKING:
    from ..backend_spec import BackendSpec
    from ..model import DerainNet

# device name -> the provider that must run first
PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}
_NUMPY_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}


def _import_ort():
    try:
        import onnxruntime
    except ImportError:
        raise BackendError(
            "onnxruntime is not installed: pip install 'derain-deploy[cpu]' (or '[gpu]' for CUDA)"
        ) from None
    return onnxruntime


TENSORRT_DISTRIBUTIONS = ("tensorrt", "tensorrt-cu12", "tensorrt-cu13", "tensorrt-cu12-libs", "tensorrt-libs")


def tensorrt_dist_version() -> str | None:
    """The installed TensorRT's version from package metadata (no import)."""
    for name in TENSORRT_DISTRIBUTIONS:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def tensorrt_cache_folder(index: int) -> Path:
    """Where ONNX Runtime's TensorRT provider keeps engines and timing caches for GPU ``index``."""
    from ..artifacts import user_cache_dir

    gpu, capability = "gpu", "unknown"
    try:
        import torch

        if torch.cuda.is_available():
            major, minor = torch.cuda.get_device_capability(index)
            gpu, capability = torch.cuda.get_device_name(index), f"{major}{minor}"
    except ImportError:
        pass
    name = f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', gpu).strip('-')}.sm{capability}.trt{tensorrt_dist_version()}"
    return user_cache_dir() / "ort-tensorrt" / (name + (".notf32" if tf32_overridden_off() else ".tf32"))


def tf32_overridden_off() -> bool:
    """NVIDIA_TF32_OVERRIDE=0: the only way to keep TF32 out of ONNX Runtime's TensorRT provider."""
    return os.environ.get("NVIDIA_TF32_OVERRIDE") == "0"


def _shape_option(input_name: str, shape: tuple[int, ...]) -> str:
    return f"{input_name}:" + "x".join(str(d) for d in shape)


def tensorrt_options(index: int, precision: str, input_name: str, dynamic: bool) -> dict[str, object]:
    """TensorRT provider options: engine and timing caches, the precision the file asks for, and
    (for a dynamic input) one explicit profile."""
    folder = tensorrt_cache_folder(index)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        reason = e.strerror or e
        raise BackendError(f"onnxruntime: cannot create the TensorRT cache {folder}: {reason}") from None
    options: dict[str, object] = {
        "device_id": index,
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": str(folder),
        "trt_timing_cache_enable": True,
        "trt_timing_cache_path": str(folder),
        "trt_fp16_enable": precision == "fp16",
        "trt_int8_enable": precision == "int8",  # Q/DQ in the file: no calibration table
    }
    if dynamic:
        from ..build.profiles import DEFAULT_MAX, DEFAULT_MIN, DEFAULT_OPT

        options["trt_profile_min_shapes"] = _shape_option(input_name, DEFAULT_MIN)
        options["trt_profile_opt_shapes"] = _shape_option(input_name, DEFAULT_OPT)
        options["trt_profile_max_shapes"] = _shape_option(input_name, DEFAULT_MAX)
    return options


def provider_list(
    device: str, precision: str = "fp32", input_name: str = "rainy", dynamic: bool = True
) -> tuple[str, list[object]]:
    """The provider that must run and the explicit provider list for ``device``.

    ``device`` is cpu, cuda, cuda:N, tensorrt or tensorrt:N. CPU is appended after a GPU
    provider only for the nodes the GPU provider does not take; the session check still
    demands the GPU provider first. ``precision`` tf32 allows TF32 on CUDA (off otherwise)."""
    kind, _, index = device.partition(":")
    if kind not in PROVIDERS:
        raise BackendError(f"onnxruntime: unknown device {device!r}; expected cpu, cuda[:N] or tensorrt[:N]")
    if kind == "cpu":
        if index:
            raise BackendError(f"onnxruntime: device {device!r} is not valid; the CPU has no index")
        return PROVIDERS["cpu"], ["CPUExecutionProvider"]
    if index and not index.isdigit():
        raise BackendError(f"onnxruntime: device {device!r} has a bad GPU index")
    gpu = int(index or 0)
    cuda = ("CUDAExecutionProvider", {"device_id": gpu, "use_tf32": int(precision == "tf32")})
    if kind == "cuda":
        return PROVIDERS["cuda"], [cuda, "CPUExecutionProvider"]
    trt = ("TensorrtExecutionProvider", tensorrt_options(gpu, precision, input_name, dynamic))
    return PROVIDERS["tensorrt"], [trt, cuda, "CPUExecutionProvider"]


def check_providers(wanted: str, available: list[str], running: list[str]) -> None:
    """Stop unless ``wanted`` is among the available providers and is the one running first."""
    if wanted not in available:
        raise BackendError(
            f"onnxruntime: {wanted} was asked for but this onnxruntime offers only {', '.join(available)}"
            + (" (install onnxruntime-gpu instead of onnxruntime)" if wanted != PROVIDERS["cpu"] else "")
        )
    if not running or running[0] != wanted:
        raise BackendError(
            f"onnxruntime: {wanted} was asked for but the session runs on {', '.join(running) or 'nothing'} "
            "(the provider failed to load: check the CUDA/cuDNN/TensorRT libraries)"
        )


def check_device(device: str) -> None:
    """Fail now if this onnxruntime cannot offer ``device``'s provider at all."""
    kind = device.partition(":")[0]
    wanted = PROVIDERS.get(kind)
    if wanted is None:
        provider_list(device)  # raises the unknown-device error
    check_providers(str(wanted), _import_ort().get_available_providers(), [str(wanted)])


def _file_facts(path: Path) -> tuple[str | None, str, bool]:
    """(metadata precision, input name, whether the input has a dynamic dimension) of an ONNX
    file, read without ONNX Runtime (the provider options depend on them)."""
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # protobuf's DecodeError and friends
        raise BackendError(f"onnxruntime cannot load {path.name}: {type(e).__name__}: {e}") from None
    check_io(proto, path.name)  # one NCHW 3-channel float input, one output of its shape
    meta = {p.key: p.value for p in proto.metadata_props}
    first = proto.graph.input[0] if proto.graph.input else None
    dims = first.type.tensor_type.shape.dim if first is not None else []
    dynamic = not dims or any(not (d.HasField("dim_value") and d.dim_value > 0) for d in dims)
    return meta.get("precision"), first.name if first is not None else "input", dynamic


def model_precision(metadata: dict[str, str], input_type: str) -> str:
    """The precision an ONNX file computes in: its metadata says, else its input type."""
    precision = metadata.get("precision")
    if precision:
        return precision
    return "fp16" if input_type == "tensor(float16)" else "fp32"


class OrtBackend(BackendBase):
    """An ONNX file on ONNX Runtime. ``precision`` (if given) must match the file's own."""

    who = "onnxruntime"
    fresh_output = True  # session.run returns new arrays

    def __init__(
        self,
        model: str | Path,
        device: str = "cpu",
        precision: str | None = None,
        threads: int | None = None,
    ) -> None:
        ort = _import_ort()
        path = Path(model)
        if not path.is_file():
            raise BackendError(f"onnxruntime: model file not found: {path}")
        if path.suffix != ".onnx":
            raise BackendError(f"onnxruntime needs an .onnx file, got {path.name}")
        if precision == "tf32" and not device.startswith(("cuda", "tensorrt")):
            raise BackendError(f"onnxruntime: tf32 needs a CUDA GPU; device {device!r} was asked for")
        check_device(device)  # fail early if the provider is not installed
        meta_precision, input_name, dynamic = _file_facts(path)
        run_precision = precision or meta_precision or "fp32"
        if device.startswith("tensorrt") and run_precision == "fp32" and not tf32_overridden_off():
            if precision == "fp32":
                raise BackendError(
                    "onnxruntime: fp32 on the TensorRT provider needs NVIDIA_TF32_OVERRIDE=0 in the "
                    "environment (it has no TF32 switch); or ask for --precision tf32"
                )
            run_precision = "tf32"  # what TensorRT runs an FP32 file in by default
        wanted, providers = provider_list(device, run_precision, input_name, dynamic)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or usable_cores()
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3  # provider load failures are reported by the check below
        try:
            session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
        except Exception as e:  # ORT raises its own exception classes (Fail, InvalidGraph, ...)
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise BackendError(f"onnxruntime cannot load {path.name}: {first}") from None
        check_providers(wanted, ort.get_available_providers(), session.get_providers())
        inputs, outputs = session.get_inputs(), session.get_outputs()
        if len(inputs) != 1:
            raise BackendError(f"onnxruntime: {path.name} has {len(inputs)} inputs; expected one image batch")
        self.session = session
        self.input_name = inputs[0].name
        self.output_name = outputs[0].name
        if inputs[0].type not in _NUMPY_TYPES:
            raise BackendError(f"onnxruntime: {path.name} takes {inputs[0].type}; expected float or float16")
        self.input_dtype = _NUMPY_TYPES[inputs[0].type]
        metadata = dict(session.get_modelmeta().custom_metadata_map)
        file_precision = model_precision(metadata, inputs[0].type)
        if precision and precision != file_precision and (precision, file_precision) != ("tf32", "fp32"):
            raise BackendError(
                f"onnxruntime: {precision} was asked for but {path.name} is a {file_precision} model "
                f"(export one with: derain-export --precision {precision})"
            )
        self.info = BackendInfo(
            name="onnxruntime",
            device=device,
            precision="tf32" if run_precision == "tf32" else file_precision,
            details={
                "model": str(path),
                "providers": session.get_providers(),
                "threads": options.intra_op_num_threads,
                "onnxruntime": ort.__version__,
                "input_shape": list(inputs[0].shape),
                "metadata": metadata,
            },
        )

    def infer(self, batch: np.ndarray) -> np.ndarray:
        check_batch(batch, self.info.details["input_shape"], Path(str(self.info.details["model"])).name)
        x = np.ascontiguousarray(batch, dtype=self.input_dtype)
        (y,) = self.session.run([self.output_name], {self.input_name: x})
        return y.astype(np.float32, copy=False)

    def close(self) -> None:
        self.session = None


def open_file(model: Path, device: str, precision: str | None, **options: object) -> OrtBackend:
    """``derain-run``: an ``.onnx`` file, or weights exported once into the per-user cache."""
    check_device("cpu" if device == "auto" else device)  # before any export
    if model.suffix == ".safetensors":
        from ..artifacts import cached_onnx

        model, _ = cached_onnx(model, "fp32" if precision in (None, "tf32") else precision)
    elif model.suffix != ".onnx":
        raise BackendError(f"onnxruntime runs .onnx files (or .safetensors weights), not {model.name}")
    return OrtBackend(model, device="cpu" if device == "auto" else device, precision=precision, **options)  # type: ignore[arg-type]


def open_spec(spec: BackendSpec, model: DerainNet, workdir: Path) -> OrtBackend:
    """``derain-bench`` / ``derain-eval``: the spec's file, or one exported from ``model`` in ``workdir``."""
    import torch

    from ..backend_spec import exported_path

    if spec.cuda_graphs:
        raise BackendError(f"{spec.label}: the onnxruntime backend does not offer CUDA graphs here")
    precision = None if spec.file else spec.precision
    threads = torch.get_num_threads()  # the bench sets it; the same count as torch and the probe
    return OrtBackend(exported_path(spec, model, workdir), spec.device, precision, threads=threads)


def available() -> tuple[bool, str]:
    try:
        _import_ort()
    except BackendError as e:
        return False, str(e)
    return True, ""


def best_device() -> tuple[str, str]:
    if "CUDAExecutionProvider" in _import_ort().get_available_providers():
        return "cuda", "onnxruntime's CUDA provider is present"
    return "cpu", "this onnxruntime has no CUDA provider"


def auto_check(kind: str, precision: str | None) -> str | None:
    """Why ``auto`` cannot try ONNX Runtime on ``kind`` (None: try it)."""
    if kind != "cuda":
        return None
    try:
        providers = _import_ort().get_available_providers()
    except BackendError:  # not installed: OpenVINO may still run it
        return "onnxruntime is not installed"
    if "CUDAExecutionProvider" not in providers:
        return "this onnxruntime has no CUDA provider"
    return None


DESCRIPTOR = BackendDescriptor(
    name="onnxruntime",
    short="ort",
    precisions=("fp32", "tf32", "fp16", "int8"),
    devices=("cpu", "cuda", "tensorrt"),
    suffixes=(".safetensors", ".onnx"),
    open_file=open_file,
    open_spec=open_spec,
    available=available,
    order=20,
    best_device=best_device,
    retry_on_cpu=True,
    version=lambda: dist_version("onnxruntime", "onnxruntime-gpu"),
    graph_forms=True,
    export_kind="onnx",
    cpu_threads=True,
    bench_defaults={
        "cpu": ("ort:concat", "ort:split", "ort:int8:split"),
        "cuda": ("ort@cuda", "ort:fp16@cuda"),
    },
    auto_rank={"cuda": 20, "cpu": 10},
    auto_check=auto_check,
    auto_label={"cuda": "onnxruntime's CUDA provider runs", "cpu": "onnxruntime on the CPU"},
    auto_failed={"cuda": "onnxruntime's CUDA provider did not start ({error})"},
)
