"""ONNX Runtime backend: CPU, CUDA or TensorRT execution providers, checked after creation.

onnxruntime-gpu lists CUDA and TensorRT providers even where they cannot load and then quietly
runs on the CPU; this backend asks for providers explicitly and compares what was asked with
``session.get_providers()``, stopping with a :class:`BackendError` on any difference.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .base import BackendError, BackendInfo

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


def cpu_cores() -> int:
    """Cores this process may use (the affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def provider_list(device: str) -> tuple[str, list[object]]:
    """The provider that must run and the explicit provider list for ``device``.

    ``device`` is cpu, cuda, cuda:N, tensorrt or tensorrt:N. CPU is appended after a GPU
    provider only for the nodes the GPU provider does not take; the session check still
    demands the GPU provider first."""
    kind, _, index = device.partition(":")
    if kind not in PROVIDERS:
        raise BackendError(f"onnxruntime: unknown device {device!r}; expected cpu, cuda[:N] or tensorrt[:N]")
    if kind == "cpu":
        if index:
            raise BackendError(f"onnxruntime: device {device!r} is not valid; the CPU has no index")
        return PROVIDERS["cpu"], ["CPUExecutionProvider"]
    if index and not index.isdigit():
        raise BackendError(f"onnxruntime: device {device!r} has a bad GPU index")
    options = {"device_id": int(index or 0)}
    cuda = ("CUDAExecutionProvider", options)
    if kind == "cuda":
        return PROVIDERS["cuda"], [cuda, "CPUExecutionProvider"]
    return PROVIDERS["tensorrt"], [("TensorrtExecutionProvider", options), cuda, "CPUExecutionProvider"]


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
    wanted, _ = provider_list(device)
    check_providers(wanted, _import_ort().get_available_providers(), [wanted])


def model_precision(metadata: dict[str, str], input_type: str) -> str:
    """The precision an ONNX file computes in: its metadata says, else its input type."""
    precision = metadata.get("precision")
    if precision:
        return precision
    return "fp16" if input_type == "tensor(float16)" else "fp32"


class OrtBackend:
    """An ONNX file on ONNX Runtime. ``precision`` (if given) must match the file's own."""

    def __init__(
        self,
        model: str | Path,
        device: str = "cpu",
        precision: str | None = None,
        threads: int | None = None,
        optimized_model_path: str | Path | None = None,
    ) -> None:
        ort = _import_ort()
        path = Path(model)
        if not path.is_file():
            raise BackendError(f"onnxruntime: model file not found: {path}")
        if path.suffix != ".onnx":
            raise BackendError(f"onnxruntime needs an .onnx file, got {path.name}")
        wanted, providers = provider_list(device)
        check_providers(wanted, ort.get_available_providers(), [wanted])  # fail early if not installed
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or cpu_cores()
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3  # provider load failures are reported by the check below
        if optimized_model_path:
            options.optimized_model_filepath = str(optimized_model_path)
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
        if precision and precision != file_precision:
            raise BackendError(
                f"onnxruntime: {precision} was asked for but {path.name} is a {file_precision} model "
                f"(export one with: derain-export --precision {precision})"
            )
        self.info = BackendInfo(
            name="onnxruntime",
            device=device,
            precision=file_precision,
            details={
                "model": str(path),
                "providers": session.get_providers(),
                "threads": options.intra_op_num_threads,
                "onnxruntime": ort.__version__,
                "input_shape": list(inputs[0].shape),
                "metadata": metadata,
            },
        )

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        if batch.ndim != 4 or batch.shape[1] != 3:
            raise BackendError(f"onnxruntime: expected an Nx3xHxW batch, got shape {batch.shape}")
        x = np.ascontiguousarray(batch, dtype=self.input_dtype)
        (y,) = self.session.run([self.output_name], {self.input_name: x})
        return np.clip(y.astype(np.float32, copy=False), 0.0, 1.0)

    def close(self) -> None:
        self.session = None
