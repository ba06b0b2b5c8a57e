"""The one artifact cache: weights -> ONNX variants (graph form, precision) -> TensorRT engines.

An entry is keyed by content and versions: the weights file's SHA-256, the export settings
(graph form, precision, INT8 target, the FP16 check shape), the package, ``onnx`` and opset
versions, and for an engine also TF32, the GPU name, compute capability and TensorRT version.
The folder is a parameter: :func:`user_cache` (``derain-run``: ``$DERAIN_DEPLOY_CACHE``, else
``$XDG_CACHE_HOME/derain-deploy``, else ``~/.cache/derain-deploy``) or a work folder
(``derain-bench``, ``derain-eval``, tests). Entries are built in a private folder inside the cache
and renamed into place, so a final path never holds a partial file; an engine's sidecar is
renamed before the engine, so an engine in the cache always has one. Every ONNX file passes the
builder's checks (``build.api.export_model``: FP32 parity, FP16 PSNR, INT8 quality loss) first.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from .backends.base import BackendError
from .weights import WeightsError, file_sha256

# Bump when the exporter changes what a file holds without a version change (2: INT8 weights in 7 bits).
CACHE_FORMAT = 3
ONNX_PRECISIONS = ("fp32", "fp16", "int8")
# The faster graph form per precision on ONNX Runtime CPU, measured by benchmarks/run_bench.py
# (benchmarks/results/intel-xeon-2c_2026-11-25.md, 480x640): FP32 concat 823 ms vs split 1,178 ms;
# INT8 split 816 ms vs concat 1,085 ms (QLinearConcat is slow). OpenVINO passes its own form.
FASTEST_GRAPH = {"fp32": "concat", "fp16": "split", "int8": "split"}


def user_cache_dir() -> Path:
    """The per-user cache folder (``derain-run``)."""
    if os.environ.get("DERAIN_DEPLOY_CACHE"):
        return Path(os.environ["DERAIN_DEPLOY_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "derain-deploy"


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "none"


def _key(fields: dict[str, object]) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")


@dataclass(frozen=True)
class EngineTarget:
    """The GPU and TensorRT version an engine is built for (part of its cache key)."""

    gpu: str
    compute_capability: str
    tensorrt_version: str


class EngineBuilder(Protocol):
    """What builds engines for the cache: the target it builds for, and the build itself."""

    def target(self) -> EngineTarget: ...

    def build(self, onnx: Path, engine: Path, *, precision: str, tf32: bool, timing_cache: Path) -> None: ...


class TensorRTBuilder:
    """The real engine builder (``build.trt_build``); tests pass a fake with the same two methods."""

    def target(self) -> EngineTarget:
        """This machine's GPU and TensorRT, or a one-line error saying why no engine can be built."""
        try:
            from .build import trt_build
        except ImportError as e:
            raise BackendError(
                f"tensorrt: cannot build an engine: the artifact builder is missing ({e})"
            ) from None
        reason = trt_build.tensorrt_unavailable()
        if reason:
            raise BackendError(f"tensorrt: cannot build an engine here: {reason}")
        import torch

        major, minor = torch.cuda.get_device_capability(0)
        return EngineTarget(torch.cuda.get_device_name(0), f"{major}.{minor}", trt_build.tensorrt_version())

    def build(self, onnx: Path, engine: Path, *, precision: str, tf32: bool, timing_cache: Path) -> None:
        """Write ``engine`` and its sidecar from ``onnx`` (the default video profile)."""
        from .build import trt_build
        from .build.profiles import make_profile

        options = trt_build.EngineOptions(tf32=tf32, timing_cache=timing_cache)
        try:
            trt_build.build_engine(
                onnx, engine, make_profile(), options, precision=precision, onnx_sha256=file_sha256(onnx)
            )
        except trt_build.EngineError as e:
            raise BackendError(f"tensorrt: cannot build an engine from {onnx.name}: {e}") from None


@dataclass
class ArtifactCache:
    """Checked ONNX files and TensorRT engines made from weights files, under ``root``.

    An entry is ``<root>/onnx/<stem>-<weights sha>-<key>/<name>`` (``engines/`` for engines),
    the file named as derain-export names it (``derain.split.int8.onnx``) after ``name``, else the
    weights file's stem. ``fp16_check_shape``: the shape of the FP16 NaN/Inf check (None: the
    builder's default, 720p); ``engine_builder``: what builds engines (:class:`TensorRTBuilder`)."""

    root: Path
    fp16_check_shape: tuple[int, int, int, int] | None = None
    name: str | None = None
    engine_builder: EngineBuilder = field(default_factory=TensorRTBuilder)

    def __post_init__(self) -> None:
        self.root = Path(self.root)

    # ONNX ---------------------------------------------------------------------------------------
    def onnx_path(
        self, weights: str | Path, precision: str = "fp32", graph: str | None = None, tensorrt: bool = False
    ) -> Path:
        """Where the ONNX for ``weights`` with these settings lives (``tensorrt``: the INT8 file
        for TensorRT, symmetric with float biases, instead of the CPU one)."""
        weights = Path(weights)
        return self._onnx_path(
            weights, file_sha256(weights), precision, graph or FASTEST_GRAPH[precision], tensorrt
        )

    def onnx(
        self, weights: str | Path, precision: str = "fp32", graph: str | None = None, tensorrt: bool = False
    ) -> tuple[Path, bool]:
        """The cached ONNX for ``weights`` (exported and checked now if missing) and whether it was
        exported now. ``graph`` None: the faster form for ``precision`` (:data:`FASTEST_GRAPH`)."""
        if precision not in ONNX_PRECISIONS:
            hint = " (bf16 runs on the torch backend: --backend torch)" if precision == "bf16" else ""
            raise BackendError(f"onnxruntime: no {precision} ONNX can be exported{hint}")
        weights, graph = Path(weights), graph or FASTEST_GRAPH[precision]
        sha = file_sha256(weights)
        path = self._onnx_path(weights, sha, precision, graph, tensorrt)
        if path.is_file():
            return path, False
        self._export(weights, sha, precision, graph, tensorrt)
        return path, True

    def _onnx_path(self, weights: Path, sha: str, precision: str, graph: str, tensorrt: bool) -> Path:
        target = "tensorrt" if tensorrt and precision == "int8" else "any"
        fields = {"weights": sha, "precision": precision, "graph": graph, "target": target}
        name = self._stem(weights, graph, precision) + (".tensorrt" if target == "tensorrt" else "")
        return self._entry("onnx", weights, sha, fields) / f"{name}.onnx"

    def _stem(self, weights: Path, graph: str, precision: str) -> str:
        """``derain.split.int8``: the file's name without the suffix (FP32 has no precision part)."""
        stem = self.name or weights.stem
        return (
            stem
            + (f".{graph}" if graph != "concat" else "")
            + (f".{precision}" if precision != "fp32" else "")
        )

    def _entry(self, kind: str, weights: Path, sha: str, fields: dict[str, object]) -> Path:
        return self.root / kind / f"{weights.stem}-{sha[:12]}-{_key({**self._onnx_fields(), **fields})}"

    def _onnx_fields(self) -> dict[str, object]:
        try:
            from .build.onnx_export import DEFAULT_OPSET
        except ImportError as e:
            raise BackendError(f"cannot export ONNX: the artifact builder is missing ({e})") from None
        return {
            "format": CACHE_FORMAT,
            "derain_deploy": _version("derain-deploy"),
            "onnx": _version("onnx"),
            "opset": DEFAULT_OPSET,
            "fp16_check_shape": self.fp16_check_shape,
        }

    def _export(self, weights: Path, sha: str, precision: str, graph: str, tensorrt: bool = False) -> None:
        """``export_model`` into a private folder inside the cache, then each file it made renamed
        to its own entry: the FP32 file (read from its entry when there is one, not exported again)
        and the one INT8 file asked for (the CPU or the TensorRT one)."""
        try:
            from .build import verify
            from .build.api import ExportOptions, export_model
        except ImportError as e:
            raise BackendError(
                f"cannot export {weights.name}: the artifact builder is missing ({e})"
            ) from None
        fp32 = self._onnx_path(weights, sha, "fp32", graph, False)
        options = ExportOptions(
            graph=graph,
            fp16=precision == "fp16",
            int8=precision == "int8",
            int8_targets=("tensorrt",) if tensorrt else ("cpu",),
            bench_shape=None,
            fp16_large_shape=self.fp16_check_shape or verify.HARD_LARGE_SHAPE,
            name=self.name,
            fp32_from=fp32 if fp32.is_file() else None,
        )
        folder = self.root / "onnx"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(prefix=".export-", dir=folder) as tmp:
                report = export_model(weights, Path(tmp), options)
                for a in report.artifacts:
                    final = self._onnx_path(weights, sha, a.precision, graph, a.target == "tensorrt")
                    if not final.is_file():  # the FP32 file it was read from stays as it is
                        final.parent.mkdir(exist_ok=True)
                        os.replace(a.path, final)
        except WeightsError:
            raise
        except OSError as e:
            raise BackendError(f"cannot write the artifact cache {folder}: {e.strerror or e}") from None
        except RuntimeError as e:  # the builder's ExportError / ParityError: one line, nothing cached
            raise BackendError(f"cannot export {weights.name} to {precision} ONNX: {e}") from None

    # TensorRT engines ---------------------------------------------------------------------------
    def engine(
        self, weights: str | Path, precision: str = "fp16", graph: str | None = None
    ) -> tuple[Path, bool]:
        """The cached TensorRT engine for ``weights`` on this GPU and TensorRT version (built now,
        from the cached ONNX, if missing) and whether it was built now. ``precision`` fp32, tf32
        (the FP32 file with TF32 allowed), fp16 or int8 (the TensorRT INT8 file)."""
        if precision not in ("fp32", "tf32", "fp16", "int8"):
            raise BackendError(f"tensorrt: no {precision} engine can be built (fp32, tf32, fp16 or int8)")
        weights = Path(weights)
        file_precision = "fp32" if precision == "tf32" else precision
        graph = graph or FASTEST_GRAPH[file_precision]
        target = self.engine_builder.target()
        sha = file_sha256(weights)
        fields = {
            "weights": sha,
            "precision": precision,
            "graph": graph,
            "gpu": target.gpu,
            "compute_capability": target.compute_capability,
            "tensorrt": target.tensorrt_version,
        }
        folder = self.root / "engines"
        path = (
            self._entry("engines", weights, sha, fields) / f"{self._stem(weights, graph, precision)}.engine"
        )
        if path.is_file():
            return path, False
        onnx, _ = self.onnx(weights, file_precision, graph, tensorrt=True)
        gpu = f"{_safe(target.gpu)}.sm{target.compute_capability.replace('.', '')}"
        timing = folder / f"tensorrt.{gpu}.trt{target.tensorrt_version}.timing.cache"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(prefix=".build-", dir=folder) as tmp:
                staged = Path(tmp) / path.name
                self.engine_builder.build(
                    onnx, staged, precision=file_precision, tf32=precision == "tf32", timing_cache=timing
                )
                sidecar = staged.with_name(staged.name + ".json")
                os.replace(sidecar, path.with_name(path.name + ".json"))  # first: an engine always has one
                os.replace(staged, path)
        except OSError as e:
            raise BackendError(f"cannot write the artifact cache {folder}: {e.strerror or e}") from None
        return path, True

    def model_file(
        self, kind: str, weights: Path, precision: str, graph: str, tensorrt: bool = False
    ) -> Path:
        """The file a backend of ``kind`` (``onnx`` or ``engine``) runs at ``precision``: ONNX
        bf16 and tf32 read the FP32 file; ``tensorrt`` (ONNX Runtime's TensorRT provider) the
        TensorRT INT8 file."""
        if kind == "engine":
            return self.engine(weights, precision, graph)[0]
        if kind != "onnx":
            raise BackendError(f"the artifact cache makes onnx files and engines, not {kind!r}")
        file_precision = "fp32" if precision in ("bf16", "tf32") else precision
        return self.onnx(weights, file_precision, graph, tensorrt=tensorrt)[0]


def user_cache(**options: object) -> ArtifactCache:
    """The per-user cache (``derain-run``)."""
    return ArtifactCache(user_cache_dir(), **options)  # type: ignore[arg-type]


def cached_onnx(weights: str | Path, precision: str = "fp32", graph: str | None = None) -> tuple[Path, bool]:
    """:meth:`ArtifactCache.onnx` in the per-user cache."""
    return user_cache().onnx(weights, precision, graph)


def cached_engine(
    weights: str | Path, precision: str = "fp16", graph: str | None = None
) -> tuple[Path, bool]:
    """:meth:`ArtifactCache.engine` in the per-user cache."""
    return user_cache().engine(weights, precision, graph)
