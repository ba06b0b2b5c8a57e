"""Peak rates from CPU properties: the three machines this project has run on, and sysfs first."""

from __future__ import annotations

from pathlib import Path

import pytest

from derain_deploy.cpu_peak import cpu_peak, nominal_ghz, peak_from

XEON_AMX = frozenset({"avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16",
                      "amx_int8"})
EPYC_AVX2 = frozenset({"avx", "avx2", "fma"})
EPYC_ZEN4 = frozenset({"avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16"})
ZEN5 = EPYC_ZEN4 | {"avx512_vp2intersect"}  # Zen 5 added VP2INTERSECT; Zen 4 lacks it


def test_the_projects_machines() -> None:
    xeon = peak_from("Intel(R) Xeon(R) Processor", XEON_AMX, 2, 2.1, "test")
    assert (xeon.vector_bits, xeon.fma_ports, xeon.fp32_gflops) == (512, 2, pytest.approx(268.8))
    assert xeon.bf16_gflops == pytest.approx(2 * 2.1 * 1024)
    assert xeon.int8_gops == pytest.approx(2 * 2.1 * 2048)
    avx2 = peak_from("AMD EPYC 7B13", EPYC_AVX2, 2, 2.45, "test")
    assert avx2.fp32_gflops == pytest.approx(156.8)  # the README's 2 x 2 x 8 x 2 x 2.45 GHz
    assert avx2.bf16_gflops is None and avx2.int8_gops is None
    zen4 = peak_from("AMD EPYC 9B14", EPYC_ZEN4, 2, 2.6, "test")
    assert zen4.vector_bits == 256 and zen4.fp32_gflops == pytest.approx(2 * 2.6 * 32)
    assert zen4.bf16_gflops == pytest.approx(2 * zen4.fp32_gflops)
    assert zen4.int8_gops == pytest.approx(4 * zen4.fp32_gflops)
    assert "two 256-bit halves" in zen4.basis


def test_zen5_runs_512_bit_natively_except_on_thin_laptops() -> None:
    # the EPYC of 2026-12-02 (family 26, model name "AMD EPYC" under KVM): OpenVINO's FP32 ran at
    # 204 GFLOP/s there, above the 166 GFLOP/s a 256-bit peak allows
    turin = peak_from("AMD EPYC", ZEN5, 2, 2.6, "test")
    assert (turin.vector_bits, turin.fp32_gflops) == (512, pytest.approx(2 * 2.6 * 64))
    assert "halves" not in turin.basis
    strix = peak_from("AMD Ryzen AI 9 HX 370 w/ Radeon 890M", ZEN5, 2, 2.0, "test")
    assert strix.vector_bits == 256 and "two 256-bit halves" in strix.basis
    assert peak_from("AMD RYZEN AI MAX+ 395 w/ Radeon 8060S", ZEN5, 2, 3.0, "test").vector_bits == 512


def test_sysfs_frequency_wins_over_cpuinfo(tmp_path: Path) -> None:
    (tmp_path / "base_frequency").write_text("2450000\n")
    assert nominal_ghz(3000.0, tmp_path) == (pytest.approx(2.45), str(tmp_path / "base_frequency"))
    assert nominal_ghz(3000.0, tmp_path / "absent") == (pytest.approx(3.0), "/proc/cpuinfo cpu MHz")


def test_this_machine_is_stable() -> None:
    a, b = cpu_peak(), cpu_peak()
    assert a == b and a.cores >= 1 and a.fp32_gflops >= 0
