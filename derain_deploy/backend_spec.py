"""Backend specs: the short strings ``derain-bench`` and ``derain-eval`` take, and how to open them.

Syntax: ``BACKEND[:OPTION...][@DEVICE]`` or ``BACKEND=FILE[@DEVICE]``, for example::

    torch                 eager PyTorch, FP32, NCHW (the reference every speed-up is measured against)
    torch:cl              eager PyTorch, channels_last memory format
    torch:bf16:cl         BF16 autocast, channels_last
    ort:split             ONNX Runtime, FP32, the concat-free ("split") graph
    ort:int8:concat       ONNX Runtime, INT8 QDQ, the paper's graph
    ort:fp16@cuda         ONNX Runtime on CUDA, FP16
    ov:int8:split         OpenVINO (CPU), INT8 QDQ, the split graph
    ov:bf16:split         OpenVINO computing the FP32 file in bf16 (AMX / AVX-512 BF16 CPUs)
    trt:fp16:graphs@cuda  TensorRT FP16 with CUDA graphs
    ort=model.onnx        ONNX Runtime on a file exported before (its metadata gives the precision)

Options: a precision (fp32, fp16, bf16, int8), a graph form (concat, split), ``cl`` /
``channels_last``, ``graphs`` / ``cuda-graphs``. Backends needing an ONNX file get one exported
from the model into a work folder (once per graph form and precision).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .backends import registry
from .backends.base import Backend, BackendError, FiniteBackend
from .model import DerainNet

if TYPE_CHECKING:
    from .artifacts import ArtifactCache

GRAPHS = ("concat", "split")
FILE_PRECISION = {"bf16": "fp32", "tf32": "fp32"}  # precisions a backend computes from the FP32 file
# Backend names, precisions, devices and options come from the registry (each backend's descriptor).


class SpecError(ValueError):
    """A backend spec that cannot be parsed or combined; the message is one line."""


@dataclass(frozen=True)
class BackendSpec:
    """One backend configuration to run (a row in the bench, a column in the eval)."""

    backend: str  # a registered backend's name: torch, onnxruntime, openvino, tensorrt
    precision: str = "fp32"
    device: str = "cpu"
    graph: str = "concat"  # ONNX graph form (onnxruntime, openvino, tensorrt): the paper's concat or split
    channels_last: bool = False  # torch only
    cuda_graphs: bool = False  # tensorrt (and backends that offer it) on CUDA only
    file: str | None = None  # an exported model file to use instead of exporting one

    @property
    def descriptor(self) -> registry.BackendDescriptor:
        return registry.get(self.backend)

    @property
    def label(self) -> str:
        found = registry.find(self.backend)
        short = found.short if found else self.backend
        if self.file:
            return f"{short}={Path(self.file).name}" + (f"@{self.device}" if self.device != "cpu" else "")
        parts = [short, self.precision]
        if found is None or found.graph_forms:
            parts.append(self.graph)
        if self.channels_last:
            parts.append("cl")
        if self.cuda_graphs:
            parts.append("graphs")
        return ":".join(parts) + (f"@{self.device}" if self.device != "cpu" else "")

    @property
    def is_cuda(self) -> bool:
        return self.device.startswith(("cuda", "tensorrt"))

    def with_device(self, device: str) -> BackendSpec:
        return dataclasses.replace(self, device=device)


EAGER_FP32 = BackendSpec("torch", "fp32")


def parse_spec(text: str, default_device: str = "cpu") -> BackendSpec:
    """Parse ``BACKEND[:OPTION...][@DEVICE]`` or ``BACKEND=FILE[@DEVICE]`` (see the module doc)."""
    body, _, device = text.strip().partition("@")
    device = device or default_device
    if "=" in body:
        name, _, file = body.partition("=")
        backend = _backend_name(name, text)
        if not file:
            raise SpecError(f"backend spec {text!r}: no file after '='")
        return _checked(BackendSpec(backend, device=device, file=file), text)
    name, *options = body.split(":")
    fields: dict[str, object] = {"backend": _backend_name(name, text), "device": device}
    for opt in (o.strip().lower() for o in options):
        if opt in registry.precisions():
            fields["precision"] = opt
        elif opt in GRAPHS:
            fields["graph"] = opt
        elif opt in ("cl", "channels_last", "channels-last"):
            fields["channels_last"] = True
        elif opt in ("graphs", "cuda-graphs", "cuda_graphs"):
            fields["cuda_graphs"] = True
        else:
            raise SpecError(
                f"backend spec {text!r}: unknown option {opt!r} (expected a precision fp32/fp16/bf16/int8, "
                "a graph concat/split, cl or graphs)"
            )
    return _checked(BackendSpec(**fields), text)  # type: ignore[arg-type]


def _backend_name(name: str, text: str) -> str:
    found = registry.find(name)
    if found is None:
        raise SpecError(f"unknown backend {name.strip()!r} in {text!r}; expected {registry.expected()}")
    return found.name


def _checked(spec: BackendSpec, text: str) -> BackendSpec:
    d = registry.get(spec.backend)
    if spec.precision not in d.precisions:
        raise SpecError(
            f"backend spec {text!r}: {spec.backend} offers {', '.join(d.precisions)}, not {spec.precision}"
        )
    if spec.channels_last and not d.channels_last:
        offered = ", ".join(o.short for o in registry.descriptors() if o.channels_last)
        raise SpecError(f"backend spec {text!r}: channels_last applies to {offered} only")
    if spec.graph != "concat" and not d.graph_forms:
        offered = ", ".join(o.short for o in registry.descriptors() if o.graph_forms)
        raise SpecError(f"backend spec {text!r}: the graph form applies to exported models ({offered}) only")
    if spec.precision == "tf32" and not spec.is_cuda:
        raise SpecError(f"backend spec {text!r}: tf32 needs a CUDA device (add @cuda)")
    if spec.cuda_graphs and not spec.is_cuda:
        raise SpecError(f"backend spec {text!r}: CUDA graphs need a CUDA device (add @cuda)")
    if d.gpu_only and not spec.is_cuda:
        spec = spec.with_device("cuda")  # e.g. TensorRT runs on a GPU only; the device says so in reports
    if spec.device.partition(":")[0] not in d.devices:
        where = "the CPU" if d.devices == ("cpu",) else ", ".join(d.devices)
        raise SpecError(f"backend spec {text!r}: {spec.backend} runs on {where} only")
    return spec


def runnable_here(texts: list[str] | tuple[str, ...], note: Callable[[str], None]) -> list[str]:
    """``texts`` (a default set) without the specs that cannot run well here: those whose optional
    runtime is not installed, and CPU bf16 where the CPU would emulate it (torch, about 10x slower
    than FP32) or refuse it (OpenVINO). A spec the user names keeps its own error. ``note`` gets
    one line per reason."""
    import importlib.util

    from .cpu import native_bf16, no_bf16_reason

    kept, notes = [], {}
    for text in texts:
        spec = parse_spec(text)
        module = spec.descriptor.runtime
        if module and importlib.util.find_spec(module) is None:
            notes.setdefault(
                module,
                f"note: {module} is not installed: {spec.descriptor.short}:* rows left out "
                "(name one to see why it cannot run)",
            )
        elif spec.precision == "bf16" and spec.device == "cpu" and not native_bf16():
            notes.setdefault("bf16", f"note: {no_bf16_reason()}: CPU bf16 rows left out")
        else:
            kept.append(text)
    for line in notes.values():
        note(line)
    return kept


def parse_specs(texts: list[str] | tuple[str, ...], default_device: str = "cpu") -> list[BackendSpec]:
    specs = [parse_spec(t, default_device) for t in texts]
    labels = [s.label for s in specs]
    dupes = sorted({l for l in labels if labels.count(l) > 1})
    if dupes:
        raise SpecError(f"backend given twice: {', '.join(dupes)}")
    return specs


Opener = Callable[[BackendSpec, DerainNet, Path], Backend]
BENCH_FP16_CHECK = (1, 3, 240, 320)


def exported_path(spec: BackendSpec, model: DerainNet, workdir: Path) -> Path:
    """The file ``spec`` runs: its own ``file``, or the ONNX file (or, for tensorrt, the engine)
    made from ``model`` by the artifact cache in ``workdir`` (:mod:`.artifacts`: the builder's
    checks, once per graph form and precision)."""
    if spec.file:
        return Path(spec.file)
    kind = registry.get(spec.backend).export_kind
    if kind is None:
        raise BackendError(f"{spec.label}: {spec.backend} runs no exported file (name one: NAME=FILE)")
    cache, weights = work_cache(model, workdir)
    tensorrt = spec.device.startswith("tensorrt")  # ONNX Runtime's TensorRT provider: the TensorRT INT8 file
    return cache.model_file(kind, weights, spec.precision, spec.graph, tensorrt=tensorrt)


def work_cache(model: DerainNet, workdir: Path) -> tuple[ArtifactCache, Path]:
    """The artifact cache in ``workdir`` that bench and eval specs export into, and the weights
    file it exports from (``model`` saved there once)."""
    from .artifacts import ArtifactCache
    from .weights import save_weights

    weights = workdir / "model.safetensors"
    if not weights.is_file():
        save_weights(model, weights)
    # the NaN/Inf check at a bench-sized shape; the bench's parity check covers the rest
    return ArtifactCache(workdir, fp16_check_shape=BENCH_FP16_CHECK, name="derain"), weights


def export_specs(specs: list[BackendSpec], model: DerainNet, workdir: Path, log: Callable[[str], None]
                 ) -> None:  # fmt: skip
    """Export the CPU ONNX files ``specs`` will open (none named by the user), graph forms side by
    side (:mod:`.parallel_export`), so that opening them afterwards finds them cached."""
    from .parallel_export import export_all

    onnx = [s for s in specs if not s.file and s.device == "cpu" and s.descriptor.export_kind == "onnx"]
    wanted = [(FILE_PRECISION.get(s.precision, s.precision), s.graph) for s in onnx]
    if wanted:
        export_all(*work_cache(model, workdir), wanted, log)


def open_spec(spec: BackendSpec, model: DerainNet, workdir: Path) -> Backend:
    """Open ``spec`` on ``model`` (weights already loaded); exported files are made in ``workdir``.
    The backend's outputs are checked for NaN and Inf (:class:`~.backends.base.FiniteBackend`)."""
    return FiniteBackend(_open_spec(spec, model, workdir), model=spec.label)


def _open_spec(spec: BackendSpec, model: DerainNet, workdir: Path) -> Backend:
    """The registered backend's own ``open_spec``; an unknown backend is an error."""
    return registry.get(spec.backend).open_spec(spec, model, workdir)


def load_model(
    weights: str | Path | None = None, random_init: bool = False, seed: int = 0
) -> tuple[DerainNet, str]:
    """The model to run and a line saying where it came from: ``weights``, else the bundled
    default weights; ``random_init`` asks explicitly for a seeded untrained default model
    (timing only; it is never a fallback)."""
    from .weights import default_weights_path, load_default, load_weights

    if random_init:
        if weights:
            raise SpecError("give either a weights file or random weights, not both")
        torch.manual_seed(seed)
        return DerainNet().eval(), f"random init (seed {seed})"
    if weights:
        return load_weights(weights), str(weights)
    if not default_weights_path().is_file():
        raise SpecError(
            f"the bundled default weights are missing ({default_weights_path()}); pass --weights FILE"
        )
    return load_default(), f"bundled {default_weights_path().name}"
