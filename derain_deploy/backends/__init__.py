"""Inference backends and :func:`open_backend`, which picks and opens one.

Model files by suffix: ``.safetensors`` weights (torch runs them directly; ONNX Runtime and
OpenVINO get an ONNX exported once into the per-user cache), ``.onnx`` (ONNX Runtime, OpenVINO),
``.engine`` (TensorRT, with its ``.engine.json`` sidecar). No model means the bundled default weights.

``auto`` picks a TensorRT engine (when one is given) > ONNX Runtime on CUDA > OpenVINO on the CPU
(when installed and the precision is one it runs) > ONNX Runtime on the CPU (the order is the
backends' descriptors' ``auto_rank``: see :mod:`.registry`), and records what it
chose and why in ``info.details["chosen_because"]``. Only ``auto`` chooses a backend: a named
backend with ``--device auto`` runs on that backend's best device (and says which); a named
backend or device that cannot run is an error, never a fallback. Every backend returned is a
:class:`~.base.FiniteBackend`: an output holding NaN or Inf is an error.
"""

from __future__ import annotations

from pathlib import Path

from ..weights import WeightsError, default_weights_path
from . import registry
from .base import Backend, BackendError, BackendInfo, FiniteBackend


class _Backends:
    """``BACKENDS``: the registered backends' names (read from the registry at each use)."""

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(registry.names())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in registry.names()

    def __len__(self) -> int:
        return len(registry.names())

    def __repr__(self) -> str:
        return repr(registry.names())


BACKENDS = _Backends()


def devices() -> tuple[str, ...]:
    """``auto`` and every device kind a backend runs on (each kind may take ``:N`` but cpu)."""
    return ("auto", *registry.device_kinds())


def resolve_model(model: str | Path | None) -> Path:
    """The model file to run: ``model`` or the bundled default weights; it must exist."""
    path = default_weights_path() if model is None else Path(model)
    if not path.is_file():
        if model is None:
            raise WeightsError(f"bundled default weights are missing at {path}; reinstall derain-deploy")
        raise BackendError(f"model file not found: {path}")
    known = registry.suffixes()
    if path.suffix not in known:
        listed = ", ".join(known[:-1]) + f" or {known[-1]}" if len(known) > 1 else "".join(known)
        raise BackendError(f"unsupported model file {path.name}: expected {listed}")
    return path


def open_backend(
    name: str = "auto",
    model: str | Path | None = None,
    device: str = "auto",
    precision: str | None = None,
    **options: object,
) -> Backend:
    """Open backend ``name`` (auto, or a registered one: torch, onnxruntime, openvino, tensorrt)
    on ``model`` and ``device``.

    ``precision`` None means the model file's own (fp32 for weights). Extra ``options`` go to the
    backend class (e.g. ``threads`` for onnxruntime, ``channels_last`` for torch)."""
    path = resolve_model(model)
    if name == "auto":
        return FiniteBackend(_open_auto(path, device, precision, **options), model=str(path))
    descriptor = registry.find(name) if name in registry.names() else None
    if descriptor is None:
        raise registry.UnknownBackendError(f"unknown backend {name!r}; expected auto, {', '.join(BACKENDS)}")
    kinds = registry.device_kinds()
    if device not in devices() and not device.startswith(tuple(f"{k}:" for k in kinds if k != "cpu")):
        raise BackendError(f"unknown device {device!r}; expected auto, cpu, cuda[:N] or tensorrt[:N]")
    why = f"--backend {name} was asked for"
    if device != "auto":
        backend = descriptor.open_file(path, device, precision, **options)
    else:  # the named backend's best device, never another backend
        device, reason = descriptor.best_device()
        reason = reason or f"{name} runs on the CPU only"
        try:
            backend = descriptor.open_file(path, device, precision, **options)
        except BackendError as e:
            if not descriptor.retry_on_cpu or device == "cpu":
                raise
            reason += f" but did not start ({e}); the CPU"
            backend = descriptor.open_file(path, "cpu", precision, **options)
        why += f"; --device auto: {reason}"
    backend.info.details.setdefault("chosen_because", why)
    return FiniteBackend(backend, model=str(path))


def _open_auto(path: Path, device: str, precision: str | None, **options: object) -> Backend:
    """A file only one backend opens (a TensorRT engine) > the GPU candidates (ONNX Runtime
    CUDA) > the CPU candidates (OpenVINO, then ONNX Runtime), with the reason recorded. The
    candidates and their order come from the descriptors' ``auto_rank``."""
    owner = registry.sole_owner(path.suffix)
    if owner is not None:
        backend = owner.open_file(path, device, precision, **options)
        return _because(backend, f"a {owner.auto_file} was given")
    if device == "cpu":
        return _open_cpu_auto(path, precision, "--device cpu was asked for; ", **options)
    if device != "auto":  # cuda, cuda:N or tensorrt: must run there
        kind = device.partition(":")[0]
        candidates = [d for d in registry.auto_candidates("cuda") if kind in d.devices]
        if not candidates:
            raise BackendError(f"auto: no backend runs on --device {device}")
        backend = candidates[0].open_file(path, device, precision, **options)
        return _because(backend, f"--device {device} was asked for")
    files = " or ".join(d.auto_file for d in registry.descriptors() if d.auto_file)
    why = f"no {files} given; " if files else ""
    for candidate in registry.auto_candidates("cuda"):
        backend, reason = _try(candidate, "cuda", path, precision, options)
        if backend is not None:
            return _because(backend, why + reason)
        why += reason + "; "
    return _open_cpu_auto(path, precision, why, **options)


def _try(
    candidate: registry.BackendDescriptor, kind: str, path: Path, precision: str | None, options: dict
) -> tuple[Backend | None, str]:
    """``candidate`` opened on ``kind`` and the reason recorded, or None and why it did not run."""
    reason = candidate.auto_check(kind, precision)
    if reason is not None:
        return None, reason
    try:
        backend = candidate.open_file(path, kind, precision, **options)
    except BackendError as e:
        failed = candidate.auto_failed.get(kind, f"{candidate.name} did not start ({{error}})")
        return None, failed.format(error=e)
    return backend, candidate.auto_label.get(kind, f"{candidate.name} runs")


def _open_cpu_auto(path: Path, precision: str | None, why: str, **options: object) -> Backend:
    """The CPU candidates best first (OpenVINO where it is installed and runs this precision:
    the faster CPU runtime in benchmarks/results); the last one (ONNX Runtime) runs whatever the
    others said, with their reasons appended to ``why``."""
    *first, last = registry.auto_candidates("cpu")
    reasons = []
    for candidate in first:
        backend, reason = _try(candidate, "cpu", path, precision, options)
        if backend is not None:
            return _because(backend, why + reason)
        reasons.append(reason)
    label = last.auto_label.get("cpu", f"{last.name} on the CPU")
    backend = last.open_file(path, "cpu", precision, **options)
    return _because(backend, why + label + (f": {'; '.join(reasons)}" if reasons else ""))


def _because(backend: Backend, why: str) -> Backend:
    backend.info.details["chosen_because"] = f"auto: {why}"
    return backend


__all__ = ["BACKENDS", "Backend", "BackendError", "BackendInfo", "open_backend", "registry", "resolve_model"]
