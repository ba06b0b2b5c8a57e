"""The floor from properties: GPU peaks from a fake properties object, CPU peaks in the report
beside the probe, both ratios per row, and a floor that does not follow the probe."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from derain_deploy.backend_spec import parse_specs
from derain_deploy.bench import SCHEMA, BenchSpec, run_bench
from derain_deploy.bench.peak import gpu_peak_from, peak_gflops
from derain_deploy.model import DerainConfig, DerainNet


def test_gpu_peak_from_properties() -> None:
    h200 = SimpleNamespace(name="NVIDIA H200", major=9, minor=0, multi_processor_count=132)
    peak = gpu_peak_from(h200)  # no clock_rate (CUDA 13): the board's boost clock from the table
    assert peak["fp32_gflops"] == pytest.approx(132 * 1.98 * 256)
    assert peak["fp16_gflops"] == peak["bf16_gflops"] == pytest.approx(132 * 1.98 * 4096)
    assert "table" in str(peak["ghz_source"])
    t4 = SimpleNamespace(name="Tesla T4", major=7, minor=5, multi_processor_count=40, clock_rate=1_590_000)
    peak = gpu_peak_from(t4)
    assert peak["ghz_source"] == "device properties clock_rate" and peak["bf16_gflops"] is None
    assert peak_gflops(peak, "fp16") == pytest.approx(40 * 1.59 * 1024) and peak_gflops(peak, "bf16") is None
    unknown = gpu_peak_from(SimpleNamespace(name="Mystery", major=9, minor=0, multi_processor_count=10))
    assert unknown["fp32_gflops"] is None and "not in the boost-clock table" in str(unknown["basis"])


def test_report_has_property_peak_and_both_ratios(monkeypatch: pytest.MonkeyPatch) -> None:
    from derain_deploy import bench

    torch.manual_seed(0)
    tiny = DerainNet(DerainConfig(stages=2, channels=4)).eval()
    rates = iter([10.0, 40.0])  # a probe that moves: the floor must not
    monkeypatch.setattr(bench, "matmul_probe", lambda device, n, repeats, dtype=None: {
        "gflops": next(rates), "n": n, "repeats": repeats, "best_ms": 1.0, "threads": 1})  # fmt: skip
    spec = BenchSpec(parse_specs(["torch"]), resolutions=[(24, 32)], min_reps=1, max_reps=1, budget_s=0.0,
                     probe_size=64, probe_repeats=1, threads=1)  # fmt: skip
    report = run_bench(spec, tiny)
    data = json.loads(report.to_json())
    assert data["schema"] == SCHEMA == "derain-bench/2"
    peak = data["peaks"]["cpu"]
    assert peak["fp32_gflops"] > 0 and peak["cores"] == 1
    assert "floor_ratio" in data["settings"]["floor"] and "probe_ratio" in data["settings"]["floor"]
    (row,) = data["rows"]
    flop = row["gflop_per_frame"]
    assert row["floor_ms"] == pytest.approx(flop / peak["fp32_gflops"] * 1e3)
    assert row["floor_ratio"] == pytest.approx(row["p50_ms"] / row["floor_ms"])
    assert row["probe_floor_ms"] == pytest.approx(flop / 40.0 * 1e3)
    assert row["probe_ratio"] == pytest.approx(row["p50_ms"] / row["probe_floor_ms"])
    assert "x probe" in report.table() and "property peak" in report.to_markdown()
