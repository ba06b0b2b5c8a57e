"""The GPU table: the bundled model in plain PyTorch on CUDA, per precision, mode, size and batch,
then the pipeline overhead of ``derain-run`` on a short video. One run, under 10 minutes on one GPU.

    python benchmarks/gpu_bench.py --out benchmarks/results/gpu_bench_<card>.json [--dry-run]

Rows (run in this order; ``--precisions/--modes/--sizes/--batches/--layouts`` pick a subset):

- precisions: fp32 (cuDNN's and cuBLAS's TF32 off), tf32 (both on), fp16 (``.half()`` model and
  input), bf16 (``.to(torch.bfloat16)`` model and input, not autocast: the same graph eager,
  compiled and captured);
- modes: eager; graphs (``torch.cuda.graph`` capture on a static input after warm-up on a side
  stream, then ``CUDAGraph.replay``); compile (``torch.compile(mode="reduce-overhead",
  dynamic=False)``: Inductor's kernels replayed through its own CUDA graphs, one specialised
  graph per shape; ``max-autotune`` would spend minutes per shape on kernel searches, too long
  for a 10-minute run). Compile rows run last, each after ``torch._dynamo.reset()``, and record
  the first call (trace, compile, capture) as ``compile_s`` apart from the timed calls;
- sizes 720x1280 and 1080x1920, batches 1, 4 and 8, layout channels_last.

Each row: ``--warmup`` calls, then calls until ``--row-budget`` seconds (at least ``--min-reps``,
at most ``--max-reps``), each timed with CUDA events and synchronised (time.perf_counter on the
CPU); p50/p90 ms per batch, frames/s at the p50, the row's peak ``torch.cuda.max_memory_allocated``
(less what was held before it: the parity references) and parity against the fp32 eager row of
the same size and batch (PSNR dB and max abs, judged by derain_deploy.parity.TOLERANCES). A row
is skipped with its reason when it needs CUDA on the CPU (graphs, tf32, fp16: "skipped: needs
CUDA") or when the overall ``--deadline`` (default 540 s) leaves less than its budget, plus the
longest compile so far (30 s before the first) for a compile row ("skipped: deadline"); rerun
with ``--modes compile`` for the compile rows a full run did not reach. Before the compile rows a
synthetic clip goes through ``derain-run --backend torch --device <device>``, and its frames/s
are compared with the torch backend's own on the same frames. Writes one JSON to ``--out`` and a
Markdown table beside it. ``--device cpu`` at tiny sizes tests the script without a GPU.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from derain_deploy.atomic import write_atomic
from derain_deploy.backends import open_backend
from derain_deploy.backends.torch_backend import resolve_torch_device, tf32_mode, tf32_setting
from derain_deploy.bench.inputs import rainy_batch
from derain_deploy.bench.machine import machine_info, versions
from derain_deploy.output_guard import check_writes
from derain_deploy.parity import TOLERANCES
from derain_deploy.pipeline import run as run_pipeline
from derain_deploy.streams import open_sink, open_source
from derain_deploy.streams.synthetic import rainy_clip, write_test_video
from derain_deploy.weights import default_weights_path, load_weights

ROOT = Path(__file__).resolve().parent.parent
PRECISIONS = ("fp32", "tf32", "fp16", "bf16")
MODES = ("eager", "graphs", "compile")  # the run order; compile last (its compile time is unbounded)
LAYOUTS = ("channels_last", "nchw")
COMPILE_MODE = "reduce-overhead"
CUDA_ONLY = {
    "graphs": "CUDA graphs",
    "tf32": "TF32 is a CUDA switch",
    "fp16": "torch's FP16 runs on CUDA only",
}
DTYPES = {"fp32": torch.float32, "tf32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class Row:
    precision: str
    mode: str
    layout: str
    size: tuple[int, int]
    batch: int

    @property
    def label(self) -> str:
        return f"{self.precision} {self.mode} {self.layout} {self.size[0]}x{self.size[1]} b{self.batch}"

    @property
    def is_reference(self) -> bool:
        return self.precision == "fp32" and self.mode == "eager"


def plan(args: argparse.Namespace) -> list[Row]:
    """Every row, in run order: mode, then size, batch, layout, precision."""
    return [
        Row(p, m, lay, s, b)
        for m in args.modes
        for s in args.sizes
        for b in args.batches
        for lay in args.layouts
        for p in args.precisions
    ]


def cuda_only_reason(row: Row, device: torch.device) -> str | None:
    if device.type == "cuda":
        return None
    need = CUDA_ONLY.get(row.mode) or CUDA_ONLY.get(row.precision)
    return f"skipped: needs CUDA ({need})" if need else None


# ---------------------------------------------------------------- one row


class Bench:
    """The models, inputs and parity references shared by the rows, and the deadline."""

    def __init__(self, args: argparse.Namespace, device: torch.device, deadline: float) -> None:
        self.args, self.device, self.deadline = args, device, deadline
        self.base = load_weights(args.weights).float().eval()
        self.inputs: dict[tuple[int, int], torch.Tensor] = {}
        self.refs: dict[tuple[tuple[int, int], int], torch.Tensor] = {}
        self.compiles: list[float] = []  # seconds per compile so far

    def compile_estimate(self) -> float:
        """The longest compile so far; before the first, a guess of 30 s on a GPU."""
        return max(self.compiles, default=30.0 if self.device.type == "cuda" else 0.0)

    def left(self) -> float:
        return self.deadline - time.perf_counter()

    def model(self, precision: str, layout: str) -> torch.nn.Module:
        net = copy.deepcopy(self.base).to(self.device, DTYPES[precision])
        return net.to(memory_format=memory_format(layout))

    def input(self, row: Row) -> torch.Tensor:
        if row.size not in self.inputs:  # one rainy batch per size, sliced per batch
            rainy, _ = rainy_batch(*row.size, max(self.args.batches), seed=1)
            self.inputs[row.size] = torch.from_numpy(rainy)
        x = self.inputs[row.size][: row.batch].to(self.device, DTYPES[row.precision])
        return x.contiguous(memory_format=memory_format(row.layout))

    def reference(self, row: Row) -> torch.Tensor:
        """Eager fp32 (TF32 off) on the first layout; computed untimed when its row is not run."""
        key = (row.size, row.batch)
        if key not in self.refs:
            ref_row = Row("fp32", "eager", self.args.layouts[0], row.size, row.batch)
            with torch.no_grad(), tf32_mode(tf32_setting(self.device.type, "fp32")):
                self.refs[key] = self.model("fp32", ref_row.layout)(self.input(ref_row)).float()
        return self.refs[key]

    def run(self, row: Row) -> dict[str, object]:
        record: dict[str, object] = {
            "precision": row.precision,
            "mode": row.mode,
            "layout": row.layout,
            "size": f"{row.size[0]}x{row.size[1]}",
            "batch": row.batch,
        }
        need = self.args.row_budget + (self.compile_estimate() if row.mode == "compile" else 0.0)
        status = cuda_only_reason(row, self.device)
        cuda = self.device.type == "cuda"
        if status is None and row.precision == "bf16" and cuda and not torch.cuda.is_bf16_supported():
            status = f"skipped: {torch.cuda.get_device_name(self.device)} has no bf16"
        if status is None and self.left() < need:
            status = f"skipped: deadline ({max(self.left(), 0):.0f} s left, the row needs ~{need:.0f} s)"
        if status is None:
            try:
                record.update(self._timed(row))
                status = "ok"
            except Exception as e:  # one row's failure (out of memory, a compile error) is its status
                status = f"failed: {one_line(e)}"
            finally:
                if row.mode == "compile":
                    torch._dynamo.reset()
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
        record["status"] = status
        return record

    def _timed(self, row: Row) -> dict[str, object]:
        cuda = self.device.type == "cuda"
        ref = None if row.is_reference and row.layout == self.args.layouts[0] else self.reference(row)
        if cuda:  # the row's own peak: the references kept for parity are not its memory
            held = torch.cuda.memory_allocated(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        extra: dict[str, object] = {}
        with torch.no_grad(), tf32_mode(tf32_setting(self.device.type, row.precision)):
            net, x = self.model(row.precision, row.layout), self.input(row)
            call = self._callable(row, net, x, extra)
            times, out = self._time(call)
            out = out.float()
            if cuda:  # what the row ran with, read back (not what was asked)
                extra["tf32"] = [torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32]
        p50, p90 = (float(np.percentile(times, q)) for q in (50, 90))
        record: dict[str, object] = {
            "p50_ms": round(p50, 3),
            "p90_ms": round(p90, 3),
            "frames_per_s": round(row.batch * 1000 / p50, 2),
            "reps": len(times),
            "timer": "cuda_events" if cuda else "perf_counter",
            "peak_mem_mib": round((torch.cuda.max_memory_allocated(self.device) - held) / 2**20, 1)
            if cuda
            else None,
            **extra,
        }
        if ref is None:
            self.refs[(row.size, row.batch)] = out
            record["parity"] = "reference"
        else:
            record["parity"] = parity(out, ref, row.precision)
        return record

    def _callable(
        self, row: Row, net: torch.nn.Module, x: torch.Tensor, extra: dict[str, object]
    ) -> Callable[[], torch.Tensor]:
        if row.mode == "eager":
            return lambda: net(x)
        if row.mode == "graphs":
            side = torch.cuda.Stream(self.device)  # warm-up off the capture stream (torch.cuda.graph docs)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                for _ in range(max(self.args.warmup, 1)):
                    net(x)
            torch.cuda.current_stream(self.device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            start = time.perf_counter()
            with torch.cuda.graph(graph):
                y = net(x)
            torch.cuda.synchronize(self.device)
            extra["capture_s"] = round(time.perf_counter() - start, 3)
            return lambda: (graph.replay(), y)[1]
        torch._dynamo.reset()
        compiled = torch.compile(net, mode=COMPILE_MODE, dynamic=False)
        step = getattr(torch.compiler, "cudagraph_mark_step_begin", lambda: None)

        def call() -> torch.Tensor:
            step()  # a new inference step: the previous output may be overwritten
            return compiled(x)

        start = time.perf_counter()
        call()
        sync(self.device)
        extra["compile_s"] = round(time.perf_counter() - start, 2)
        extra["compile_mode"] = COMPILE_MODE
        self.compiles.append(extra["compile_s"])  # type: ignore[arg-type]
        return call

    def _time(self, call: Callable[[], torch.Tensor]) -> tuple[list[float], torch.Tensor]:
        """Milliseconds per call after the warm-up, within the row budget and the deadline."""
        args, cuda = self.args, self.device.type == "cuda"
        for _ in range(args.warmup):
            call()
        sync(self.device)
        stop = min(time.perf_counter() + args.row_budget, self.deadline)
        times: list[float] = []

        def more() -> bool:
            now = time.perf_counter()
            if not times:
                return True
            return (
                len(times) < args.max_reps
                and now < self.deadline
                and (len(times) < args.min_reps or now < stop)
            )

        while more():
            if cuda:
                begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                begin.record()
                out = call()
                end.record()
                end.synchronize()
                times.append(begin.elapsed_time(end))
            else:
                t0 = time.perf_counter()
                out = call()
                times.append((time.perf_counter() - t0) * 1000)
        return times, out.clone()


def memory_format(layout: str) -> torch.memory_format:
    return torch.channels_last if layout == "channels_last" else torch.contiguous_format


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def parity(out: torch.Tensor, ref: torch.Tensor, precision: str) -> dict[str, object]:
    """PSNR (dB, peak 1) and max abs of ``out`` against ``ref``, judged by ``precision``'s rule."""
    metric, threshold = TOLERANCES[precision]
    finite = bool(torch.isfinite(out).all())
    diff = out.double() - ref.double()
    max_abs = float(diff.abs().max()) if finite else math.inf
    mse = float((diff * diff).mean()) if finite else math.inf
    psnr = math.inf if mse == 0 else 10 * math.log10(1 / mse) if finite else -math.inf
    ok = finite and (max_abs <= threshold if metric == "max_abs" else psnr >= threshold)
    return {
        "psnr_db": round(psnr, 2) if math.isfinite(psnr) else None,
        "max_abs": float(f"{max_abs:.3g}") if math.isfinite(max_abs) else None,
        "rule": f"{metric} {'<=' if metric == 'max_abs' else '>='} {threshold:g}",
        "passed": ok,
    }


# ---------------------------------------------------------------- the video


def video(args: argparse.Namespace, device: torch.device, deadline: float) -> dict[str, object]:
    """A synthetic clip through the torch backend alone, through ``pipeline.run`` (decode, backend,
    encode: what derain-run runs per video) and through ``derain-run`` itself."""
    (h, w), n, batch = args.video_size, args.video_frames, args.video_batch
    record: dict[str, object] = {"size": f"{h}x{w}", "frames": n, "batch": batch}
    if deadline - time.perf_counter() < args.row_budget + 20:
        return {
            **record,
            "status": f"skipped: deadline ({max(deadline - time.perf_counter(), 0):.0f} s left)",
        }
    with tempfile.TemporaryDirectory() as tmp:
        rainy, _ = rainy_clip(frames=n, size=(h, w), preset="medium")
        clip = write_test_video(Path(tmp) / "rainy.mp4", rainy, fps=25)
        backend = open_backend("torch", args.weights, str(device))
        xs = [np.stack(rainy[i : i + batch]).transpose(0, 3, 1, 2) for i in range(0, n, batch)]
        backend(xs[0])  # two warm-up calls
        backend(xs[0])
        start = time.perf_counter()
        for x in xs:
            backend(x)
        model_fps = n / (time.perf_counter() - start)
        source = open_source(str(clip))
        sink = open_sink(source.info, Path(tmp) / "pipeline.mp4")
        stats = run_pipeline(source, backend, sink, batch=batch, progress=False)
        backend.close()
        cmd = [sys.executable, "-m", "derain_deploy.cli_run", str(clip), "-o", str(Path(tmp) / "out.mp4")]
        cmd += ["--backend", "torch", "--device", str(device), "--batch", str(batch), "-q", "--json"]
        cmd += ["--model", str(args.weights)]
        path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        start = time.perf_counter()
        done = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": path},
            timeout=max(deadline - start, 30),
        )
        wall = time.perf_counter() - start
    record.update(
        backend=backend.info.describe(),
        model_only_fps=round(model_fps, 2),
        pipeline_fps=round(stats.frames / stats.seconds, 2),
        pipeline_vs_model=round(stats.frames / stats.seconds / model_fps, 3),
        command=shlex.join(cmd),
    )
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or [""])[-1]
        return {**record, "status": f"failed: derain-run exited {done.returncode}: {tail}"}
    summary = json.loads(done.stdout)
    return {
        **record,
        "status": "ok",
        "derain_run_fps": summary["fps"],
        "derain_run_frames": summary["frames"],
        "derain_run_wall_s": round(wall, 2),
        "how": "model_only_fps: the torch backend derain-run opens (fp32, channels_last, numpy in and out) "
        "on the clip's frames after 2 warm-up calls; pipeline_fps: pipeline.run with that backend (PyAV "
        "decode, backend, x264 encode), as derain-run runs each video; derain_run_fps: derain-run's own "
        "summary, which includes opening the backend; derain_run_wall_s adds the process start",
    }


# ---------------------------------------------------------------- output


def one_line(e: BaseException) -> str:
    return f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:300]}"


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def parity_cell(par: object) -> str:
    if not isinstance(par, dict):
        return str(par or "")
    psnr = par["psnr_db"] if par["psnr_db"] is not None else ("inf" if par["passed"] else "non-finite")
    max_abs = f"{par['max_abs']:.1e}" if par["max_abs"] is not None else "-"
    return f"{psnr} dB / {max_abs} {'ok' if par['passed'] else 'FAIL'}"


COLUMNS = ("precision", "mode", "layout", "size", "batch", "p50 ms", "p90 ms", "frames/s", "peak MiB",
           "parity", "compile s", "status")  # fmt: skip


def markdown(result: dict) -> str:
    lines = [f"# GPU bench: {result['device_name']}", "", result["how"]["summary"], ""]
    lines += ["| " + " | ".join(COLUMNS) + " |", "|---|---|---|---|---:|---:|---:|---:|---:|---|---:|---|"]
    for r in result["rows"]:
        cells = [r["precision"], r["mode"], r["layout"], r["size"], r["batch"], r.get("p50_ms", ""),
                 r.get("p90_ms", ""), r.get("frames_per_s", ""), r.get("peak_mem_mib") or "",
                 parity_cell(r.get("parity")), r.get("compile_s", ""), r["status"]]  # fmt: skip
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    v = result["video"]
    lines += ["", f"Video ({v['size']}, {v['frames']} frames, batch {v['batch']}): {v['status']}"]
    if v["status"] == "ok":
        lines.append(
            f"Backend alone {v['model_only_fps']} frames/s; decode, backend and encode (pipeline.run) "
            f"{v['pipeline_fps']} frames/s (ratio {v['pipeline_vs_model']}); derain-run "
            f"{v['derain_run_fps']} frames/s with the backend's opening, {v['derain_run_wall_s']} s "
            "with the process start."
        )
    return "\n".join(lines) + "\n"


def gpu_info(device: torch.device) -> dict[str, object] | None:
    if device.type != "cuda":
        return None
    props = torch.cuda.get_device_properties(device)
    return {
        "name": torch.cuda.get_device_name(device),
        "capability": ".".join(map(str, torch.cuda.get_device_capability(device))),
        "memory_gib": round(props.total_memory / 2**30, 1),
        "multiprocessors": props.multi_processor_count,
    }


def how(args: argparse.Namespace, device: torch.device) -> dict[str, object]:
    compile_how = f"torch.compile(mode={COMPILE_MODE!r}, dynamic=False)"
    return {
        "summary": f"torch {torch.__version__}, {device}; ms per batch (p50/p90 of synchronised calls "
        f"after {args.warmup} warm-up calls, {args.row_budget:g} s per row); parity vs fp32 eager "
        f"{args.layouts[0]} (TF32 off); compile: {compile_how}",
        "fp32": "cudnn.allow_tf32 and cuda.matmul.allow_tf32 off; tf32: both on",
        "fp16": ".half() model and input",
        "bf16": ".to(torch.bfloat16) model and input (not autocast)",
        "graphs": "torch.cuda.graph capture on a static input after warm-up on a side stream; replay",
        "compile": f"{compile_how} after torch._dynamo.reset(); compile_s: the first call "
        "(trace, compile, graph capture), not in the timed calls",
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
    }


# ---------------------------------------------------------------- arguments


def size_list(text: str) -> list[tuple[int, int]]:
    sizes = []
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d+)x(\d+)\s*", part)
        if not m or min(int(m[1]), int(m[2])) < 8:
            raise ValueError(f"bad size {part.strip()!r}; expected HxW such as 720x1280, each >= 8")
        sizes.append((int(m[1]), int(m[2])))
    return sizes


def choice_list(text: str, known: tuple[str, ...], what: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [t for t in items if t not in known]
    if unknown or not items:
        raise ValueError(f"unknown {what} {', '.join(unknown) or '(none given)'}; known: {', '.join(known)}")
    return items


def int_list(text: str) -> list[int]:
    try:
        values = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise ValueError(f"bad batches {text!r}; expected positive integers such as 1,4,8")
    return values


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (cpu: a test of the script).")
    p.add_argument("--out", type=Path, help="JSON path [default: benchmarks/results/gpu_bench_<gpu>.json].")
    p.add_argument("--weights", type=Path, help="A .safetensors file [default: the bundled model].")
    p.add_argument("--precisions", default=",".join(PRECISIONS))
    p.add_argument("--modes", default=",".join(MODES), help="eager, graphs, compile (run in that order).")
    p.add_argument("--sizes", default="720x1280,1080x1920")
    p.add_argument("--batches", default="1,4,8")
    p.add_argument("--layouts", default="channels_last", help="channels_last, nchw.")
    p.add_argument("--deadline", type=float, default=540.0, help="Seconds for the whole run [540].")
    p.add_argument("--row-budget", type=float, default=3.0, help="Timed seconds per row [3].")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--min-reps", type=int, default=5)
    p.add_argument("--max-reps", type=int, default=50)
    p.add_argument("--video-size", default="720x1280")
    p.add_argument("--video-frames", type=int, default=48, help="0: no video step.")
    p.add_argument("--video-batch", type=int, default=1)
    p.add_argument("--dry-run", action="store_true", help="Print the rows and run nothing.")
    args = p.parse_args(argv)
    args.precisions = choice_list(args.precisions, PRECISIONS, "precision(s)")
    args.modes = [m for m in MODES if m in choice_list(args.modes, MODES, "mode(s)")]
    args.layouts = choice_list(args.layouts, LAYOUTS, "layout(s)")
    args.sizes, args.batches = size_list(args.sizes), int_list(args.batches)
    (args.video_size,) = size_list(args.video_size)
    args.weights = args.weights or default_weights_path()
    if not args.weights.is_file():
        raise ValueError(f"no weights file at {args.weights}")
    if min(args.deadline, args.row_budget, args.warmup, args.video_frames) < 0:
        raise ValueError("--deadline, --row-budget, --warmup and --video-frames must be >= 0")
    if min(args.min_reps, args.max_reps, args.video_batch) < 1:
        raise ValueError("--min-reps, --max-reps and --video-batch must be >= 1")
    return args


def print_plan(args: argparse.Namespace) -> None:
    rows = plan(args)
    print(f"gpu bench: {len(rows)} rows on {args.device} within {args.deadline:.0f} s, in this order")
    for i, row in enumerate(rows, 1):
        need = CUDA_ONLY.get(row.mode) or CUDA_ONLY.get(row.precision)
        note = f" (needs CUDA: {need})" if need and not args.device.startswith("cuda") else ""
        print(f"row {i}: {row.label}{note}")
    (h, w), n = args.video_size, args.video_frames
    print(
        f"video: derain-run --backend torch --device {args.device} on {n} frames {h}x{w}, "
        f"batch {args.video_batch}, vs the backend alone (before the compile rows)"
    )


# ---------------------------------------------------------------- main


def run_video(args: argparse.Namespace, device: torch.device, bench: Bench) -> dict[str, object]:
    (h, w), n = args.video_size, args.video_frames
    stub = {"size": f"{h}x{w}", "frames": n, "batch": args.video_batch}
    try:
        result = video(args, device, bench.deadline) if n else {**stub, "status": "skipped: --video-frames 0"}
    except Exception as e:
        result = {**stub, "status": f"failed: {one_line(e)}"}
    print(f"video: {result['status']}", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    t0 = time.perf_counter()
    try:
        args = parse(argv)
        if args.dry_run:
            print_plan(args)
            return 0
        if args.out:
            check_writes({"--out": args.out, "--out (Markdown)": args.out.with_suffix(".md")}, [args.weights])
        device = resolve_torch_device(args.device)
        bench = Bench(args, device, t0 + args.deadline)  # loads the weights
    except (ValueError, RuntimeError) as e:  # BackendError is a RuntimeError, WeightsError a ValueError
        print(f"error: {e}", file=sys.stderr)
        return 2
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else str(machine_info()["cpu"])
    out = args.out or ROOT / "benchmarks" / "results" / f"gpu_bench_{slug(name)}.json"
    torch.backends.cudnn.benchmark = device.type == "cuda"
    rows: list[dict[str, object]] = []
    video_result = None
    for row in plan(args):
        if row.mode == "compile" and video_result is None:
            video_result = run_video(args, device, bench)
        r = bench.run(row)
        rows.append(r)
        timing = f" p50 {r['p50_ms']} ms, {r['frames_per_s']} frames/s" if r["status"] == "ok" else ""
        print(f"{row.label}: {r['status']}{timing}", flush=True)
    if video_result is None:
        video_result = run_video(args, device, bench)
    result = {
        "what": "the bundled DerainNet in plain PyTorch (precision x mode x size x batch), then derain-run",
        "device": str(device),
        "device_name": name,
        "gpu": gpu_info(device),
        "how": how(args, device),
        "args": {k: v for k, v in vars(args).items() if k not in ("out", "dry_run")},
        "machine": machine_info(),
        "versions": {**versions(), "torch": torch.__version__, "cudnn": torch.backends.cudnn.version()},
        "rows": rows,
        "video": video_result,
        "elapsed_s": round(time.perf_counter() - t0, 1),
    }
    write_atomic(out, json.dumps(result, indent=2, default=str) + "\n")
    write_atomic(out.with_suffix(".md"), markdown(result))
    print(f"gpu bench: wrote {out} and {out.with_suffix('.md')} ({result['elapsed_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
