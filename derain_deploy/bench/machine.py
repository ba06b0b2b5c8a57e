"""The machine a bench runs on: CPU, cores, memory, GPU and versions; the matmul probe (the
floor's rate) and the memory probes (peak RSS, CUDA device memory)."""

from __future__ import annotations

import math
import os
import platform
import time
from importlib import metadata

import numpy as np
import torch

from ..backends import registry
from ..cpu import cpu_model_and_flags, usable_cores

# ---------------------------------------------------------------- machine, versions, probe


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


