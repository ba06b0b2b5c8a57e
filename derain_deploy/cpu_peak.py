"""The CPU's peak arithmetic rate from what it is, not from a timed probe.

peak = cores x clock x FMA ports x vector lanes x 2 FLOP per FMA (x the packing of bf16/int8 dot
products). Cores come from the affinity mask, the clock from the nominal frequency the OS reports
(``cpu MHz`` on a VM, where it is the TSC rate; the highest of cpufreq's base/max where exposed),
vector width and dot-product instructions from the feature flags, and the FMA port count from the
vendor and width (two on Intel cores with AVX-512 or AVX2 and on AMD Zen's 256-bit pipes; Zen 4
runs a 512-bit FMA as two halves, so the same 32 FP32 FLOP a cycle as with AVX2). Zen 5, told
from Zen 4 by AVX512_VP2INTERSECT (a KVM guest's model name may say only "AMD EPYC"), has 512-bit
pipes on servers and desktops, 64 FP32 FLOP a cycle; its thin-laptop parts ("Ryzen AI", but not
"Ryzen AI Max") keep the two halves.

A number read from properties does not move between runs; a matmul probe does (87 to 168 GFLOP/s
on one EPYC). Turbo clocks above the nominal frequency can make a probe exceed this peak: the
result says which frequency it used so that a ratio can be read honestly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from .cpu import cpu_model_and_flags, usable_cores

CPUFREQ = Path("/sys/devices/system/cpu/cpu0/cpufreq")
AMX_BF16_FLOP_PER_CYCLE = 1024  # one TMUL tile multiply a cycle: 16x32 bf16 pairs, 2 FLOP each


@dataclass(frozen=True)
class CpuPeak:
    """Peak GFLOP/s per precision for the cores this process may use."""

    cores: int
    ghz: float
    ghz_source: str
    vector_bits: int
    fma_ports: int
    fp32_gflops: float
    bf16_gflops: float | None  # None: no native bf16 (it would be emulated)
    int8_gops: float | None  # None: no VNNI/AMX-INT8 (u8 x s8 pairs via VPMADDUBSW, 16-bit sums)
    basis: str

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def nominal_ghz(cpuinfo_mhz: float | None = None, sysfs: Path = CPUFREQ) -> tuple[float, str]:
    """(GHz, where it came from): cpufreq's base frequency, else its max, else ``cpu MHz``."""
    for name in ("base_frequency", "cpuinfo_max_freq"):
        try:
            khz = int((sysfs / name).read_text().split()[0])
            return khz / 1e6, f"{sysfs / name}"
        except (OSError, ValueError, IndexError):
            continue
    if cpuinfo_mhz is None:
        cpuinfo_mhz = _cpuinfo_mhz()
    if cpuinfo_mhz:
        return cpuinfo_mhz / 1e3, "/proc/cpuinfo cpu MHz"
    return 0.0, "unknown"


def _cpuinfo_mhz() -> float | None:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("cpu mhz"):
                    return float(line.split(":")[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def peak_from(model: str, flags: frozenset[str], cores: int, ghz: float, ghz_source: str) -> CpuPeak:
    """The peak for a CPU described by its model name, flags, cores and clock."""
    amd = "AMD" in model.upper()
    halves = amd and not _zen5_full_width(model, flags)
    if "avx512f" in flags and not halves:
        bits, ports = 512, 2
    elif "avx512f" in flags or "avx2" in flags or "avx" in flags:
        bits, ports = 256, 2  # AMD: 2 x 256-bit pipes, a 512-bit op takes both
    elif "asimd" in flags:
        bits, ports = 128, 2
    else:
        bits, ports = 128, 1
    lanes = bits // 32
    per_cycle = ports * lanes * 2
    fp32 = cores * ghz * per_cycle
    bf16 = None
    if "amx_bf16" in flags:
        bf16 = cores * ghz * AMX_BF16_FLOP_PER_CYCLE
    elif "avx512_bf16" in flags or "bf16" in flags:
        bf16 = 2 * fp32  # a bf16 dot product does two FMAs per FP32 lane
    int8 = None
    if "amx_int8" in flags:
        int8 = cores * ghz * 2 * AMX_BF16_FLOP_PER_CYCLE
    elif {"avx512_vnni", "avx_vnni"} & flags:
        int8 = 4 * fp32  # four u8 x s8 products per 32-bit lane
    basis = (f"{cores} cores x {ghz:.2f} GHz ({ghz_source}) x {ports} FMA ports x {lanes} FP32 lanes x 2"
             f"{' (AMD: 512-bit ops as two 256-bit halves)' if halves and 'avx512f' in flags else ''}")
    return CpuPeak(cores, round(ghz, 3), ghz_source, bits, ports, round(fp32, 1),
                   None if bf16 is None else round(bf16, 1), None if int8 is None else round(int8, 1), basis)


def _zen5_full_width(model: str, flags: frozenset[str]) -> bool:
    """Whether an AMD CPU is a Zen 5 with 512-bit FP pipes (see the module docstring)."""
    name = model.upper()
    laptop = "RYZEN AI" in name and "MAX" not in name
    return "avx512_vp2intersect" in flags and "avx512f" in flags and not laptop


def cpu_peak() -> CpuPeak:
    """This machine's peak, read from the OS."""
    model, flags = cpu_model_and_flags()
    ghz, source = nominal_ghz()
    return peak_from(model, flags, usable_cores(), ghz, source)
