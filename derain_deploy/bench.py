"""Throughput of backends x precisions x resolutions x batch sizes, against eager FP32 and the floor.

For every cell (resolution, batch) the eager FP32 PyTorch model runs first on the same device
and the same rainy input: it is the reference for both the speed-up and the parity check. The
floor is the time the model's arithmetic would take at the rate a large FP32 matmul reaches on
the same device with the same threads, measured in the same run (FLOP per frame from
``DerainConfig.macs_per_pixel()``, 1 MAC = 2 FLOP); ``floor_ratio`` = measured / floor.

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
"""

from __future__ import annotations

import dataclasses
import datetime
import itertools
import json
import math
import os
import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

from .backend_spec import EAGER_FP32, BackendSpec, Opener, open_spec
from .backends import registry
from .backends.base import Backend
from .cpu import cpu_model_and_flags
from .model import DerainNet
from .parity import ParityResult, compare

SCHEMA = "derain-bench/1"
CPU_RESOLUTIONS = ((256, 256), (480, 640), (720, 1280))
GPU_RESOLUTIONS = (*CPU_RESOLUTIONS, (1080, 1920))


class BenchError(RuntimeError):
    """A bench output that cannot be made (e.g. a plot without matplotlib); one line."""


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


@dataclass
class BenchRow:
    label: str
    backend: str
    precision: str
    device: str
    graph: str | None
    channels_last: bool
    cuda_graphs: bool
    height: int
    width: int
    batch: int
    reps: int
    p50_ms: float  # per call (one batch)
    p90_ms: float
    p99_ms: float
    mean_ms: float
    fps: float  # frames per second at the median
    speedup_vs_eager: float
    gflop_per_frame: float
    gflops: float  # achieved GFLOP/s at the median
    floor_ms: float  # per call at the probe's rate
    floor_ratio: float
    peak_memory_mb: float | None
    memory_kind: str  # "rss" (process high-water mark during the row) or "cuda_allocated"
    baseline: bool = False
    psnr_y_clean: float | None = None  # of the output against the clean frames (rain was synthetic)
    h2d_ms: float | None = None
    d2h_ms: float | None = None
    compute_ms: float | None = None  # p50 minus the measured copies (GPU only)
    details: dict[str, object] = field(default_factory=dict)


@dataclass
class BenchReport:
    schema: str
    created: str
    machine: dict[str, object]
    versions: dict[str, str | None]
    model: dict[str, object]
    settings: dict[str, object]
    probes: dict[str, dict[str, float]]
    rows: list[BenchRow]
    parity: list[ParityResult] = field(default_factory=list)

    @property
    def parity_ok(self) -> bool:
        return all(p.passed for p in self.parity)

    def to_dict(self) -> dict[str, object]:
        d = {k: v for k, v in dataclasses.asdict(self).items() if k not in ("rows", "parity")}
        d["rows"] = [_finite(dataclasses.asdict(r)) for r in self.rows]
        d["parity"] = [p.to_dict() for p in self.parity]
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str)

    def table(self) -> str:
        """A plain-text table for the terminal."""
        head = [
            "backend",
            "size",
            "batch",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "fps",
            "x eager",
            "GFLOP/s",
            "x floor",
            "peak MB",
            "PSNR_Y",
            "reps",
        ]
        lines = [
            [
                r.label,
                f"{r.height}x{r.width}",
                str(r.batch),
                f"{r.p50_ms:.1f}",
                f"{r.p90_ms:.1f}",
                f"{r.p99_ms:.1f}",
                f"{r.fps:.2f}",
                f"{r.speedup_vs_eager:.2f}",
                f"{r.gflops:.1f}",
                f"{r.floor_ratio:.2f}",
                "-" if r.peak_memory_mb is None else f"{r.peak_memory_mb:.0f}",
                "-" if r.psnr_y_clean is None else f"{r.psnr_y_clean:.2f}",
                str(r.reps),
            ]
            for r in self.rows
        ]
        widths = [max(len(x) for x in col) for col in zip(head, *lines)]

        def fmt(cells: list[str]) -> str:
            return "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))
            )

        out = [self.summary_line(), fmt(head), fmt(["-" * w for w in widths]), *map(fmt, lines)]
        gpu_rows = [r for r in self.rows if r.h2d_ms is not None]
        if gpu_rows:
            out.append(
                "GPU split (ms per call): "
                + "; ".join(
                    f"{r.label} {r.height}x{r.width} b{r.batch}: H2D {r.h2d_ms:.2f}, "
                    f"compute {r.compute_ms:.2f}, D2H {r.d2h_ms:.2f}"
                    for r in gpu_rows
                )
            )
        out.extend(p.describe() for p in self.parity)
        return "\n".join(out)

    def summary_line(self) -> str:
        m, probes = self.machine, self.probes
        probe = ", ".join(f"{k} {v['gflops']:.0f} GFLOP/s" for k, v in probes.items())
        gpu = f", GPU {m['gpu']}" if m.get("gpu") else ""
        return (
            f"{m['cpu']} ({m['cores_usable']} cores{gpu}); matmul probe: {probe}; "
            f"torch {self.versions.get('torch')}, onnxruntime {self.versions.get('onnxruntime')}, "
            f"openvino {self.versions.get('openvino') or 'not installed'}"
        )

    def to_markdown(self) -> str:
        """A Markdown table with the machine, versions and probe above it."""
        v = self.versions
        features = " ".join(self.machine.get("cpu_features") or []) or "no SIMD flags read"  # type: ignore[arg-type]
        lines = [
            f"Machine: {self.machine['cpu']} ({features}), "
            f"{self.machine['cores_usable']} cores used"
            + (f", GPU {self.machine['gpu']}" if self.machine.get("gpu") else "")
            + f" ({self.created[:10]}).",
            f"Versions: torch {v.get('torch')}, onnxruntime {v.get('onnxruntime')}, onnx {v.get('onnx')}, "
            f"openvino {v.get('openvino') or 'not installed'}, "
            f"TensorRT {v.get('tensorrt') or 'not installed'}.",
            "Floor: FLOP per frame / "
            + ", ".join(f"{k} matmul probe {p['gflops']:.0f} GFLOP/s" for k, p in self.probes.items())
            + f"; model {self.model['macs_per_pixel']:,} MAC/pixel. Times are medians of `reps` calls.",
            f"Weights: {self.model['weights']}. Input: {self.settings.get('input')}; PSNR_Y is the output's "
            "against the clean photo (8-bit, Y of YCbCr, peak 255).",
            "",
            "| backend | size | batch | ms/frame p50 | ms/frame p90 | frames/s | vs eager FP32 | GFLOP/s "
            "| x floor | peak MB | PSNR_Y vs clean | parity vs eager FP32 |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        parity = {(p.label, tuple(p.shape)): p for p in self.parity}
        for r in self.rows:
            p = parity.get((r.label, (r.batch, 3, r.height, r.width)))
            check = "reference" if r.baseline else ("-" if p is None else _parity_cell(p))
            mem = "-" if r.peak_memory_mb is None else f"{r.peak_memory_mb:.0f}"
            quality = "-" if r.psnr_y_clean is None else f"{r.psnr_y_clean:.2f} dB"
            lines.append(
                f"| {r.label} | {r.height}x{r.width} | {r.batch} | {r.p50_ms / r.batch:.1f} "
                f"| {r.p90_ms / r.batch:.1f} "
                f"| {r.fps:.2f} | {r.speedup_vs_eager:.2f}x | {r.gflops:.0f} | {r.floor_ratio:.2f} | {mem} "
                f"| {quality} | {check} |"
            )
        return "\n".join(lines) + "\n"

    def plot(self, path: str | Path) -> Path:
        """A PNG: frames/s per backend, grouped by resolution (log scale), the floor as a line."""
        try:
            import matplotlib
        except ImportError:
            raise BenchError("--plot needs matplotlib: pip install matplotlib") from None
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        cells = sorted({(r.height, r.width, r.batch) for r in self.rows})
        labels = list(dict.fromkeys(r.label for r in self.rows))
        fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(cells) * max(1, len(labels)) / 3), 4.5))
        width = 0.8 / len(labels)
        for j, label in enumerate(labels):
            fps = [
                next(
                    (r.fps for r in self.rows if r.label == label and (r.height, r.width, r.batch) == c), 0.0
                )
                for c in cells
            ]
            ax.bar(
                [i + (j - (len(labels) - 1) / 2) * width for i in range(len(cells))], fps, width, label=label
            )
        for i, c in enumerate(cells):
            row = next(r for r in self.rows if (r.height, r.width, r.batch) == c)
            floor_fps = 1000.0 * row.batch / row.floor_ms
            ax.hlines(
                floor_fps,
                i - 0.45,
                i + 0.45,
                colors="k",
                linestyles="--",
                label="floor (matmul rate)" if i == 0 else None,
            )
        ax.set_xticks(range(len(cells)))
        ax.set_xticklabels([f"{h}x{w}" + (f" b{b}" if b > 1 else "") for h, w, b in cells])
        ax.set_yscale("log")
        ax.set_ylabel("frames/s")
        ax.set_title(
            f"derain-bench: {self.machine['cpu']}"
            + (f" / {self.machine['gpu']}" if self.machine.get("gpu") else ""),
            fontsize=9,
        )
        ax.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.08), frameon=False)
        fig.tight_layout()
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp.png")
        fig.savefig(tmp, dpi=110)
        plt.close(fig)
        os.replace(tmp, path)
        return path


def _parity_cell(p: ParityResult) -> str:
    value = f"{p.max_abs:.1e} max abs" if p.metric == "max_abs" else f"{p.psnr_db:.1f} dB"
    return value + ("" if p.passed else " FAIL")


def _finite(d: dict[str, object]) -> dict[str, object]:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


# ---------------------------------------------------------------- machine, versions, probe


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


SIMD_FLAGS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_vnni",
    "avx512_bf16",
    "avx_vnni",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)


def machine_info() -> dict[str, object]:
    """CPU model and SIMD features (/proc/cpuinfo), cores, memory, GPU names."""
    cpu, flags = cpu_model_and_flags()
    mem_gb = None
    try:
        with open("/proc/meminfo") as f:
            kb = next(int(l.split()[1]) for l in f if l.startswith("MemTotal"))
        mem_gb = round(kb / 2**20, 1)
    except (OSError, StopIteration, ValueError):
        pass
    gpu = None
    if torch.cuda.is_available():
        gpu = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    return {
        "cpu": cpu,
        "cpu_features": [f for f in SIMD_FLAGS if f in flags],
        "cores_logical": os.cpu_count(),
        "cores_usable": usable_cores(),
        "memory_gb": mem_gb,
        "gpu": gpu,
        "hostname": platform.node(),
        "os": platform.platform(),
        "python": platform.python_version(),
    }


def _dist_version(*names: str) -> str | None:
    for name in names:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def versions() -> dict[str, str | None]:
    """Installed versions (read from package metadata: nothing heavy is imported)."""
    found: dict[str, str | None] = {"derain-deploy": _dist_version("derain-deploy")}
    found.update({d.name: d.version() for d in registry.descriptors()})  # each backend's runtime
    found.update({"torch_cuda": torch.version.cuda, "onnx": _dist_version("onnx"), "numpy": np.__version__})
    return found


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_probe(
    device: str = "cpu", n: int = 2048, repeats: int = 5, dtype: torch.dtype = torch.float32
) -> dict[str, float]:
    """Best achieved GFLOP/s of an n x n x n matmul (2 n^3 FLOP) over ``repeats`` runs, using the
    current torch thread count on the CPU; TF32 off for FP32 on a GPU."""
    dev = torch.device(device)
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=g).to(dev, dtype)
    b = torch.randn(n, n, generator=g).to(dev, dtype)
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        torch.mm(a, b)  # warm-up
        _sync(dev)
        best = math.inf
        for _ in range(repeats):
            t0 = time.perf_counter()
            torch.mm(a, b)
            _sync(dev)
            best = min(best, time.perf_counter() - t0)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32
    return {
        "gflops": 2 * n**3 / best / 1e9,
        "n": n,
        "repeats": repeats,
        "best_ms": best * 1e3,
        "threads": torch.get_num_threads() if dev.type == "cpu" else 0,
    }


# ---------------------------------------------------------------- input and memory


PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")  # natural photos bundled with scikit-image


def rainy_frame(height: int, width: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A deterministic (rainy, clean) pair of HxWx3 float32 frames: a natural photo bundled with
    scikit-image, scaled to cover the size and centre-cropped, under heavy synthetic rain."""
    import cv2
    import skimage.data

    from .rain import add_rain

    photo = getattr(skimage.data, PHOTOS[seed % len(PHOTOS)])()[..., :3]
    h, w = photo.shape[:2]
    scale = max(height / h, width / w)
    size = (max(width, round(w * scale)), max(height, round(h * scale)))
    photo = cv2.resize(photo, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    y, x = (photo.shape[0] - height) // 2, (photo.shape[1] - width) // 2
    clean = np.ascontiguousarray(photo[y : y + height, x : x + width], dtype=np.float32) / 255.0
    sample = add_rain(clean, "heavy", seed=seed)
    return sample.rainy, sample.clean


def rainy_batch(height: int, width: int, batch: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(rainy, clean) Nx3xHxW float32 batches of different frames."""
    pairs = [rainy_frame(height, width, seed + i) for i in range(batch)]
    rainy, clean = (
        np.ascontiguousarray(np.stack(x).transpose(0, 3, 1, 2), dtype=np.float32) for x in zip(*pairs)
    )
    return rainy, clean


def psnr_y_batch(output: np.ndarray, clean: np.ndarray) -> float:
    """Mean PSNR_Y (published convention) of an NCHW output against the clean frames, after
    rounding to 8 bits as a saved image would be."""
    from .metrics import psnr

    def u8(a: np.ndarray) -> np.ndarray:
        return np.round(np.clip(a.transpose(1, 2, 0), 0, 1) * 255).astype(np.uint8)

    return float(np.mean([psnr(u8(o), u8(c)) for o, c in zip(output, clean)]))


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


def _peak_rss_mb() -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process lifetime peak
    except ImportError:
        return None


def cuda_used_mb(device: torch.device) -> float:
    """Device memory in use on ``device`` (all allocators, all processes), from cudaMemGetInfo."""
    free, total = torch.cuda.mem_get_info(device)
    return (total - free) / 2**20


def gpu_split(
    backend: Backend, batch: np.ndarray, device: torch.device, repeats: int = 7
) -> dict[str, object]:
    """Median H2D, compute and D2H times (ms) from CUDA events on the backend's stream (its
    ``stream`` attribute, else the current one), copying from and to pinned host buffers."""
    stream = getattr(backend, "stream", None) or torch.cuda.current_stream(device)
    host_in = torch.from_numpy(np.ascontiguousarray(batch, np.float32)).pin_memory()
    dev_in = torch.empty(host_in.shape, dtype=torch.float32, device=device)
    run_device = getattr(backend, "run_device", None)
    times: dict[str, list[float]] = {"h2d_ms": [], "compute_ms": [], "d2h_ms": []}
    with torch.cuda.stream(stream):
        dev_in.copy_(host_in)
        first = run_device(dev_in) if run_device else dev_in  # output shape and type; warms up
        host_out = torch.empty(first.shape, dtype=first.dtype, pin_memory=True)  # outside the timed spans
        for _ in range(repeats):
            events = [torch.cuda.Event(enable_timing=True) for _ in range(4)]
            events[0].record(stream)
            dev_in.copy_(host_in, non_blocking=True)
            events[1].record(stream)
            dev_out = run_device(dev_in) if run_device else dev_in
            events[2].record(stream)
            host_out.copy_(dev_out, non_blocking=True)
            events[3].record(stream)
            stream.synchronize()
            for key, (a, b) in zip(times, itertools.pairwise(events)):
                times[key].append(a.elapsed_time(b))
    split: dict[str, object] = {k: float(np.median(v)) for k, v in times.items()}
    split["gpu_split"] = "cuda_events" if run_device else "cuda_events_copies"
    if not run_device:
        split["compute_ms"] = None  # the caller derives it from the p50
    return split


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


def _floor_ms(batch: int, gflop_per_frame: float, probe_gflops: float) -> float:
    """Time of one call of ``batch`` frames at the probe's rate."""
    return batch * gflop_per_frame / probe_gflops * 1e3


def _row(
    spec_b: BackendSpec,
    backend: Backend,
    times: list[float],
    h: int,
    w: int,
    n: int,
    gflop: float,
    probe_gflops: float,
    base_ms: float | None,
    memory: tuple[float | None, str],
    baseline: bool,
) -> BenchRow:
    ms = np.array(times) * 1e3
    p50, p90, p99 = (float(np.percentile(ms, q)) for q in (50, 90, 99))
    floor_ms = _floor_ms(n, gflop, probe_gflops)
    return BenchRow(
        label=spec_b.label,
        backend=spec_b.backend,
        precision=getattr(backend.info, "precision", spec_b.precision),
        device=spec_b.device,
        graph=spec_b.graph if spec_b.descriptor.graph_forms else None,
        channels_last=spec_b.channels_last,
        cuda_graphs=spec_b.cuda_graphs,
        height=h,
        width=w,
        batch=n,
        reps=len(times),
        p50_ms=p50,
        p90_ms=p90,
        p99_ms=p99,
        mean_ms=float(ms.mean()),
        fps=1000.0 * n / p50,
        speedup_vs_eager=(base_ms / p50) if base_ms else 1.0,
        gflop_per_frame=gflop,
        gflops=n * gflop / (p50 / 1e3),
        floor_ms=floor_ms,
        floor_ratio=p50 / floor_ms,
        peak_memory_mb=memory[0],
        memory_kind=memory[1],
        baseline=baseline,
        details={
            k: Path(str(v)).name if k == "model" else v  # exported files live in a temporary folder
            for k, v in backend.info.details.items()
            if k in ("model", "providers", "threads", "channels_last", "cuda_graphs")
        },
    )


Log = Callable[[str], None]


def _reprobe(
    probes: dict[str, dict[str, float]], spec: BenchSpec, rows: list[BenchRow], log: Log
) -> None:
    """Probe the FP32 rate again after the rows and keep the faster run: one probe can land on a
    slow moment of a shared machine, and a low rate makes every floor ratio look better than it
    is. Rows are updated in place to the kept rate."""
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
                floor_ms = _floor_ms(row.batch, row.gflop_per_frame, best["gflops"])
                rows[i] = dataclasses.replace(row, floor_ms=floor_ms, floor_ratio=row.p50_ms / floor_ms)


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
    bspec: BackendSpec,
    backend: Backend,
    spec: BenchSpec,
    cell: tuple[int, int, int],
    data: tuple[np.ndarray, np.ndarray],
    gflop: float,
    probes: dict[str, dict[str, float]],
    base_ms: float | None,
    is_ref: bool,
    memory_base_mb: float | None = None,
) -> tuple[BenchRow, np.ndarray]:
    """One row: time ``backend`` on one (resolution, batch) cell; also its first output.
    ``memory_base_mb``: device memory in use before the backend opened (CUDA rows)."""
    h, w, n = cell
    batch, clean = data
    tdev = _torch_device(bspec.device)
    rss_reset = _reset_peak_rss() if tdev.type == "cpu" else False
    if tdev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(tdev)
    times, first = time_backend(backend, batch, spec, tdev)
    if tdev.type == "cuda":
        used = cuda_used_mb(tdev) - (memory_base_mb or 0.0)
        memory = (used, "cuda_device_used" if memory_base_mb is not None else "cuda_device_total")
    else:
        memory = (_peak_rss_mb(), "rss" if rss_reset else "rss_process_lifetime")
    probe = probes[f"{tdev}:fp32"]["gflops"]
    row = _row(bspec, backend, times, h, w, n, gflop, probe, base_ms, memory, is_ref)
    row.psnr_y_clean = psnr_y_batch(first, clean)
    if tdev.type == "cuda":
        row.details["torch_allocated_peak_mb"] = torch.cuda.max_memory_allocated(tdev) / 2**20
        split = gpu_split(backend, batch, tdev)
        row.h2d_ms, row.d2h_ms = float(split["h2d_ms"]), float(split["d2h_ms"])  # type: ignore[arg-type]
        compute = split["compute_ms"]
        derived = max(row.p50_ms - row.h2d_ms - row.d2h_ms, 0.0)
        row.compute_ms = derived if compute is None else float(compute)  # type: ignore[arg-type]
        row.details["gpu_split"] = split["gpu_split"]
        half = probes.get(f"{tdev}:fp16")
        if half and row.precision in ("fp16", "bf16", "int8"):
            row.details["floor_ratio_fp16_probe"] = row.p50_ms / (n * gflop / half["gflops"] * 1e3)
    return row, first


def run_bench(
    spec: BenchSpec,
    model: DerainNet,
    opener: Opener = open_spec,
    log: Log | None = None,
    workdir: str | Path | None = None,
    weights: str = "in-memory model",
) -> BenchReport:
    """Measure every backend in ``spec`` on ``model`` (plus eager FP32 per device as the reference).

    ``opener`` turns a :class:`BackendSpec` into a backend (the default exports ONNX files into
    ``workdir``, a temporary folder unless given). Every backend is opened once before anything
    is timed, so a backend that cannot run stops the bench at once. Errors propagate (no skips)."""
    saved = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32, torch.get_num_threads())
    try:
        return _run_bench(spec, model, opener, log, workdir, weights)
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
    probes: dict[str, dict[str, float]] = {}

    with tempfile.TemporaryDirectory(prefix="derain-bench-") as tmp:
        work = Path(workdir) if workdir else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for bspec in order:  # fail fast; exported ONNX files stay in ``work`` for the timed pass
            log(f"checking {bspec.label} opens")
            opener(bspec, model, work).close()
        for d in dict.fromkeys(str(_torch_device(d)) for d in devices):
            n = max(spec.probe_size, 8192) if d.startswith("cuda") else spec.probe_size  # fill a GPU
            log(f"matmul probe on {d} ({n}^3" + (f", {threads} threads)" if d == "cpu" else ")"))
            probes[f"{d}:fp32"] = matmul_probe(d, n, spec.probe_repeats)
            if d.startswith("cuda"):
                probes[f"{d}:fp16"] = matmul_probe(d, n, spec.probe_repeats, torch.float16)
        inputs = {(h, w, n): rainy_batch(h, w, n, spec.seed) for h, w, n in cells}  # (rainy, clean)

        for bspec in order:
            is_ref = bspec.backend == "torch" and bspec == EAGER_FP32.with_device(bspec.device)
            tdev = _torch_device(bspec.device)
            memory_base = cuda_used_mb(tdev) if tdev.type == "cuda" else None
            backend = opener(bspec, model, work)
            try:
                for h, w, n in cells:
                    key = (_ref_device(bspec.device), h, w, n)
                    base = reference.get(key)
                    row, first = _measure(
                        bspec, backend, spec, (h, w, n), inputs[(h, w, n)], gflops_of[(h, w)], probes,
                        base[0] if base else None, is_ref, memory_base,
                    )  # fmt: skip
                    if is_ref:
                        reference[key] = (row.p50_ms, first)
                    elif spec.check_parity and base is not None:
                        parity.append(compare(first, base[1], row.precision, bspec.label))
                    rows.append(row)
                    log(
                        f"{bspec.label} {h}x{w} b{n}: {row.p50_ms:.1f} ms p50 over {row.reps} reps, "
                        f"{row.floor_ratio:.2f}x floor, {row.speedup_vs_eager:.2f}x eager"
                    )
            finally:
                backend.close()
        _reprobe(probes, spec, rows, log)

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
            "backends": [s.label for s in spec.backends],
            "resolutions": [list(r) for r in resolutions],
            "batch_sizes": list(spec.batch_sizes),
            "input": "rainy_frame(): scikit-image photos + heavy synthetic rain",
            "tf32": bool(torch.backends.cudnn.allow_tf32) if torch.cuda.is_available() else None,
        },
        probes=probes,
        rows=rows,
        parity=parity,
    )
