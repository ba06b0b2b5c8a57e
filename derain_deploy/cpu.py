"""This CPU: the cores this process may use, and what it computes natively (read once from
/proc/cpuinfo on Linux, empty elsewhere)."""

from __future__ import annotations

import functools
import os
import platform

# Flags that give bf16 arithmetic in hardware: AVX-512 BF16 and AMX on x86, the BF16 extension on Arm.
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")


def usable_cores() -> int:
    """Cores this process may use (the affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@functools.cache
def cpu_model_and_flags() -> tuple[str, frozenset[str]]:
    """The CPU's model name and feature flags (``flags`` on x86, ``Features`` on Arm)."""
    model, flags = platform.processor() or platform.machine(), frozenset()
    try:
        with open("/proc/cpuinfo") as f:
            lines = f.read().splitlines()
    except OSError:
        return model, flags
    fields = [(key.strip(), value) for key, _, value in (l.partition(":") for l in lines)]
    model = next((v.strip() for k, v in fields if k == "model name"), model)
    flags = frozenset(next((v.split() for k, v in fields if k in ("flags", "Features")), []))
    return model, flags


def native_bf16() -> bool:
    """True where the CPU has bf16 instructions; elsewhere torch emulates bf16 autocast, measured
    10x slower than FP32 on an AVX2 EPYC (benchmarks/results/train_step_amd-epyc-2c.json)."""
    flags = cpu_model_and_flags()[1]
    return any(f in flags for f in NATIVE_BF16_FLAGS)


def no_bf16_reason() -> str:
    """One phrase for messages: what this CPU lacks."""
    return f"this CPU ({cpu_model_and_flags()[0]}) has no native bf16 (AVX-512 BF16, AMX or Arm BF16)"
