"""The backend registry: one :class:`BackendDescriptor` per backend, each in its backend's own file.

Everything that needs to know about backends reads this registry: spec parsing
(``backend_spec``), ``open_backend`` and its ``auto`` chain, the CLIs' ``--backend`` and
``--precision`` choices, the bench's default sets and version list, and Ray's resources.

Where descriptors come from, in this order:

- every module ``derain_deploy/backends/*_backend.py`` that defines ``DESCRIPTOR``;
- the modules named in ``$DERAIN_DEPLOY_BACKENDS`` (comma-separated import paths), and the
  ``derain_deploy.backends`` entry-point group: plug-ins outside the package;
- :func:`register`, called at run time.

Adding a backend is adding one such file. A name that no descriptor claims is an error
everywhere (:class:`UnknownBackendError`), never a fall-through to some other backend.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .base import Backend, BackendError

if TYPE_CHECKING:
    from ..backend_spec import BackendSpec
    from ..model import DerainNet

PLUGINS_ENV = "DERAIN_DEPLOY_BACKENDS"
ENTRY_POINT_GROUP = "derain_deploy.backends"
# the order precisions are listed in (CLI choices, messages); a plug-in's own come after.
# tf32: FP32 files with TF32 tensor cores allowed (CUDA only); fp32 on a GPU keeps TF32 off
PRECISION_ORDER = ("fp32", "tf32", "fp16", "bf16", "int8")


class UnknownBackendError(BackendError):
    """A backend name that no registered descriptor claims."""


def _cpu_only() -> tuple[str, str]:
    return "cpu", ""


def dist_version(*distributions: str) -> str | None:
    """The version of the first of ``distributions`` installed (package metadata; nothing imported)."""
    from importlib import metadata

    for name in distributions:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


@dataclass(frozen=True)
class BackendDescriptor:
    """What the rest of the package knows about one backend.

    ``open_file(path, device, precision, **options)`` opens a model file for ``derain-run``
    (``device`` may be ``auto``: see ``best_device``); ``open_spec(spec, model, workdir)`` opens a
    :class:`~derain_deploy.backend_spec.BackendSpec` for ``derain-bench`` and ``derain-eval``
    (preparing an exported file from ``model`` in ``workdir`` where the backend needs one)."""

    name: str  # the canonical name: --backend NAME, BackendInfo.name, reports
    short: str  # the prefix in specs and labels: ort, ov, trt
    precisions: tuple[str, ...]
    devices: tuple[str, ...]  # device kinds it runs on: cpu, cuda, tensorrt (each may take :N)
    suffixes: tuple[str, ...]  # model files it opens (weights are exported where it needs ONNX)
    open_file: Callable[..., Backend]
    open_spec: Callable[[BackendSpec, DerainNet, Path], Backend]
    available: Callable[[], tuple[bool, str]]  # (True, "") or (False, why not)
    aliases: tuple[str, ...] = ()  # more names a spec may use: pytorch, onnxruntime...
    order: int = 100  # where it is listed (built-ins 10..40, plug-ins after)
    best_device: Callable[[], tuple[str, str]] = _cpu_only  # --device auto: (device, why)
    retry_on_cpu: bool = False  # --device auto: a best device that does not start falls back to the CPU
    runtime: str | None = None  # the optional module it needs: default sets leave its rows out without it
    version: Callable[[], str | None] = lambda: None  # the installed runtime's version (bench reports)
    graph_forms: bool = False  # runs an exported ONNX graph form (concat, split)
    export_kind: str | None = None  # the file derain-export makes it from weights: onnx, engine
    channels_last: bool = False  # offers the channels_last memory format
    cpu_threads: bool = False  # takes a ``threads`` option on the CPU (Ray's CPU actors share cores)
    gpu_only: bool = False  # runs on a GPU only (a spec without a device gets cuda; Ray needs GPUs)
    bench_defaults: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # per --device
    # auto: the device kinds it may be chosen for, higher first; ``auto_check(kind, precision)``
    # says why it cannot be (None: try it); ``auto_label`` is the reason recorded when it is
    auto_rank: Mapping[str, int] = field(default_factory=dict)
    auto_check: Callable[[str, str | None], str | None] = lambda kind, precision: None
    auto_label: Mapping[str, str] = field(default_factory=dict)
    auto_failed: Mapping[str, str] = field(default_factory=dict)  # "... did not start ({error})"
    auto_file: str | None = None  # "a TensorRT engine": the files (its sole suffix) auto gives it alone

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((self.name, self.short, *self.aliases)))

    def describe(self) -> str:
        return self.name if self.short == self.name else f"{self.short} ({self.name})"


_REGISTRY: dict[str, BackendDescriptor] = {}
_loaded = False


def register(descriptor: BackendDescriptor) -> BackendDescriptor:
    """Add ``descriptor`` (replacing one of the same name); its names must not clash with another's."""
    _ensure_loaded()
    _add(descriptor)
    return descriptor


def _add(descriptor: BackendDescriptor) -> None:
    for other in _REGISTRY.values():
        clash = set(other.names) & set(descriptor.names)
        if other.name != descriptor.name and clash:
            raise BackendError(
                f"backend {descriptor.name!r}: the name {sorted(clash)[0]!r} is taken by {other.name!r}"
            )
    _REGISTRY[descriptor.name] = descriptor


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def _load_module(path: str) -> None:
    try:
        module = importlib.import_module(path)
    except ImportError as e:
        raise BackendError(f"cannot import the backend module {path!r}: {e}") from None
    found = getattr(module, "DESCRIPTORS", None) or [getattr(module, "DESCRIPTOR", None)]
    for descriptor in found:
        if isinstance(descriptor, BackendDescriptor):
            _add(descriptor)


def _ensure_loaded() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    package = Path(__file__).parent
    for info in sorted(pkgutil.iter_modules([str(package)]), key=lambda m: m.name):
        if info.name.endswith("_backend"):
            _load_module(f"{__package__}.{info.name}")
    for path in filter(None, (p.strip() for p in os.environ.get(PLUGINS_ENV, "").split(","))):
        _load_module(path)
    try:
        from importlib.metadata import entry_points

        plugins = entry_points(group=ENTRY_POINT_GROUP)
    except Exception:  # broken metadata of an unrelated distribution: no plug-ins from there
        plugins = ()
    for point in plugins:
        _load_module(point.value.partition(":")[0])


def descriptors() -> list[BackendDescriptor]:
    """Every registered backend, in listing order."""
    _ensure_loaded()
    return sorted(_REGISTRY.values(), key=lambda d: (d.order, d.name))


def names() -> list[str]:
    """The canonical names, in listing order."""
    return [d.name for d in descriptors()]


def find(name: str) -> BackendDescriptor | None:
    """The descriptor that ``name`` (a canonical name, short name or alias; any case) names."""
    key = name.strip().lower()
    for d in descriptors():
        if key in d.names:
            return d
    return None


def get(name: str) -> BackendDescriptor:
    """Like :func:`find`, but an unknown name is an :class:`UnknownBackendError`."""
    found = find(name)
    if found is None:
        raise UnknownBackendError(f"unknown backend {name!r}; expected {expected()}")
    return found


def expected(with_auto: bool = False) -> str:
    """``torch, ort (onnxruntime), ov (openvino) or trt (tensorrt)``: for error messages."""
    items = (["auto"] if with_auto else []) + [d.describe() for d in descriptors()]
    return ", ".join(items[:-1]) + f" or {items[-1]}" if len(items) > 1 else "".join(items)


def precisions() -> tuple[str, ...]:
    """Every precision some backend offers, in :data:`PRECISION_ORDER` (plug-ins' own after)."""
    offered = {p for d in descriptors() for p in d.precisions}
    extra = sorted(offered - set(PRECISION_ORDER))
    return tuple(p for p in PRECISION_ORDER if p in offered) + tuple(extra)


def suffixes() -> tuple[str, ...]:
    """Every model-file suffix some backend opens, in listing order."""
    return tuple(dict.fromkeys(s for d in descriptors() for s in d.suffixes))


def device_kinds() -> tuple[str, ...]:
    return tuple(dict.fromkeys(k for d in descriptors() for k in d.devices))


def default_sets() -> dict[str, tuple[str, ...]]:
    """The bench's default rows per ``--device``: every backend's own, in listing order."""
    sets: dict[str, tuple[str, ...]] = {}
    for d in descriptors():
        for device, specs in d.bench_defaults.items():
            sets[device] = sets.get(device, ()) + tuple(specs)
    return sets


def auto_candidates(kind: str) -> list[BackendDescriptor]:
    """The backends ``auto`` may choose on device kind ``kind`` (cpu, cuda), best first."""
    ranked = [d for d in descriptors() if kind in d.auto_rank]
    return sorted(ranked, key=lambda d: -d.auto_rank[kind])


def sole_owner(suffix: str) -> BackendDescriptor | None:
    """The one backend that ``auto`` gives files of ``suffix`` to (``.engine``: tensorrt)."""
    owners = [d for d in descriptors() if d.auto_file and d.suffixes == (suffix,)]
    return owners[0] if owners else None
