"""derain-bench's report: the schema (rows, probes, parity), and its table, JSON, Markdown
and plot."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..parity import ParityResult

# 2: floor_ms / floor_ratio are against the FP32 property peak (``peaks``); the probe's, which
# they were in 1, are probe_floor_ms / probe_ratio; precision_floor_ratio and peaks are new.
SCHEMA = "derain-bench/2"
FLOOR_RULE = (
    "floor_ratio = p50 / (FLOP per call at the device's FP32 peak from its properties, see peaks): "
    "the ratio targets use; probe_ratio = p50 / (the same FLOP at the FP32 matmul probe's rate, "
    "probes); precision_floor_ratio uses the peak of the row's own precision"
)


class BenchError(RuntimeError):
    """A bench output that cannot be made (e.g. a plot without matplotlib); one line."""


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
    floor_ms: float | None  # per call at the FP32 property peak (None: the device's peak is unknown)
    floor_ratio: float | None  # p50 / floor_ms: what targets use
    peak_memory_mb: float | None
    memory_kind: str  # "rss" (process high-water mark during the row) or "cuda_allocated"
    baseline: bool = False
    psnr_y_clean: float | None = None  # of the output against the clean frames (rain was synthetic)
    h2d_ms: float | None = None
    d2h_ms: float | None = None
    compute_ms: float | None = None  # p50 minus the measured copies (GPU only)
    details: dict[str, object] = field(default_factory=dict)
    probe_floor_ms: float | None = None  # per call at the FP32 matmul probe's rate
    probe_ratio: float | None = None  # p50 / probe_floor_ms
    precision_floor_ratio: float | None = None  # p50 / time at the peak of the row's precision

    def progress_line(self) -> str:
        """The line printed as soon as the row is measured."""
        floor = "-" if self.floor_ratio is None else f"{self.floor_ratio:.2f}"
        probe = "-" if self.probe_ratio is None else f"{self.probe_ratio:.2f}"
        return (f"{self.label} {self.height}x{self.width} b{self.batch}: {self.p50_ms:.1f} ms p50 over "
                f"{self.reps} reps, {floor}x floor (property peak), {probe}x probe, "
                f"{self.speedup_vs_eager:.2f}x eager")  # fmt: skip


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
    peaks: dict[str, dict[str, object]] = field(default_factory=dict)  # per device, from properties

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
            "x probe",
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
                _ratio(r.floor_ratio),
                _ratio(r.probe_ratio),
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
        peak = ", ".join(f"{k} {v.get('fp32_gflops')} GFLOP/s" for k, v in self.peaks.items())
        gpu = f", GPU {m['gpu']}" if m.get("gpu") else ""
        return (
            f"{m['cpu']} ({m['cores_usable']} cores{gpu}); FP32 property peak: {peak or '-'} (x floor); "
            f"matmul probe: {probe} (x probe); "
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
            "Floor (`x floor`, what targets use): FLOP per frame / the FP32 property peak, "
            + "; ".join(f"{k} {_peak_text(p)}" for k, p in self.peaks.items())
            + ". `x probe`: against "
            + ", ".join(f"{k} matmul probe {p['gflops']:.0f} GFLOP/s" for k, p in self.probes.items())
            + f"; model {self.model['macs_per_pixel']:,} MAC/pixel. Times are medians of `reps` calls.",
            f"Weights: {self.model['weights']}. Input: {self.settings.get('input')}; PSNR_Y is the output's "
            "against the clean photo (8-bit, Y of YCbCr, peak 255).",
            "",
            "| backend | size | batch | ms/frame p50 | ms/frame p90 | frames/s | vs eager FP32 | GFLOP/s "
            "| x floor | x probe | peak MB | PSNR_Y vs clean | parity vs eager FP32 |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
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
                f"| {r.fps:.2f} | {r.speedup_vs_eager:.2f}x | {r.gflops:.0f} | {_ratio(r.floor_ratio)} "
                f"| {_ratio(r.probe_ratio)} | {mem} "
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
            if not row.floor_ms:
                continue
            floor_fps = 1000.0 * row.batch / row.floor_ms
            ax.hlines(
                floor_fps,
                i - 0.45,
                i + 0.45,
                colors="k",
                linestyles="--",
                label="floor (FP32 property peak)" if i == 0 else None,
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


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _peak_text(peak: dict[str, object]) -> str:
    rates = ", ".join(f"{p} {peak[f'{p}_gflops']}" for p in ("fp32", "fp16", "bf16", "int8")
                      if peak.get(f"{p}_gflops"))  # fmt: skip
    return f"{rates or 'unknown'} GFLOP/s ({peak.get('basis')})"


def _finite(d: dict[str, object]) -> dict[str, object]:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


