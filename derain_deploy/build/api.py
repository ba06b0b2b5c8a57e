"""``export_model``: weights -> checked ONNX files (FP32, FP16, INT8) and TensorRT engines.

Every artifact is checked before anything is written; the ONNX files are written together
(temp names in the output directory, renamed on success), so a failed check leaves the
directory as it was. Engines come last: where TensorRT or a GPU is missing the ONNX files
stay written and :class:`EngineUnavailableError` carries the trtexec command lines.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from derain_deploy.model import DerainNet
from derain_deploy.weights import default_weights_path, file_sha256, load_weights

from . import int8_files, onnx_export, precision, trt_build, verify
from .int8_files import CALIBRATION_SEED as CALIBRATION_SEED  # re-exported
from .onnx_export import ExportError
from .profiles import Profile, Shape, make_profile, shape_str
from .verify import ParityError as ParityError  # re-exported

QUALITY_SEED = 99
QUALITY_IMAGES = (4, 128, 160)  # n, height, width of the rainy images for INT8 / early-exit PSNR


class EngineUnavailableError(ExportError):
    """``engine=True`` but TensorRT or a GPU is missing: the ONNX files were written;
    ``commands`` holds the trtexec command lines that build the engines elsewhere."""

    def __init__(self, reason: str, report: ExportReport, commands: list[list[str]]) -> None:
        super().__init__(f"cannot build TensorRT engines: {reason}")
        self.reason, self.report, self.commands = reason, report, commands


@dataclass(frozen=True)
class ExportOptions:
    """What to export. ``shape`` makes a static graph; otherwise batch/height/width are dynamic
    and ``profile`` (default: video profile, see derain_deploy.build.profiles) is used for engines."""

    graph: str = "concat"  # "concat" (the paper's form) or "split" (no Concat ops)
    stages: int | None = None  # early exit: fewer stages than trained
    opset: int = onnx_export.DEFAULT_OPSET
    shape: Shape | None = None
    profile: Profile | None = None
    fp16: bool = False
    int8: bool = False
    int8_max_loss_db: float = verify.INT8_MAX_LOSS_DB
    int8_tensorrt_max_loss_db: float = verify.INT8_MAX_LOSS_DB  # the TensorRT INT8 file's own budget
    int8_recipe: precision.Int8Recipe = precision.DEFAULT_RECIPE
    int8_targets: tuple[str, ...] = int8_files.TARGETS  # which INT8 files: the CPU one, the TensorRT one
    calibration_frames: int = precision.CALIBRATION_FRAMES
    calibration_crop: tuple[int, int] = precision.CALIBRATION_CROP
    simplify: bool = False
    engine: bool = False
    engine_options: trt_build.EngineOptions = field(default_factory=trt_build.EngineOptions)
    name: str | None = None  # file stem; default: the weights file's stem
    fp16_large_shape: Shape = verify.HARD_LARGE_SHAPE
    bench_shape: Shape | None = (1, 3, 240, 320)  # ORT CPU timings in the report; None: skip
    # An FP32 file exported from the same weights with the same settings (the artifact cache's):
    # read instead of exporting again; its structure and FP32 parity are checked all the same.
    fp32_from: Path | None = None

    def engine_profile(self) -> Profile:
        if self.shape is not None:
            return Profile(self.shape, self.shape, self.shape)
        return self.profile or make_profile()


@dataclass
class Artifact:
    path: Path
    precision: str  # fp32, fp16, int8
    kind: str  # onnx, engine
    size_bytes: int
    sha256: str
    target: str = "any"  # INT8 ONNX files: "cpu" or "tensorrt" (derain_deploy/build/precision.py says why)


@dataclass
class ExportReport:
    weights: Path
    weights_sha256: str
    config: dict[str, object]
    stages: int
    graph: str
    artifacts: list[Artifact] = field(default_factory=list)
    checks: dict[str, dict[str, object]] = field(default_factory=dict)  # fp32, fp16, int8, early_exit
    timings_ms: dict[str, float] = field(default_factory=dict)  # ORT CPU median, at bench_shape
    bench_shape: list[int] | None = None

    def artifact(self, kind: str, precision: str, tensorrt: bool = False) -> Artifact:
        """The one artifact of ``kind`` and ``precision``; for INT8 ONNX, the TensorRT file when
        ``tensorrt`` (ONNX Runtime's TensorRT provider), else the CPU one."""
        unwanted = "cpu" if tensorrt else "tensorrt"
        (found,) = [
            a for a in self.artifacts if a.kind == kind and a.precision == precision and a.target != unwanted
        ]
        return found

    def to_dict(self) -> dict[str, object]:
        d = dataclasses.asdict(self)
        d["weights"] = str(self.weights)
        d["artifacts"] = [{**dataclasses.asdict(a), "path": str(a.path)} for a in self.artifacts]
        return d


def _versions() -> dict[str, str]:
    out = {}
    for pkg in ("derain-deploy", "torch", "onnx", "onnxscript", "onnxruntime", "onnxruntime-gpu", "onnxslim"):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def artifact_stem(weights: Path, options: ExportOptions, trained_stages: int) -> str:
    """``<name>[.s<N>][.split][.<static shape>]``: settings that change the graph are in the name."""
    stem = options.name or weights.name.removesuffix(".safetensors")
    if options.stages is not None and options.stages != trained_stages:
        stem += f".s{options.stages}"
    if options.graph != "concat":
        stem += f".{options.graph}"
    if options.shape is not None:
        stem += f".{shape_str(options.shape)}"
    return stem


def _metadata(base: dict[str, object], **extra: object) -> dict[str, object]:
    return {**base, **extra}


def _simplify(proto):  # type: ignore[no-untyped-def]
    import onnxslim

    return onnxslim.slim(proto)


def _validate(options: ExportOptions, net: DerainNet) -> int:
    trained = net.config.stages
    stages = trained if options.stages is None else options.stages
    if not 1 <= stages <= trained:
        raise ExportError(
            f"--stages {stages} is out of range: the weights were trained with {trained} stages"
        )
    if options.graph not in onnx_export.GRAPH_FORMS:
        raise ExportError(f"unknown graph form {options.graph!r}; expected concat or split")
    if options.int8_max_loss_db < 0:
        raise ExportError(f"INT8 loss threshold must be >= 0 dB, got {options.int8_max_loss_db}")
    unknown = sorted(set(options.int8_targets) - set(int8_files.TARGETS))
    if options.int8 and (unknown or not options.int8_targets):
        raise ExportError(f"INT8 targets must be among {', '.join(int8_files.TARGETS)}, got {unknown or 'none'}")
    if options.calibration_frames < 1:
        raise ExportError(f"calibration frames must be >= 1, got {options.calibration_frames}")
    onnx_export.check_settings(options.opset, options.shape)
    name = options.name
    if name is not None and (not name or name.startswith(".") or any(c in name for c in "/\\\0")):
        raise ExportError(f"--name {name!r} must be a plain file name (no folders, not hidden)")
    if options.engine:
        options.engine_profile()  # validates
    return stages


def _prepare_out_dir(out_dir: Path) -> Path:
    """Create ``out_dir`` and a private temp dir inside it (so the final renames are atomic)."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=".derain-export-", dir=out_dir))
    except OSError as e:
        raise ExportError(f"cannot write to output directory {out_dir}: {e.strerror or e}") from None


def export_model(weights: Path | None, out_dir: Path, options: ExportOptions | None = None) -> ExportReport:
    """Export ``weights`` (None: the bundled default) into ``out_dir`` as checked ONNX files
    (and TensorRT engines with ``options.engine``); return what was written and measured.

    Raises WeightsError (bad weights), ExportError / ParityError (a failed export or check;
    nothing written), EngineUnavailableError (ONNX written, engines not built)."""
    options = options or ExportOptions()
    weights = Path(weights) if weights is not None else default_weights_path()
    if not weights.is_file() and weights == default_weights_path():
        raise ExportError(f"no WEIGHTS given and the bundled default weights are missing at {weights}")
    net = load_weights(weights).float().eval()
    stages = _validate(options, net)
    out_dir = Path(out_dir)
    sha = file_sha256(weights)
    report = ExportReport(weights, sha, net.config.to_dict(), stages, options.graph)
    base_meta: dict[str, object] = {
        "model_config": net.config.to_dict(),
        "weights_sha256": sha,
        "weights_file": weights.name,
        "stages": stages,
        "trained_stages": net.config.stages,
        "graph_form": options.graph,
        "input": onnx_export.INPUT_NAME,
        "output": onnx_export.OUTPUT_NAME,
        "layout": "NCHW",
        "color": "RGB",
        "value_range": [0.0, 1.0],
        "io_dtype": "float32",
        "tool_versions": _versions(),
    }

    # The output directory is checked first; files are staged in a temp dir inside it.
    created = not out_dir.exists()
    tmp_dir = _prepare_out_dir(out_dir)
    written = False
    try:
        files = _build_and_check(net, stages, options, base_meta, report)
        stem = artifact_stem(weights, options, net.config.stages)
        names = {
            "fp32": f"{stem}.onnx",
            "fp16": f"{stem}.fp16.onnx",
            "int8": f"{stem}.int8.onnx",
            "int8_tensorrt": f"{stem}.int8.tensorrt.onnx",
        }
        try:
            for key, data in files.items():
                (tmp_dir / names[key]).write_bytes(data)
            for key, data in files.items():
                os.replace(tmp_dir / names[key], out_dir / names[key])
                precision_, _, target = key.partition("_")
                report.artifacts.append(
                    Artifact(
                        out_dir / names[key],
                        precision_,
                        "onnx",
                        len(data),
                        hashlib.sha256(data).hexdigest(),
                        target or ("cpu" if precision_ == "int8" else "any"),
                    )
                )
        except OSError as e:
            raise ExportError(f"cannot write to output directory {out_dir}: {e.strerror or e}") from None
        written = True
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        if created and not written:
            shutil.rmtree(out_dir, ignore_errors=True)  # held only our staging dir

    if options.engine:
        _engines(report, options)
    return report


def _build_and_check(
    net: DerainNet, stages: int, options: ExportOptions, base_meta: dict[str, object], report: ExportReport
) -> dict[str, bytes]:
    """Every requested ONNX variant, checked, as bytes by precision; fills ``report``."""
    if options.fp32_from is not None:
        proto = onnx_export.load_fp32(options.fp32_from, net.config, stages, options.graph)
    else:
        proto = onnx_export.export_fp32(
            net, stages=stages, graph=options.graph, opset=options.opset, static_shape=options.shape
        )
    if options.simplify:
        proto = _simplify(proto)
        onnx_export.check_structure(proto, net.config, stages, options.graph)
    onnx_export.set_metadata(proto, _metadata(base_meta, precision="fp32", simplified=options.simplify))
    onnx_export.full_check(proto)
    fp32 = onnx_export.serialize(proto)
    parity_shapes = (options.shape,) if options.shape else verify.PARITY_SHAPES
    parity = verify.check_fp32_parity(net, fp32, stages, shapes=parity_shapes)
    report.checks["fp32"] = {
        "max_abs": parity.max_abs,
        "tolerance": parity.tolerance,
        "shapes": parity.shapes,
    }
    files: dict[str, bytes] = {"fp32": fp32}

    if options.fp16:
        half = precision.to_fp16(proto)
        onnx_export.set_metadata(
            half,
            _metadata(
                base_meta,
                precision="fp16",
                simplified=options.simplify,
                fp16_converter="onnxruntime.transformers.float16 keep_io_types",
            ),
        )
        onnx_export.full_check(half)
        files["fp16"] = onnx_export.serialize(half)
        r16 = verify.check_fp16(
            net, files["fp16"], stages, large=options.fp16_large_shape, static=options.shape
        )
        report.checks["fp16"] = dataclasses.asdict(r16)

    # Rainy images with their clean versions for the INT8 and early-exit PSNR figures.
    batch = options.shape[0] if options.shape else 1
    n, h, w = QUALITY_IMAGES
    if options.shape:
        n, h, w = batch * max(1, n // batch), options.shape[2], options.shape[3]
    needed = options.int8 or stages < net.config.stages
    quality = verify.rainy_images(n, h, w, seed=QUALITY_SEED) if needed else (np.empty(0), np.empty(0))

    if options.int8:
        files.update(int8_files.int8_files(proto, fp32, quality, options, base_meta, report))

    full_fp32 = None
    if stages < net.config.stages:
        rainy, clean = quality
        early = verify.run_eager(net, rainy, stages)
        full = verify.run_eager(net, rainy)
        report.checks["early_exit"] = {
            "stages": stages,
            "trained_stages": net.config.stages,
            "psnr_vs_full_rgb": float(np.mean(verify.psnr_rgb(early, full))),
            "psnr_y_clean_full": float(np.mean(verify.psnr_y(full, clean))),
            "psnr_y_clean_early": float(np.mean(verify.psnr_y(early, clean))),
            "images": len(rainy),
            "macs_per_pixel": net.config.macs_per_pixel(stages),
            "macs_per_pixel_full": net.config.macs_per_pixel(),
        }
        if options.bench_shape:
            full_fp32 = onnx_export.serialize(
                onnx_export.export_fp32(
                    net, graph=options.graph, opset=options.opset, static_shape=options.shape
                )
            )

    if options.bench_shape:
        bench = options.shape or options.bench_shape
        for key, model in files.items():
            if key != "int8_tensorrt":  # a GPU file: its CPU time means nothing
                report.timings_ms[key] = verify.time_onnx(model, bench)
        if full_fp32 is not None:
            report.timings_ms["fp32_full_stages"] = verify.time_onnx(full_fp32, bench)
        report.bench_shape = list(bench)

    return files


def engine_plans(report: ExportReport) -> list[tuple[Artifact, Path]]:
    """(ONNX file, engine path) for every engine to build: TensorRT gets the TensorRT INT8
    file (``*.int8.tensorrt.onnx`` -> ``*.int8.engine``), never the CPU one."""
    onnx_files = [a for a in report.artifacts if a.kind == "onnx" and a.target != "cpu"]
    return [
        (a, a.path.with_name(a.path.name.removesuffix(".onnx").removesuffix(".tensorrt") + ".engine"))
        for a in onnx_files
    ]


def _engines(report: ExportReport, options: ExportOptions) -> None:
    profile = options.engine_profile()
    plans = engine_plans(report)
    reason = trt_build.tensorrt_unavailable()
    if reason:
        commands = [
            trt_build.trtexec_command(
                a.path, e, profile, options.engine_options, static_input=options.shape is not None
            )
            for a, e in plans
        ]
        raise EngineUnavailableError(reason, report, commands)
    for artifact, engine_path in plans:
        try:
            sidecar = trt_build.build_engine(
                artifact.path,
                engine_path,
                profile,
                options.engine_options,
                precision=artifact.precision,
                onnx_sha256=artifact.sha256,
                static_input=options.shape is not None,
            )
        except trt_build.EngineError as e:
            raise ExportError(f"{engine_path.name}: {e}") from None
        report.artifacts.append(
            Artifact(
                engine_path,
                str(sidecar["precision"]),  # tf32 for an FP32 file built with TF32 allowed
                "engine",
                engine_path.stat().st_size,
                file_sha256(engine_path),
            )
        )


def report_json(report: ExportReport) -> str:
    return json.dumps(report.to_dict(), indent=2, default=str)
