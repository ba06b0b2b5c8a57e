"""A row's floors: the time its FLOP would take at the device's FP32 property peak (what targets
use), at the FP32 matmul probe's rate, and at the peak of the row's own precision."""

from __future__ import annotations

import dataclasses

from .peak import peak_gflops
from .report import BenchRow


def floor_ms(batch: int, gflop_per_frame: float, gflops: float | None) -> float | None:
    """Time of one call of ``batch`` frames at ``gflops`` (None where the rate is unknown)."""
    return batch * gflop_per_frame / gflops * 1e3 if gflops else None


def with_floors(row: BenchRow, peak: dict[str, object], probe_gflops: float) -> BenchRow:
    """``row`` with its floors: FP32 property peak (``floor_*``, what targets use), the FP32
    matmul probe (``probe_*``), and the property peak of the row's own precision."""
    floor = floor_ms(row.batch, row.gflop_per_frame, peak_gflops(peak, "fp32"))
    probe = floor_ms(row.batch, row.gflop_per_frame, probe_gflops)
    own = floor_ms(row.batch, row.gflop_per_frame, peak_gflops(peak, row.precision))
    return dataclasses.replace(
        row,
        floor_ms=floor,
        floor_ratio=row.p50_ms / floor if floor else None,
        probe_floor_ms=probe,
        probe_ratio=row.p50_ms / probe if probe else None,
        precision_floor_ratio=row.p50_ms / own if own else None,
    )
