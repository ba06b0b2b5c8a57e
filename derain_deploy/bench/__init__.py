"""Throughput of backends x precisions x resolutions x batch sizes, against eager FP32 and the floor.

For every cell (resolution, batch) the eager FP32 PyTorch model runs first on the same device
and the same rainy input: it is the reference for both the speed-up and the parity check. The
floor is the time the model's arithmetic (FLOP per frame from ``DerainConfig.macs_per_pixel()``,
1 MAC = 2 FLOP) would take at the device's FP32 peak read from its properties (:mod:`.peak`):
``floor_ratio`` = measured / floor, the ratio targets use; it does not move between runs. Beside
it, ``probe_ratio`` is measured / the same FLOP at the rate a large FP32 matmul reached in the same
run with the same threads, and ``precision_floor_ratio`` uses the peak of the row's own precision
(bf16, int8) where the device has one.

Timing: ``warmup`` calls first (their first output serves the parity check), then repetitions
until both ``min_reps`` and the per-row ``budget_s`` are reached, or ``max_reps``. Each
repetition is one synchronous call (numpy in, numpy out; CUDA work is synchronized by the copy
back). Percentiles use numpy's linear interpolation: with few repetitions p99 is close to the max.

GPU rows: device memory is what ``cudaMemGetInfo`` (``torch.cuda.mem_get_info``) shows in use
after the row minus before the backend opened, so ONNX Runtime's arena and TensorRT's
activations count, not only torch's allocator (its peak is kept in ``details``); other processes
on the same GPU count too. The H2D / compute / D2H split is measured with CUDA events on the
backend's own stream, from and to pinned host buffers; compute is timed alone where the backend
runs a device tensor (``run_device``: torch, tensorrt), else it is the p50 minus the copies
(``details["gpu_split"]`` says which).

The package: :mod:`.report` (schema and rendering), :mod:`.machine` (machine info, versions,
probes), :mod:`.inputs` (the rainy input); this module is the timing runner.
"""

from __future__ import annotations

import datetime
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..backend_spec import EAGER_FP32, BackendSpec, Opener, export_specs, open_spec
from ..backends.base import Backend
from ..model import DerainNet
from ..parity import ParityResult, compare
from .floors import floor_ms, with_floors
from .gpu import gpu_split
from .inputs import PHOTOS, psnr_y_batch, rainy_batch, rainy_frame
from .machine import (
    SIMD_FLAGS,
    _peak_rss_mb,
    _reset_peak_rss,
    _sync,
    cuda_used_mb,
    machine_info,
    matmul_probe,
    usable_cores,
    versions,
)
from .peak import device_peak
from .report import FLOOR_RULE, SCHEMA, BenchError, BenchReport, BenchRow

CPU_RESOLUTIONS = ((256, 256), (480, 640), (720, 1280))
GPU_RESOLUTIONS = (*CPU_RESOLUTIONS, (1080, 1920))



@dataclass
class BenchSpec:
    """What to measure. ``resolutions`` None means the defaults (1080x1920 added on a GPU)."""

    backends: list[BackendSpec]
    resolutions: list[tuple[int, int]] | None = None
    batch_sizes: list[int] = field(default_factory=lambda: [1])
    warmup: int = 1
    min_reps: int = 3
    max_reps: int = 100
    budget_s: float = 8.0  # per row, after warm-up
    threads: int | None = None  # CPU threads for torch, ONNX Runtime and the probe; None: all usable cores
    check_parity: bool = False
    seed: int = 0
    probe_size: int = 2048
    probe_repeats: int = 20

    def resolved_resolutions(self) -> list[tuple[int, int]]:
        if self.resolutions:
            return [tuple(r) for r in self.resolutions]  # type: ignore[misc]
        gpu = any(s.is_cuda for s in self.backends)
        return list(GPU_RESOLUTIONS if gpu else CPU_RESOLUTIONS)


# ---------------------------------------------------------------- timing


def time_backend(
    backend: Backend, batch: np.ndarray, spec: BenchSpec, device: torch.device
) -> tuple[list[float], np.ndarray]:
    """(seconds per call for each repetition, the first warm-up output)."""
    first = None
    # GPUs need a few calls: cuDNN autotuning, TensorRT's first run, CUDA graph capture
    for _ in range(max(spec.warmup, 3 if device.type == "cuda" else 1)):
        out = backend(batch)
        first = out if first is None else first
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < spec.max_reps:
        _sync(device)
        t0 = time.perf_counter()
        backend(batch)
        _sync(device)
        times.append(time.perf_counter() - t0)
        if len(times) >= spec.min_reps and time.perf_counter() - start >= spec.budget_s:
            break
    assert first is not None
    return times, first


@dataclass
class Cell:
    """One row to measure: a backend spec on one (resolution, batch) with its input, against the
    eager FP32 reference of the same device and cell."""

    spec: BackendSpec
    height: int
    width: int
    batch: int
    rainy: np.ndarray  # Nx3xHxW float32
    clean: np.ndarray
    gflop_per_frame: float
    base_ms: float | None  # the reference's p50 (None while the reference itself is measured)
    is_reference: bool
    memory_base_mb: float | None = None  # CUDA rows: device memory in use before the backend opened


def _row(cell: Cell, backend: Backend, times: list[float], memory: tuple[float | None, str]) -> BenchRow:
    ms = np.array(times) * 1e3
    p50, p90, p99 = (float(np.percentile(ms, q)) for q in (50, 90, 99))
    spec_b, n = cell.spec, cell.batch
    return BenchRow(
        label=spec_b.label,
        backend=spec_b.backend,
        precision=getattr(backend.info, "precision", spec_b.precision),
        device=spec_b.device,
        graph=spec_b.graph if spec_b.descriptor.graph_forms else None,
        channels_last=spec_b.channels_last,
        cuda_graphs=spec_b.cuda_graphs,
        height=cell.height,
        width=cell.width,
        batch=n,
        reps=len(times),
        p50_ms=p50,
        p90_ms=p90,
        p99_ms=p99,
        mean_ms=float(ms.mean()),
        fps=1000.0 * n / p50,
        speedup_vs_eager=(cell.base_ms / p50) if cell.base_ms else 1.0,
        gflop_per_frame=cell.gflop_per_frame,
        gflops=n * cell.gflop_per_frame / (p50 / 1e3),
        floor_ms=None,
        floor_ratio=None,
        peak_memory_mb=memory[0],
        memory_kind=memory[1],
        baseline=cell.is_reference,
        details={
            k: Path(str(v)).name if k == "model" else v  # exported files live in a temporary folder
            for k, v in backend.info.details.items()
            if k in ("model", "providers", "threads", "channels_last", "cuda_graphs")
        },
    )


Log = Callable[[str], None]


def _reprobe(
    probes: dict[str, dict[str, float]],
    peaks: dict[str, dict[str, object]],
    spec: BenchSpec,
    rows: list[BenchRow],
    log: Log,
) -> None:
    """Probe the FP32 rate again after the rows and keep the faster run: one probe can land on a
    slow moment of a shared machine. Rows' probe ratios follow the kept rate (their floor, from
    the property peak, does not move)."""
    for key, first in list(probes.items()):
        if not key.endswith(":fp32"):
            continue
        device = key.rsplit(":", 1)[0]
        again = matmul_probe(device, int(first["n"]), spec.probe_repeats)
        best = max(first, again, key=lambda p: p["gflops"])
        probes[key] = {**best, "gflops_before": first["gflops"], "gflops_after": again["gflops"]}
        log(f"matmul probe on {device} again: {again['gflops']:.0f} GFLOP/s; kept {best['gflops']:.0f}")
        for i, row in enumerate(rows):
            if str(_torch_device(row.device)) == device:
                rows[i] = with_floors(row, peaks[device], best["gflops"])


def _ref_device(device: str) -> str:
    """Where the eager reference for a backend spec's device runs: cpu or cuda[:N] (tensorrt[:N])."""
    kind, sep, index = device.partition(":")
    return f"cuda{sep}{index}" if kind in ("cuda", "tensorrt") else "cpu"


def _torch_device(device: str) -> torch.device:
    """The torch device whose clock and memory a backend spec's device uses (cuda:N for tensorrt:N)."""
    kind, _, index = device.partition(":")
    if kind in ("cuda", "tensorrt"):
        return torch.device("cuda", int(index or 0))
    return torch.device("cpu")


def _measure(
    cell: Cell,
    backend: Backend,
    spec: BenchSpec,
    probes: dict[str, dict[str, float]],
    peaks: dict[str, dict[str, object]],
) -> tuple[BenchRow, np.ndarray]:
    """One row: time ``backend`` on ``cell``; also its first output."""
    tdev = _torch_device(cell.spec.device)
    rss_reset = _reset_peak_rss() if tdev.type == "cpu" else False
    if tdev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(tdev)
    times, first = time_backend(backend, cell.rainy, spec, tdev)
    if tdev.type == "cuda":
        used = cuda_used_mb(tdev) - (cell.memory_base_mb or 0.0)
        memory = (used, "cuda_device_used" if cell.memory_base_mb is not None else "cuda_device_total")
    else:
        memory = (_peak_rss_mb(), "rss" if rss_reset else "rss_process_lifetime")
    row = with_floors(_row(cell, backend, times, memory), peaks[str(tdev)], probes[f"{tdev}:fp32"]["gflops"])
    row.psnr_y_clean = psnr_y_batch(first, cell.clean)
    if tdev.type == "cuda":
        row.details["torch_allocated_peak_mb"] = torch.cuda.max_memory_allocated(tdev) / 2**20
        split = gpu_split(backend, cell.rainy, tdev)
        row.h2d_ms, row.d2h_ms = float(split["h2d_ms"]), float(split["d2h_ms"])  # type: ignore[arg-type]
        compute = split["compute_ms"]
        derived = max(row.p50_ms - row.h2d_ms - row.d2h_ms, 0.0)
        row.compute_ms = derived if compute is None else float(compute)  # type: ignore[arg-type]
        row.details["gpu_split"] = split["gpu_split"]
        half = probes.get(f"{tdev}:fp16")
        if half and row.precision in ("fp16", "bf16", "int8"):
            row.details["floor_ratio_fp16_probe"] = row.p50_ms / floor_ms(  # type: ignore[operator]
                cell.batch, cell.gflop_per_frame, half["gflops"])
    return row, first


def run_bench(
    spec: BenchSpec,
    model: DerainNet,
    opener: Opener = open_spec,
    log: Log | None = None,
    workdir: str | Path | None = None,
    weights: str = "in-memory model",
    later: Callable[[], list[BackendSpec]] | None = None,
) -> BenchReport:
    """Measure every backend in ``spec`` on ``model`` (plus eager FP32 per device as the reference).

    ``opener`` turns a :class:`BackendSpec` into a backend (the default exports ONNX files into
    ``workdir``, a temporary folder unless given). Every backend is opened once before anything
    is timed, so a backend that cannot run stops the bench at once. Errors propagate (no skips).
    ``later``: called once the rows of ``spec`` have printed, it gives more rows to measure (the
    quick bench's fastest rows, whose choice takes longer than the reference row)."""
    saved = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32, torch.get_num_threads())
    try:
        return _run_bench(spec, model, opener, log, workdir, weights, later)
    finally:  # the bench sets the thread count and turns TF32 off for CUDA: leave the process as it was
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved[:2]
        torch.set_num_threads(saved[2])


def _run_bench(
    spec: BenchSpec,
    model: DerainNet,
    opener: Opener,
    log: Log | None,
    workdir: str | Path | None,
    weights: str,
    later: Callable[[], list[BackendSpec]] | None,
) -> BenchReport:
    log = log or (lambda _msg: None)
    threads = spec.threads or usable_cores()
    torch.set_num_threads(threads)
    model = model.eval().cpu()
    resolutions = spec.resolved_resolutions()
    cells = [(h, w, n) for h, w in resolutions for n in spec.batch_sizes]
    devices = list(dict.fromkeys(_ref_device(s.device) for s in spec.backends))
    if any(s.is_cuda for s in spec.backends):
        # FP32 means FP32: no TF32 in the reference's convolutions (cuDNN allows it by default)
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    # the reference first: eager FP32 on each device (listed or not)
    order = [EAGER_FP32.with_device(d) for d in devices]
    order += [s for s in spec.backends if s not in order]
    macs = model.config.macs_per_pixel()
    gflops_of = {(h, w): 2 * macs * h * w / 1e9 for h, w in resolutions}
    rows: list[BenchRow] = []
    parity: list[ParityResult] = []
    reference: dict[tuple[str, int, int, int], tuple[float, np.ndarray]] = {}
    added: list[BackendSpec] = []  # the rows ``later`` gave
    probes: dict[str, dict[str, float]] = {}
    peaks: dict[str, dict[str, object]] = {}

    with tempfile.TemporaryDirectory(prefix="derain-bench-") as tmp:
        work = Path(workdir) if workdir else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        if opener is open_spec:  # the ONNX files the specs need, graph forms exported side by side
            export_specs(order, model, work, log)
        for bspec in order:  # fail fast; exported ONNX files stay in ``work`` for the timed pass
            log(f"checking {bspec.label} opens")
            opener(bspec, model, work).close()
        for d in dict.fromkeys(str(_torch_device(d)) for d in devices):
            n = max(spec.probe_size, 8192) if d.startswith("cuda") else spec.probe_size  # fill a GPU
            log(f"matmul probe on {d} ({n}^3" + (f", {threads} threads)" if d == "cpu" else ")"))
            probes[f"{d}:fp32"] = matmul_probe(d, n, spec.probe_repeats)
            if d.startswith("cuda"):
                probes[f"{d}:fp16"] = matmul_probe(d, n, spec.probe_repeats, torch.float16)
            peaks[d] = device_peak(d, threads)
            log(f"property peak on {d}: {peaks[d]['fp32_gflops']} GFLOP/s FP32 ({peaks[d]['basis']})")
        inputs = {(h, w, n): rainy_batch(h, w, n, spec.seed) for h, w, n in cells}  # (rainy, clean)

        def measure(bspec: BackendSpec) -> None:
            is_ref = bspec.backend == "torch" and bspec == EAGER_FP32.with_device(bspec.device)
            tdev = _torch_device(bspec.device)
            memory_base = cuda_used_mb(tdev) if tdev.type == "cuda" else None
            backend = opener(bspec, model, work)
            try:
                for h, w, n in cells:
                    key = (_ref_device(bspec.device), h, w, n)
                    base = reference.get(key)
                    cell = Cell(bspec, h, w, n, *inputs[(h, w, n)], gflops_of[(h, w)],
                                base[0] if base else None, is_ref, memory_base)  # fmt: skip
                    row, first = _measure(cell, backend, spec, probes, peaks)
                    if is_ref:
                        reference[key] = (row.p50_ms, first)
                    elif spec.check_parity and base is not None:
                        parity.append(compare(first, base[1], row.precision, bspec.label))
                    rows.append(row)
                    log(row.progress_line())
            finally:
                backend.close()

        for bspec in order:
            measure(bspec)
        if later is not None:  # rows chosen once the others (the reference first) have printed
            added = [s for s in later() if s not in order]
            for s in added:  # its device must have been probed and have its eager reference
                if _ref_device(s.device) not in devices:
                    raise BenchError(f"{s.label} runs on {s.device}, which has no eager reference in this "
                                     f"bench (add -b torch@{_ref_device(s.device)})")  # fmt: skip
            if opener is open_spec:
                export_specs(added, model, work, log)
            for bspec in added:  # opened once, when measured: the rows before them have printed
                measure(bspec)
        _reprobe(probes, peaks, spec, rows, log)

    return BenchReport(
        schema=SCHEMA,
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        machine=machine_info(),
        versions=versions(),
        model={
            "config": model.config.to_dict(),
            "parameters": model.num_parameters(),
            "macs_per_pixel": macs,
            "weights": weights,
        },
        settings={
            "threads": threads,
            "warmup": spec.warmup,
            "min_reps": spec.min_reps,
            "max_reps": spec.max_reps,
            "budget_s": spec.budget_s,
            "seed": spec.seed,
            "check_parity": spec.check_parity,
            "backends": [s.label for s in [*spec.backends, *added]],
            "resolutions": [list(r) for r in resolutions],
            "batch_sizes": list(spec.batch_sizes),
            "input": "rainy_frame(): scikit-image photos + heavy synthetic rain",
            "tf32": bool(torch.backends.cudnn.allow_tf32) if torch.cuda.is_available() else None,
            "floor": FLOOR_RULE,
        },
        probes=probes,
        peaks=peaks,
        rows=rows,
        parity=parity,
    )


__all__ = [
    "PHOTOS", "SCHEMA", "SIMD_FLAGS", "BenchError", "BenchReport", "BenchRow", "BenchSpec", "cuda_used_mb",
    "gpu_split", "machine_info", "matmul_probe", "psnr_y_batch", "rainy_batch", "rainy_frame", "run_bench",
    "time_backend", "usable_cores", "versions",
]  # fmt: skip
