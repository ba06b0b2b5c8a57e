"""Inference backends and :func:`open_backend`, which picks and opens one.

Model files by suffix: ``.safetensors`` weights (torch runs them directly; ONNX Runtime and
OpenVINO get an ONNX exported once into the per-user cache), ``.onnx`` (ONNX Runtime, OpenVINO),
``.engine`` (TensorRT, with its ``.engine.json`` sidecar). No model means the bundled default weights.

``auto`` picks a TensorRT engine (when one is given) > ONNX Runtime on CUDA > OpenVINO on the CPU
(when installed and the precision is one it runs) > ONNX Runtime on the CPU, and records what it
chose and why in ``info.details["chosen_because"]``. Only ``auto`` chooses a backend: a named
backend with ``--device auto`` runs on that backend's best device (and says which); a named
backend or device that cannot run is an error, never a fallback. Every backend returned is a
:class:`~.base.FiniteBackend`: an output holding NaN or Inf is an error.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..weights import WeightsError, default_weights_path
from .base import Backend, BackendError, BackendInfo, FiniteBackend


def _open_torch(model: Path, device: str, precision: str | None, **options: object) -> Backend:
    from .torch_backend import TorchBackend

    if model.suffix != ".safetensors":
        raise BackendError(
            f"the torch backend runs .safetensors weights, not {model.suffix or model.name} files"
        )
    return TorchBackend(model, device=device, precision=precision or "fp32", **options)  # type: ignore[arg-type]


def _open_ort(model: Path, device: str, precision: str | None, **options: object) -> Backend:
    from .ort_backend import OrtBackend, check_device

    check_device("cpu" if device == "auto" else device)  # before any export
    if model.suffix == ".safetensors":
        from .onnx_cache import cached_onnx

        model, _ = cached_onnx(model, "fp32" if precision in (None, "tf32") else precision)
    elif model.suffix != ".onnx":
        raise BackendError(f"onnxruntime runs .onnx files (or .safetensors weights), not {model.name}")
    return OrtBackend(model, device="cpu" if device == "auto" else device, precision=precision, **options)  # type: ignore[arg-type]


def _open_openvino(model: Path, device: str, precision: str | None, **options: object) -> Backend:
    from .openvino_backend import FASTEST_GRAPH, OpenVinoBackend, _import_openvino, check_device

    _import_openvino()  # both before any export
    check_device(device)
    if model.suffix == ".safetensors":
        from .onnx_cache import cached_onnx

        file_precision = "int8" if precision == "int8" else "fp32"  # bf16 computes from the FP32 file
        model, _ = cached_onnx(model, file_precision, FASTEST_GRAPH)
    elif model.suffix != ".onnx":
        raise BackendError(f"openvino runs .onnx files (or .safetensors weights), not {model.name}")
    return OpenVinoBackend(model, device="cpu", precision=precision, **options)  # type: ignore[arg-type]


def _open_trt(model: Path, device: str, precision: str | None, **options: object) -> Backend:
    from .trt_backend import TrtBackend

    if model.suffix != ".engine":
        raise BackendError(
            f"the tensorrt backend runs .engine files built by derain-export, not {model.name}"
        )
    return TrtBackend(model, device="cuda" if device == "auto" else device, precision=precision, **options)  # type: ignore[arg-type]


BACKENDS: dict[str, Callable[..., Backend]] = {
    "torch": _open_torch,
    "onnxruntime": _open_ort,
    "openvino": _open_openvino,
    "tensorrt": _open_trt,
}
DEVICES = ("auto", "cpu", "cuda", "tensorrt")  # plus cuda:N / tensorrt:N


def resolve_model(model: str | Path | None) -> Path:
    """The model file to run: ``model`` or the bundled default weights; it must exist."""
    path = default_weights_path() if model is None else Path(model)
    if not path.is_file():
        if model is None:
            raise WeightsError(f"bundled default weights are missing at {path}; reinstall derain-deploy")
        raise BackendError(f"model file not found: {path}")
    if path.suffix not in (".safetensors", ".onnx", ".engine"):
        raise BackendError(f"unsupported model file {path.name}: expected .safetensors, .onnx or .engine")
    return path


def open_backend(
    name: str = "auto",
    model: str | Path | None = None,
    device: str = "auto",
    precision: str | None = None,
    **options: object,
) -> Backend:
    """Open backend ``name`` (auto, torch, onnxruntime, openvino, tensorrt) on ``model`` and ``device``.

    ``precision`` None means the model file's own (fp32 for weights). Extra ``options`` go to the
    backend class (e.g. ``threads`` for onnxruntime, ``channels_last`` for torch)."""
    path = resolve_model(model)
    if name == "auto":
        return FiniteBackend(_open_auto(path, device, precision, **options), model=str(path))
    if name not in BACKENDS:
        raise BackendError(f"unknown backend {name!r}; expected auto, {', '.join(BACKENDS)}")
    if device not in DEVICES and not device.startswith(("cuda:", "tensorrt:")):
        raise BackendError(f"unknown device {device!r}; expected auto, cpu, cuda[:N] or tensorrt[:N]")
    why = f"--backend {name} was asked for"
    if device != "auto":
        backend = BACKENDS[name](path, device, precision, **options)
    else:  # the named backend's best device, never another backend
        device, reason = _best_device(name)
        try:
            backend = BACKENDS[name](path, device, precision, **options)
        except BackendError as e:
            if name != "onnxruntime" or device == "cpu":
                raise
            reason += f" but did not start ({e}); the CPU"
            backend = _open_ort(path, "cpu", precision, **options)
        why += f"; --device auto: {reason}"
    backend.info.details.setdefault("chosen_because", why)
    return FiniteBackend(backend, model=str(path))


def _best_device(name: str) -> tuple[str, str]:
    """The device a named backend runs on for ``--device auto``, and why."""
    if name == "onnxruntime":
        from .ort_backend import _import_ort

        if "CUDAExecutionProvider" in _import_ort().get_available_providers():
            return "cuda", "onnxruntime's CUDA provider is present"
        return "cpu", "this onnxruntime has no CUDA provider"
    if name == "torch":
        import torch

        if torch.cuda.is_available():
            return "cuda", "torch sees a CUDA GPU"
        return "cpu", "torch sees no CUDA GPU"
    if name == "tensorrt":
        return "cuda", "TensorRT runs on CUDA only"
    return "cpu", f"{name} runs on the CPU only"


def _open_auto(path: Path, device: str, precision: str | None, **options: object) -> Backend:
    """TensorRT engine > ONNX Runtime CUDA > ONNX Runtime CPU, with the reason recorded."""
    if path.suffix == ".engine":
        backend = _open_trt(path, device, precision, **options)
        return _because(backend, "a TensorRT engine was given")
    if device == "cpu":
        return _open_cpu_auto(path, precision, "--device cpu was asked for; ", **options)
    if device != "auto":  # cuda, cuda:N or tensorrt: must run there
        return _because(_open_ort(path, device, precision, **options), f"--device {device} was asked for")
    return _open_ort_auto(path, precision, "no TensorRT engine given; ", **options)


def _open_ort_auto(path: Path, precision: str | None, why: str = "", **options: object) -> Backend:
    """ONNX Runtime on CUDA where its provider is present and starts, else the CPU (saying why)."""
    from .ort_backend import _import_ort

    try:
        providers = _import_ort().get_available_providers()
    except BackendError:  # not installed: OpenVINO may still run it
        return _open_cpu_auto(path, precision, why + "onnxruntime is not installed; ", **options)
    if "CUDAExecutionProvider" not in providers:
        return _open_cpu_auto(path, precision, why + "this onnxruntime has no CUDA provider; ", **options)
    try:
        backend = _open_ort(path, "cuda", precision, **options)
    except BackendError as e:
        return _open_cpu_auto(
            path, precision, why + f"onnxruntime's CUDA provider did not start ({e}); ", **options
        )
    return _because(backend, why + "onnxruntime's CUDA provider runs")


def _open_cpu_auto(path: Path, precision: str | None, why: str, **options: object) -> Backend:
    """OpenVINO where it is installed and runs this precision (the faster CPU runtime in
    benchmarks/results), else ONNX Runtime on the CPU; ``why`` gets the reason appended."""
    from .openvino_backend import PRECISIONS, openvino_available

    if not openvino_available():
        reason = "openvino is not installed"
    elif precision not in (None, *PRECISIONS):
        reason = f"openvino does not run {precision}"
    else:
        try:
            backend = _open_openvino(path, "cpu", precision, **options)
        except BackendError as e:
            reason = f"openvino cannot run it ({e})"
        else:
            return _because(backend, why + "openvino is installed (the faster CPU runtime)")
    return _because(_open_ort(path, "cpu", precision, **options), why + f"onnxruntime on the CPU: {reason}")


def _because(backend: Backend, why: str) -> Backend:
    backend.info.details["chosen_because"] = f"auto: {why}"
    return backend


__all__ = ["BACKENDS", "Backend", "BackendError", "BackendInfo", "open_backend", "resolve_model"]
