"""derain-bench on tiny sizes: the report's schema, its arithmetic, parity that can fail, CLI errors."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from derain_deploy import cli_bench
from derain_deploy.backend_spec import BackendSpec, SpecError, open_spec, parse_spec, parse_specs
from derain_deploy.backends.base import BackendInfo
from derain_deploy.bench import SCHEMA, BenchSpec, run_bench
from derain_deploy.model import DerainConfig, DerainNet
from derain_deploy.parity import TOLERANCES, compare

ROW_KEYS = {
    "label": str, "backend": str, "precision": str, "device": str, "height": int, "width": int, "batch": int,
    "reps": int, "p50_ms": float, "p90_ms": float, "p99_ms": float, "fps": float, "speedup_vs_eager": float,
    "gflop_per_frame": float, "gflops": float, "floor_ms": float, "floor_ratio": float, "baseline": bool,
}  # fmt: skip


@pytest.fixture(scope="module")
def tiny() -> DerainNet:
    torch.manual_seed(0)
    return DerainNet(DerainConfig(stages=2, channels=4)).eval()


def _spec(backends: list[str], **kw: object) -> BenchSpec:
    args: dict[str, object] = dict(resolutions=[(24, 32)], batch_sizes=[1, 2], warmup=1, min_reps=2,
                                   max_reps=3, budget_s=0.0, probe_size=128, probe_repeats=2)  # fmt: skip
    args.update(kw)
    return BenchSpec(parse_specs(backends), **args)  # type: ignore[arg-type]


class Perturbed:
    """A real backend whose output is shifted by ``offset`` (or given Gaussian noise): the wrong
    backend the parity check must reject."""

    def __init__(self, inner: object, offset: float = 0.0, noise: float = 0.0, precision: str | None = None):
        self.inner, self.offset, self.noise = inner, offset, noise
        info = inner.info  # type: ignore[attr-defined]
        self.info = BackendInfo(info.name, info.device, precision or info.precision, dict(info.details))

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        out = self.inner(batch) + self.offset  # type: ignore[operator]
        if self.noise:
            out = out + np.random.default_rng(0).normal(0, self.noise, out.shape).astype(np.float32)
        return out

    def close(self) -> None:
        self.inner.close()  # type: ignore[attr-defined]


def test_report_schema_and_arithmetic(tiny: DerainNet, tmp_path: Path) -> None:
    report = run_bench(_spec(["torch", "torch:cl"], check_parity=True), tiny)
    data = json.loads(report.to_json())
    assert data["schema"] == SCHEMA
    for key in ("created", "machine", "versions", "model", "settings", "probes", "rows", "parity"):
        assert key in data, key
    assert data["machine"]["cores_usable"] >= 1 and data["machine"]["cpu"]
    assert data["versions"]["torch"] == torch.__version__
    cpu_probe = data["probes"]["cpu:fp32"]
    assert cpu_probe["gflops"] > 0
    # probed before and after the rows; the floor uses the faster run
    assert cpu_probe["gflops"] == max(cpu_probe["gflops_before"], cpu_probe["gflops_after"])
    assert data["model"]["macs_per_pixel"] == tiny.config.macs_per_pixel()
    rows = data["rows"]
    assert [(r["label"], r["batch"]) for r in rows] == [
        ("torch:fp32", 1), ("torch:fp32", 2), ("torch:fp32:cl", 1), ("torch:fp32:cl", 2),
    ]  # fmt: skip
    probe = data["probes"]["cpu:fp32"]["gflops"]
    for r in rows:
        for key, typ in ROW_KEYS.items():
            assert isinstance(r[key], typ), (key, r[key])
        assert 2 <= r["reps"] <= 3
        assert r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"]
        gflop = 2 * tiny.config.macs_per_pixel() * 24 * 32 / 1e9
        assert r["gflop_per_frame"] == pytest.approx(gflop)
        assert r["fps"] == pytest.approx(1000 * r["batch"] / r["p50_ms"])
        assert r["probe_floor_ms"] == pytest.approx(r["batch"] * gflop / probe * 1e3)  # schema 2: probe_*
        assert r["probe_ratio"] == pytest.approx(r["p50_ms"] / r["probe_floor_ms"])
        assert r["peak_memory_mb"] > 0
    ref = {r["batch"]: r for r in rows if r["baseline"]}
    for r in rows:
        assert r["speedup_vs_eager"] == pytest.approx(ref[r["batch"]]["p50_ms"] / r["p50_ms"])
    assert [p["label"] for p in data["parity"]] == ["torch:fp32:cl", "torch:fp32:cl"]
    assert report.parity_ok and all(p["max_abs"] < 1e-5 for p in data["parity"])
    md = report.to_markdown()
    assert md.count("| torch:fp32:cl |") == 2 and "reference" in md
    png = report.plot(tmp_path / "bench.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_parity_rejects_a_perturbed_backend(tiny: DerainNet) -> None:
    def opener(spec: BackendSpec, model: DerainNet, work: Path) -> object:
        inner = open_spec(spec, model, work)
        # torch:fp32:cl is made wrong by 1e-3, a hair above an 8-bit level's quarter
        return Perturbed(inner, offset=1e-3) if spec.channels_last else inner

    report = run_bench(_spec(["torch", "torch:cl"], batch_sizes=[1], check_parity=True), tiny, opener=opener)
    (result,) = report.parity
    assert not report.parity_ok and not result.passed
    assert result.max_abs == pytest.approx(1e-3, rel=1e-3)
    assert "FAIL" in result.describe() and "FAIL" in report.to_markdown()


def test_parity_tolerances_per_precision() -> None:
    rng = np.random.default_rng(1)
    ref = rng.random((1, 3, 16, 16)).astype(np.float32)
    assert compare(ref + 5e-5, ref, "fp32", "a").passed
    assert not compare(ref + 2e-4, ref, "fp32", "a").passed
    # noise with sigma s has PSNR -20 log10(s): 1e-3 -> 60 dB, 1e-2 -> 40 dB
    small, large = (ref + rng.normal(0, s, ref.shape) for s in (1e-3, 0.02))
    for precision in ("fp16", "bf16", "int8"):
        assert compare(small, ref, precision, "a").passed
        assert not compare(large, ref, precision, "a").passed
    mid = ref + rng.normal(0, 10 ** (-45 / 20), ref.shape)  # ~45 dB: INT8 passes, FP16 does not
    assert compare(mid, ref, "int8", "a").passed and not compare(mid, ref, "fp16", "a").passed
    bad = ref.copy()
    bad[0, 0, 0, 0] = np.nan
    assert not any(compare(bad, ref, p, "a").passed for p in TOLERANCES)
    assert compare(ref, ref, "fp16", "a").to_dict()["psnr_db"] is None  # inf is not JSON


def test_floor_uses_the_faster_of_two_probes(tiny: DerainNet, monkeypatch: pytest.MonkeyPatch) -> None:
    # A slow first probe (a busy moment) must not set the floor: the rows follow the faster rerun.
    from derain_deploy import bench

    rates = iter([10.0, 40.0])
    monkeypatch.setattr(bench, "matmul_probe", lambda device, n, repeats, dtype=None: {
        "gflops": next(rates), "n": n, "repeats": repeats, "best_ms": 1.0, "threads": 1})  # fmt: skip
    report = run_bench(_spec(["torch"], batch_sizes=[1]), tiny)
    probe = report.probes["cpu:fp32"]
    assert (probe["gflops"], probe["gflops_before"], probe["gflops_after"]) == (40.0, 10.0, 40.0)
    (row,) = report.rows
    assert row.probe_floor_ms == pytest.approx(row.gflop_per_frame / 40.0 * 1e3)  # schema 2: probe_*
    assert row.probe_ratio == pytest.approx(row.p50_ms / row.probe_floor_ms)


def test_spec_parsing() -> None:
    assert parse_spec("torch") == BackendSpec("torch")
    assert parse_spec("ort:int8:split") == BackendSpec("onnxruntime", "int8", graph="split")
    assert parse_spec("torch:bf16:cl").label == "torch:bf16:cl"
    assert parse_spec("trt:fp16:graphs@cuda").cuda_graphs
    assert parse_spec("trt:fp16").device == "cuda"
    assert parse_spec("ort=m.onnx@cuda:1") == BackendSpec("onnxruntime", device="cuda:1", file="m.onnx")
    assert parse_spec("ov:bf16:split") == BackendSpec("openvino", "bf16", graph="split")
    assert parse_spec("openvino:int8:split").label == "ov:int8:split"
    for text, msg in [("foo", "unknown backend 'foo'"), ("torch:int8", "not int8"), ("ort:cl", "torch only"),
                      ("torch:split", "exported models"), ("ort:fast", "unknown option"),
                      ("torch:graphs", "CUDA device"), ("ov:fp16", "not fp16"),
                      ("ov:split@cuda", "CPU only")]:  # fmt: skip
        with pytest.raises(SpecError, match=msg):
            parse_spec(text)
    with pytest.raises(SpecError, match="given twice"):
        parse_specs(["ort:split", "ort:fp32:split"])


def test_default_sets_leave_out_runtimes_that_are_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from derain_deploy.backend_spec import runnable_here

    real = importlib.util.find_spec
    missing = lambda name, *a: None if name == "openvino" else real(name, *a)  # noqa: E731
    monkeypatch.setattr(importlib.util, "find_spec", missing)
    notes: list[str] = []
    kept = runnable_here(["torch", "ov:split", "ort:split", "openvino:int8:split"], notes.append)
    assert kept == ["torch", "ort:split"]
    assert notes == [
        "note: openvino is not installed: ov:* rows left out (name one to see why it cannot run)"
    ]
    without_ov = [s for s in cli_bench.DEFAULT_BACKENDS["cpu"] if not s.startswith("ov")]
    assert cli_bench.default_backends("cpu") == without_ov


@pytest.mark.parametrize("native", [True, False])
def test_default_sets_leave_out_emulated_cpu_bf16(monkeypatch: pytest.MonkeyPatch, native: bool) -> None:
    from derain_deploy import cpu
    from derain_deploy.backend_spec import runnable_here

    monkeypatch.setattr(cpu, "native_bf16", lambda: native)
    notes: list[str] = []
    specs = ["torch", "torch:bf16:cl", "torch:bf16@cuda", "ort:split"]
    kept = runnable_here(specs, notes.append)
    assert kept == (specs if native else ["torch", "torch:bf16@cuda", "ort:split"])
    assert len(notes) == (0 if native else 1) and all("no native bf16" in n for n in notes)


def test_cli_runs_and_writes_outputs(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    args = ["--random-weights", "-b", "torch", "-b", "torch:cl", "-r", "16x24", "--budget", "0", "--min-reps",
            "1", "--max-reps", "1", "--check-parity", "-q", "--probe-size", "256", "--json", str(out),
            "--markdown", str(tmp_path / "r.md"), "--plot", str(tmp_path / "r.png")]  # fmt: skip
    result = CliRunner().invoke(cli_bench.main, args)
    assert result.exit_code == 0, result.output
    assert "torch:fp32:cl" in result.output and "parity torch:fp32:cl" in result.output
    data = json.loads(out.read_text())
    assert data["model"]["weights"].startswith("random init") and len(data["rows"]) == 2
    assert (tmp_path / "r.md").read_text().startswith("Machine:") and (tmp_path / "r.png").stat().st_size > 0


def test_cli_exits_nonzero_on_parity_failure(tiny: DerainNet, monkeypatch: pytest.MonkeyPatch) -> None:
    def opener(spec: BackendSpec, model: DerainNet, work: Path) -> object:
        inner = open_spec(spec, model, work)
        return Perturbed(inner, noise=0.05, precision="bf16") if spec.precision == "bf16" else inner

    monkeypatch.setattr(cli_bench, "run_bench", functools.partial(run_bench, opener=opener))
    args = ["--random-weights", "-b", "torch", "-b", "torch:bf16", "-r", "16x16", "--budget", "0",
            "--min-reps", "1", "--max-reps", "1", "--check-parity", "-q", "--probe-size", "256"]  # fmt: skip
    result = CliRunner().invoke(cli_bench.main, args)
    assert result.exit_code == 1
    assert "error: parity check failed for torch:bf16" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-b", "tensorflow"], "error: unknown backend 'tensorflow'"),
        (["-b", "torch:fp16"], "error: torch backend: fp16 was asked for on the CPU"),
        (["--weights", "/nonexistent/w.safetensors", "-b", "torch"], "error: weights file not found"),
        (
            ["--random-weights", "--min-reps", "5", "--max-reps", "2"],
            "error: --max-reps 2 is below --min-reps 5",
        ),
    ],
)
def test_cli_errors_are_one_line(args: list[str], message: str) -> None:
    full = (
        [*args, "-r", "16x16", "-q"]
        if "--weights" in args
        else ["--random-weights", *args, "-r", "16x16", "-q"]
    )
    if full.count("--random-weights") > 1:
        full.remove("--random-weights")
    result = CliRunner().invoke(cli_bench.main, full)
    assert result.exit_code == 1
    assert result.output.startswith(message) and result.output.count("\n") == 1, result.output
    assert "Traceback" not in result.output


def test_cli_rejects_bad_resolution() -> None:
    result = CliRunner().invoke(cli_bench.main, ["-r", "640", "--random-weights"])
    assert result.exit_code == 2 and "HEIGHTxWIDTH" in result.output


def test_defaults_add_1080p_on_gpu_only() -> None:
    cpu = BenchSpec(parse_specs(["torch"]))
    gpu = BenchSpec(parse_specs(["torch@cuda"]))
    assert (1080, 1920) not in cpu.resolved_resolutions() and (1080, 1920) in gpu.resolved_resolutions()
    assert cpu.resolved_resolutions() == [(256, 256), (480, 640), (720, 1280)]


def test_onnx_backends_come_from_the_exporter(tiny: DerainNet, tmp_path: Path) -> None:
    report = run_bench(_spec(["ort:int8:split"], batch_sizes=[1], check_parity=True), tiny, workdir=tmp_path)
    assert [r.label for r in report.rows] == ["torch:fp32", "ort:int8:split"]
    row = report.rows[1]
    assert row.details["model"].endswith("derain.split.int8.onnx") and row.precision == "int8"
    assert report.parity_ok and [p.metric for p in report.parity] == ["psnr"]


@pytest.mark.gpu
def test_gpu_rows_split_copies_and_compute(tiny: DerainNet) -> None:
    report = run_bench(_spec(["torch@cuda", "torch:fp16@cuda"], batch_sizes=[1], check_parity=True), tiny)
    assert {"cuda:0:fp32", "cuda:0:fp16"} <= set(report.probes)
    for row in report.rows:
        assert row.memory_kind == "cuda_device_used" and row.peak_memory_mb > 0
        assert row.h2d_ms > 0 and row.d2h_ms > 0 and row.compute_ms > 0
        assert row.details["gpu_split"] == "cuda_events"
    assert report.parity_ok and [p.precision for p in report.parity] == ["fp16"]


def test_gpu_rows_use_events_and_device_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    """On CUDA a row's split comes from CUDA events (the split helper, faked here) and its memory
    from cudaMemGetInfo before the backend opened and after the row, not torch's allocator."""
    from derain_deploy import bench

    free = iter([70 * 2**20, 40 * 2**20])  # after the row: 30 MiB more in use than at the start
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (next(free), 100 * 2**20))
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda device=None: None)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: 5 * 2**20)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)
    calls = []

    def fake_split(backend: object, batch: np.ndarray, device: torch.device) -> dict[str, object]:
        calls.append(device)
        return {"h2d_ms": 0.5, "compute_ms": 2.0, "d2h_ms": 0.25, "gpu_split": "cuda_events"}

    monkeypatch.setattr(bench, "gpu_split", fake_split)

    class Identity:
        info = BackendInfo("torch", "cuda:0", "fp32", {})

        def __call__(self, batch: np.ndarray) -> np.ndarray:
            return batch

    base = bench.cuda_used_mb(torch.device("cuda", 0))
    data = bench.rainy_batch(16, 16, 1)
    spec = BenchSpec([parse_spec("torch@cuda")], min_reps=1, max_reps=1, budget_s=0.0)
    probes = {"cuda:0:fp32": {"gflops": 1000.0}}
    peaks = {"cuda:0": {"fp32_gflops": 2000.0}}
    cell = bench.Cell(parse_spec("torch@cuda"), 16, 16, 1, *data, 0.01, None, True, base)
    row, _ = bench._measure(cell, Identity(), spec, probes, peaks)
    assert calls == [torch.device("cuda", 0)]
    assert (row.h2d_ms, row.compute_ms, row.d2h_ms) == (0.5, 2.0, 0.25)
    assert row.memory_kind == "cuda_device_used" and row.peak_memory_mb == 30.0
    assert row.details["gpu_split"] == "cuda_events" and row.details["torch_allocated_peak_mb"] == 5.0


def test_tf32_specs_and_tolerance() -> None:
    assert parse_spec("torch:tf32@cuda").precision == "tf32"
    assert parse_spec("ort:tf32@cuda").label == "ort:tf32:concat@cuda"
    with pytest.raises(SpecError, match="tf32 needs a CUDA device"):
        parse_spec("torch:tf32")
    with pytest.raises(SpecError, match="offers"):
        parse_spec("ov:tf32")
    ref = np.full((1, 3, 8, 8), 0.5, np.float32)
    tf32_like = ref + np.random.default_rng(0).normal(0, 2e-4, ref.shape).astype(np.float32)
    tf32_like[0, 0, 0, 0] += 2e-3  # TF32-sized errors (emulated: 2.2e-3 max, 77 dB): not fp32, yet tf32
    assert not compare(tf32_like, ref, "fp32", "x").passed and compare(tf32_like, ref, "tf32", "x").passed
