"""TensorRT engines from the exported ONNX: strongly typed, one optimization profile, a plain
``.engine`` file (trtexec loads it) plus a sidecar ``.engine.json``.

Precision comes from the ONNX file (FP16 or QDQ INT8 tensors), never from builder flags:
TensorRT 11 removed BuilderFlag.FP16 and a strongly typed network cannot fall back to FP32
silently. FP32 means FP32: ``BuilderFlag.TF32`` (on by default) is cleared and trtexec gets
``--noTF32``, unless :attr:`EngineOptions.tf32` asks for TF32 (the sidecar then says ``tf32``).

Static or dynamic is the export's shape, read from the ONNX input, not the profile: a dynamic
export with equal min/opt/max still needs its profile. The timing cache is keyed by GPU, compute
capability and TensorRT version (one cache serves one GPU model and TensorRT version).

Works with TensorRT 10 and 11: only names present in both are used, except those in
:data:`FEATURE_TESTED`, reached behind a ``hasattr`` test. Where TensorRT or a GPU is missing,
:func:`trtexec_command` gives the equivalent command line for building elsewhere.
"""

from __future__ import annotations

import datetime
import importlib.util
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

from derain_deploy.atomic import write_atomic

from .profiles import Profile, shape_str

# Names used only behind hasattr(): absent in some supported TensorRT versions.
FEATURE_TESTED: frozenset[str] = frozenset()
MIN_TENSORRT_MAJOR = 10


class EngineError(RuntimeError):
    """An engine could not be built; one line."""


@dataclass(frozen=True)
class EngineOptions:
    """Builder settings. ``optimization_level`` 0-5 (TensorRT's default 3: higher tries more
    tactics and builds longer); the timing cache makes rebuilds fast and is kept next to the
    engines unless a path is given."""

    workspace_mib: int = 4096
    optimization_level: int = 3
    timing_cache: Path | None = None
    hardware_compatible: bool = False  # Ampere and newer GPUs (slightly slower engines)
    version_compatible: bool = False  # loadable by later TensorRT versions (lean runtime)
    tf32: bool = False  # FP32 layers may use TF32 tensor cores (10-bit mantissa); off: FP32 is FP32

    def __post_init__(self) -> None:
        if self.workspace_mib <= 0:
            raise ValueError(f"workspace must be positive, got {self.workspace_mib} MiB")
        if not 0 <= self.optimization_level <= 5:
            raise ValueError(f"builder optimization level must be 0..5, got {self.optimization_level}")


def tensorrt_unavailable() -> str | None:
    """Why an engine cannot be built here (None when TensorRT and a CUDA GPU are present)."""
    if importlib.util.find_spec("tensorrt") is None:
        return "TensorRT is not installed (pip install 'derain-deploy[trt]' from NVIDIA's index)"
    import torch

    if not torch.cuda.is_available():
        return "no CUDA GPU is available (torch.cuda.is_available() is False)"
    return None


def onnx_input_is_static(onnx_bytes: bytes) -> bool:
    """Whether the ONNX graph's first input has fixed dimensions only (a static export)."""
    import onnx

    proto = onnx.ModelProto.FromString(onnx_bytes)
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    return bool(dims) and all(d.HasField("dim_value") and d.dim_value > 0 for d in dims)


def trtexec_command(
    onnx_path: Path,
    engine_path: Path,
    profile: Profile,
    options: EngineOptions,
    input_name: str = "rainy",
    *,
    static_input: bool | None = None,
) -> list[str]:
    """The trtexec command line that builds the same engine as :func:`build_engine`.
    ``static_input``: whether the export is static (None: read from ``onnx_path``)."""
    if static_input is None:
        static_input = onnx_input_is_static(onnx_path.read_bytes())
    cmd = [
        "trtexec",
        f"--onnx={onnx_path}",
        f"--saveEngine={engine_path}",
        "--stronglyTyped",
        f"--memPoolSize=workspace:{options.workspace_mib}M",
        f"--builderOptimizationLevel={options.optimization_level}",
        f"--timingCacheFile={timing_cache_path(engine_path, options)}",
    ]
    if not options.tf32:
        cmd.append("--noTF32")
    if not static_input:
        cmd += [
            f"--minShapes={input_name}:{shape_str(profile.min)}",
            f"--optShapes={input_name}:{shape_str(profile.opt)}",
            f"--maxShapes={input_name}:{shape_str(profile.max)}",
        ]
    if options.hardware_compatible:
        cmd.append("--hardwareCompatibilityLevel=ampere+")
    if options.version_compatible:
        cmd.append("--versionCompatible")
    return cmd


def timing_cache_path(
    engine_path: Path,
    options: EngineOptions,
    gpu: str | None = None,
    capability: str | None = None,
    tensorrt_version: str | None = None,
) -> Path:
    """The timing cache: ``options.timing_cache``, else one per GPU, compute capability and
    TensorRT version beside the engines (only what is known goes into the name: a command
    printed where TensorRT or the GPU is missing names the plain file)."""
    if options.timing_cache:
        return options.timing_cache
    parts = ["tensorrt"]
    if gpu:
        parts.append(re.sub(r"[^A-Za-z0-9_.-]+", "-", gpu).strip("-"))
    if capability:
        parts.append("sm" + capability.replace(".", ""))
    if tensorrt_version:
        parts.append(f"trt{tensorrt_version}")
    return engine_path.parent / (".".join(parts) + ".timing.cache")


def tensorrt_version() -> str:
    import tensorrt as trt

    return str(trt.__version__)


def _build(
    onnx_bytes: bytes, input_name: str, profile: Profile | None, options: EngineOptions, cache: bytes
) -> tuple[bytes, bytes, str]:
    """The TensorRT calls, and nothing else: (engine, timing cache, TensorRT version).

    Every attribute used here must exist in TensorRT 10 and 11 (tests/export checks it against
    the names in both bindings)."""
    import tensorrt as trt

    if int(trt.__version__.split(".")[0]) < MIN_TENSORRT_MAJOR:
        raise EngineError(f"TensorRT {trt.__version__} is too old; {MIN_TENSORRT_MAJOR}.x or newer is needed")
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_bytes):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineError(f"TensorRT could not parse the ONNX file: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_mib << 20)
    config.builder_optimization_level = options.optimization_level
    if options.hardware_compatible:
        config.hardware_compatibility_level = trt.HardwareCompatibilityLevel.AMPERE_PLUS
    if options.version_compatible:
        config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
    if not options.tf32:
        config.clear_flag(trt.BuilderFlag.TF32)  # on by default: FP32 layers would run TF32
    if profile is not None:
        opt_profile = builder.create_optimization_profile()
        opt_profile.set_shape(input_name, profile.min, profile.opt, profile.max)
        config.add_optimization_profile(opt_profile)
    timing_cache = config.create_timing_cache(cache)
    config.set_timing_cache(timing_cache, False)
    engine = builder.build_serialized_network(network, config)
    if engine is None:
        raise EngineError("TensorRT failed to build the engine (see its log above)")
    return bytes(engine), bytes(config.get_timing_cache().serialize()), str(trt.__version__)


def build_engine(
    onnx_path: Path,
    engine_path: Path,
    profile: Profile,
    options: EngineOptions,
    *,
    precision: str,
    onnx_sha256: str,
    input_name: str = "rainy",
    static_input: bool | None = None,
) -> dict[str, object]:
    """Build ``engine_path`` from ``onnx_path`` and write its sidecar JSON; return the sidecar.
    ``static_input``: whether the export is static (None: read from the file)."""
    reason = tensorrt_unavailable()
    if reason:
        raise EngineError(reason)
    import torch

    onnx_bytes = onnx_path.read_bytes()
    static = onnx_input_is_static(onnx_bytes) if static_input is None else static_input
    major, minor = torch.cuda.get_device_capability(0)
    gpu = torch.cuda.get_device_name(0)
    cache_path = timing_cache_path(engine_path, options, gpu, f"{major}.{minor}", tensorrt_version())
    cache = cache_path.read_bytes() if cache_path.is_file() else b""
    start = time.perf_counter()
    engine, new_cache, version = _build(onnx_bytes, input_name, None if static else profile, options, cache)
    seconds = time.perf_counter() - start
    sidecar: dict[str, object] = {
        "format": "derain-deploy-engine",
        "tensorrt_version": version,
        "gpu": gpu,
        "compute_capability": f"{major}.{minor}",
        "precision": "tf32" if options.tf32 and precision == "fp32" else precision,
        "tf32": options.tf32,
        "strongly_typed": True,
        "input": input_name,
        "profiles": [profile.to_dict()],
        "onnx": onnx_path.name,
        "onnx_sha256": onnx_sha256,
        "workspace_mib": options.workspace_mib,
        "builder_optimization_level": options.optimization_level,
        "hardware_compatible": options.hardware_compatible,
        "version_compatible": options.version_compatible,
        "build_seconds": round(seconds, 2),
        "built_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    write_atomic(engine_path, engine)
    write_atomic(engine_path.with_name(engine_path.name + ".json"), json.dumps(sidecar, indent=2).encode())
    write_atomic(cache_path, new_cache)
    return sidecar
