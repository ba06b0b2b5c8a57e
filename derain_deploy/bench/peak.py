"""The floor's rate from what a device is, not from a timed probe: the CPU's peak from
:mod:`derain_deploy.cpu_peak`, a GPU's from ``torch.cuda.get_device_properties``.

GPU peak = SMs x clock x FLOP per SM per clock, per precision, from the table below (dense, no
structured sparsity; FP32 on the CUDA cores, FP16/BF16 on the tensor cores where the
architecture has them). The clock is the properties' ``clock_rate`` (kHz) where torch exposes it,
else the boost clock of a known board from :data:`GPU_BOOST_GHZ`; an unknown clock gives no peak
(and says so) rather than a guess.
"""

from __future__ import annotations

from typing import Any

from ..cpu_peak import cpu_peak, nominal_ghz, peak_from

# compute capability -> FLOP per SM per clock: fp32 (CUDA cores: 2 x FP32 lanes), fp16, bf16
# (tensor cores, dense; None: no fast path). Sources: NVIDIA's architecture whitepapers
# (Volta V100, Turing T4, Ampere A100 / GA10x, Ada L4, Hopper H100, Blackwell B200).
GPU_FLOP_PER_SM_CLOCK: dict[tuple[int, int], tuple[int, int | None, int | None]] = {
    (6, 0): (128, 256, None),  # P100: FP16 at twice FP32 on the CUDA cores, no tensor cores
    (7, 0): (128, 1024, None),  # V100: 8 tensor cores x 64 FMA
    (7, 5): (128, 1024, None),  # T4 / Turing
    (8, 0): (128, 2048, 2048),  # A100
    (8, 6): (256, 1024, 1024),  # A10, RTX 30
    (8, 7): (256, 1024, 1024),  # Orin
    (8, 9): (256, 1024, 1024),  # L4, L40, RTX 40
    (9, 0): (256, 4096, 4096),  # H100, H200
    (10, 0): (256, 8192, 8192),  # B200
    (12, 0): (256, 1024, 1024),  # RTX 50
}
# boost clocks (GHz) of boards whose properties carry no clock (CUDA 13 dropped clockRate)
GPU_BOOST_GHZ = {
    "H200": 1.98, "H100": 1.98, "A100": 1.41, "A10": 1.695, "L4": 2.04, "L40": 2.49, "T4": 1.59,
    "V100": 1.53, "B200": 1.965,
}  # fmt: skip


def gpu_peak_from(props: Any) -> dict[str, object]:
    """Peak GFLOP/s per precision for a GPU described by ``props`` (``name``, ``major``,
    ``minor``, ``multi_processor_count`` and, where present, ``clock_rate`` in kHz)."""
    cc = (int(props.major), int(props.minor))
    sms = int(props.multi_processor_count)
    clock_khz = getattr(props, "clock_rate", None)
    if clock_khz:
        ghz, source = clock_khz / 1e6, "device properties clock_rate"
    else:
        board = next((b for b in sorted(GPU_BOOST_GHZ, key=len, reverse=True) if b in props.name), None)
        ghz, source = (GPU_BOOST_GHZ[board], f"boost clock of the {board} (table)") if board else (0.0, "")
    per_clock = GPU_FLOP_PER_SM_CLOCK.get(cc)
    out: dict[str, object] = {
        "kind": "gpu", "name": props.name, "compute_capability": f"{cc[0]}.{cc[1]}", "sms": sms,
        "ghz": round(ghz, 3), "ghz_source": source or "unknown",
    }  # fmt: skip
    if per_clock is None or not ghz:
        why = f"no FLOP-per-clock entry for compute capability {cc[0]}.{cc[1]}" if per_clock is None else (
            f"no clock in the properties and {props.name} is not in the boost-clock table")
        return {**out, "fp32_gflops": None, "fp16_gflops": None, "bf16_gflops": None, "basis": why}
    rates = [None if f is None else round(sms * ghz * f, 1) for f in per_clock]
    basis = f"{sms} SMs x {ghz:.3f} GHz ({out['ghz_source']}) x {per_clock[0]} FP32 FLOP per SM per clock"
    return {**out, "fp32_gflops": rates[0], "fp16_gflops": rates[1], "bf16_gflops": rates[2], "basis": basis}


def cpu_peak_for(threads: int | None = None) -> dict[str, object]:
    """This CPU's peak for ``threads`` cores (all usable ones when None), as the report keeps it."""
    peak = cpu_peak()
    if threads and threads < peak.cores:
        from ..cpu import cpu_model_and_flags

        model, flags = cpu_model_and_flags()
        ghz, source = nominal_ghz()
        peak = peak_from(model, flags, threads, ghz, source)
    return {"kind": "cpu", **peak.to_dict(), "int8_gflops": peak.int8_gops}


def device_peak(device: str, threads: int | None = None) -> dict[str, object]:
    """The property peak of torch device ``device`` (cpu, cuda:N)."""
    if device == "cpu":
        return cpu_peak_for(threads)
    import torch

    return gpu_peak_from(torch.cuda.get_device_properties(torch.device(device)))


def peak_gflops(peak: dict[str, object], precision: str) -> float | None:
    """The peak rate for ``precision`` (None: no native rate, or none in the table: tf32)."""
    value = peak.get(f"{precision}_gflops")
    return float(value) if isinstance(value, (int, float)) and value > 0 else None
