"""``derain-export [WEIGHTS] -o DIR``: thin command over :func:`derain_deploy.build.api.export_model`.

Exit codes: 0 success; 1 bad input or a failed check (nothing written); 2 usage error (click);
3 ONNX files written but TensorRT engines not built (TensorRT or GPU missing: the trtexec
command lines are printed).
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from derain_deploy.atomic import write_atomic
from derain_deploy.build.api import (
    EngineUnavailableError,
    ExportOptions,
    ExportReport,
    export_model,
    report_json,
)
from derain_deploy.build.onnx_export import DEFAULT_OPSET, GRAPH_FORMS, ExportError
from derain_deploy.build.profiles import make_profile, parse_shape, shape_str
from derain_deploy.build.trt_build import EngineOptions
from derain_deploy.output_guard import check_writes
from derain_deploy.user_errors import user_errors
from derain_deploy.weights import default_weights_path

from . import triton

EXIT_ERROR = 1
EXIT_NO_TENSORRT = 3


def _size(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"


def print_report(report: ExportReport) -> None:
    click.echo(
        f"weights {report.weights} (sha256 {report.weights_sha256[:12]}), "
        f"{report.stages} stages, {report.graph} graph"
    )
    for a in report.artifacts:
        click.echo(f"  wrote {a.path}  {_size(a.size_bytes)}  ({a.precision} {a.kind})")
    c = report.checks
    if "fp32" in c:
        p = c["fp32"]
        click.echo(f"  fp32 parity vs eager: max abs {p['max_abs']:.3g} (tolerance {p['tolerance']:g})")
    if "fp16" in c:
        f = c["fp16"]
        finite = ", ".join(k for k, ok in f["hard_inputs"].items() if ok)  # type: ignore[union-attr]
        click.echo(
            f"  fp16 vs eager fp32: PSNR min {f['min_psnr']:.2f} dB, mean {f['mean_psnr']:.2f} dB "
            f"(>= {f['threshold']:g}); finite on {finite}"
        )
        click.echo(
            f"  fp16 arithmetic (emulated) vs eager fp32: PSNR min {f['emulated_min_psnr']:.2f} dB, "
            f"mean {f['emulated_mean_psnr']:.2f} dB"
        )
    if "int8" in c:
        q = c["int8"]
        click.echo(
            f"  int8 vs clean (Y PSNR): fp32 {q['psnr_fp32']:.2f} dB, int8 {q['psnr_low']:.2f} dB, "
            f"loss {q['loss_db']:.3f} dB (max {q['max_loss_db']:g}); "
            f"vs fp32 output {q['psnr_vs_fp32']:.2f} dB"
        )
    if "int8_tensorrt" in c:
        q = c["int8_tensorrt"]
        click.echo(
            f"  int8 for TensorRT (symmetric, Q/DQ reference kernels) vs clean (Y PSNR): "
            f"int8 {q['psnr_low']:.2f} dB, loss {q['loss_db']:.3f} dB (max {q['max_loss_db']:g})"
        )
    if "early_exit" in c:
        e = c["early_exit"]
        click.echo(
            f"  early exit {e['stages']}/{e['trained_stages']} stages: PSNR vs full model "
            f"{e['psnr_vs_full_rgb']:.2f} dB; Y PSNR vs clean {e['psnr_y_clean_early']:.2f} dB "
            f"(full {e['psnr_y_clean_full']:.2f} dB)"
        )
    if report.timings_ms:
        shape = shape_str(tuple(report.bench_shape or ()))  # type: ignore[arg-type]
        t = report.timings_ms
        parts = [f"{k} {v:.1f} ms" for k, v in t.items()]
        click.echo(f"  onnxruntime CPU median at {shape}: " + ", ".join(parts))
        if "int8" in t:
            click.echo(f"  int8 speed-up over fp32: {t['fp32'] / t['int8']:.2f}x")
        if "fp32_full_stages" in t:
            click.echo(f"  early-exit speed-up over all stages: {t['fp32_full_stages'] / t['fp32']:.2f}x")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("weights", required=False, type=click.Path(path_type=Path))
@click.option("-o", "--out-dir", required=True, type=click.Path(path_type=Path), help="Output directory.")
@click.option(
    "--graph",
    type=click.Choice(GRAPH_FORMS),
    default="concat",
    show_default=True,
    help="concat: the paper's 1x1 convs over concatenations; split: sums of per-part convs (no Concat).",
)
@click.option("--fp16", is_flag=True, help="Also write *.fp16.onnx (FP16 weights and arithmetic, FP32 I/O).")
@click.option(
    "--int8",
    is_flag=True,
    help="Also write *.int8.onnx (CPU runtimes) and *.int8.tensorrt.onnx (TensorRT: symmetric int8), "
    "static QDQ calibrated on synthetic rain.",
)
@click.option(
    "--int8-max-loss",
    type=float,
    default=0.5,
    show_default=True,
    help="Refuse the INT8 model when its PSNR loss against FP32 exceeds this (dB).",
)
@click.option("--calibration-frames", type=int, default=24, show_default=True)
@click.option("--stages", type=int, default=None, help="Early exit: unroll only N stages (N <= trained).")
@click.option("--opset", type=int, default=DEFAULT_OPSET, show_default=True)
@click.option("--shape", default=None, help="Static input shape NxCxHxW (default: dynamic N, H, W).")
@click.option("--min", "min_", default=None, help="TensorRT profile min shape (default 1x3x64x64).")
@click.option("--opt", default=None, help="TensorRT profile opt shape (default 1x3x720x1280).")
@click.option("--max", "max_", default=None, help="TensorRT profile max shape (default 4x3x1080x1920).")
@click.option("--simplify", is_flag=True, help="Run onnxslim on the FP32 graph (re-checked after).")
@click.option("--engine", is_flag=True, help="Also build a TensorRT engine for each ONNX file.")
@click.option(
    "--workspace", type=int, default=4096, show_default=True, help="TensorRT workspace limit (MiB)."
)
@click.option(
    "--opt-level", type=int, default=3, show_default=True, help="TensorRT builder optimization level 0-5."
)
@click.option(
    "--timing-cache",
    type=click.Path(path_type=Path),
    default=None,
    help="TensorRT timing cache (default: DIR/tensorrt.timing.cache, reused across builds).",
)
@click.option("--hardware-compatible", is_flag=True, help="Engine runs on any Ampere or newer GPU.")
@click.option("--version-compatible", is_flag=True, help="Engine loads in later TensorRT versions.")
@click.option("--name", default=None, help="File stem (default: the weights file's stem).")
@click.option(
    "--bench/--no-bench",
    default=True,
    show_default=True,
    help="Time the ONNX files on ONNX Runtime CPU at 1x3x240x320 (or the static shape).",
)
@click.option(
    "--json", "json_path", type=click.Path(path_type=Path), default=None, help="Write the report as JSON."
)
@click.option(
    "--triton",
    "triton_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Also write a Triton model repository: DIR/derain/config.pbtxt, 1/model.onnx (and model.plan).",
)
def main(
    weights: Path | None,
    out_dir: Path,
    graph: str,
    fp16: bool,
    int8: bool,
    int8_max_loss: float,
    calibration_frames: int,
    stages: int | None,
    opset: int,
    shape: str | None,
    min_: str | None,
    opt: str | None,
    max_: str | None,
    simplify: bool,
    engine: bool,
    workspace: int,
    opt_level: int,
    timing_cache: Path | None,
    hardware_compatible: bool,
    version_compatible: bool,
    name: str | None,
    bench: bool,
    json_path: Path | None,
    triton_dir: Path | None,
) -> None:
    """Export WEIGHTS (default: the bundled weights) to checked ONNX files and TensorRT engines."""
    try:
        if triton_dir is not None:
            triton.check_schema()  # before the export, not after it
        source = weights or default_weights_path()
        stem = name or source.name.removesuffix(".safetensors")
        check_writes({"--json": json_path, "--timing-cache": timing_cache}, [source])
        check_writes({"--name": out_dir / f"{stem}.onnx"}, [source], within=out_dir)
        profile = make_profile(shape, min_, opt, max_)  # validates every shape given
        static = parse_shape(shape) if shape else None
        engine_options = EngineOptions(
            workspace, opt_level, timing_cache, hardware_compatible, version_compatible
        )
        options = ExportOptions(
            graph=graph,
            stages=stages,
            opset=opset,
            shape=static,
            profile=profile,
            fp16=fp16,
            int8=int8,
            int8_max_loss_db=int8_max_loss,
            calibration_frames=calibration_frames,
            simplify=simplify,
            engine=engine,
            engine_options=engine_options,
            name=name,
            bench_shape=(1, 3, 240, 320) if bench else None,
        )
        report = export_model(weights, out_dir, options)
    except EngineUnavailableError as e:
        print_report(e.report)
        if json_path:
            write_atomic(json_path, report_json(e.report))
        _write_triton(e.report, triton_dir)
        click.echo(f"error: {e}; build the engines elsewhere with:", err=True)
        for cmd in e.commands:
            click.echo("  " + shlex.join(cmd), err=True)
        sys.exit(EXIT_NO_TENSORRT)
    except user_errors(ValueError) as e:
        click.echo(f"error: {str(e).splitlines()[0] if str(e) else type(e).__name__}", err=True)
        sys.exit(EXIT_ERROR)
    print_report(report)
    if json_path:
        write_atomic(json_path, report_json(report))
    _write_triton(report, triton_dir)


def _write_triton(report: ExportReport, triton_dir: Path | None) -> None:
    if triton_dir is None:
        return
    try:
        paths = triton.write_repository(report, triton_dir)
    except (ExportError, OSError) as e:
        click.echo(f"error: {' '.join(str(e).split())}", err=True)
        sys.exit(EXIT_ERROR)
    for path in paths:
        click.echo(f"  wrote {path}  (Triton repository)")


if __name__ == "__main__":
    main()
