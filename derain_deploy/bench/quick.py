"""``derain-bench`` without ``--full``: an answer in under a minute on a 2-core CPU.

One mid-size resolution, short budgets, and the rows that say the most for the device: eager
FP32 (the reference, always run first), the fastest FP32 backend and the fastest precision that
stays within the quality budget (both from :mod:`derain_deploy.fastest`, whose verdicts and
exported files are cached per weights and machine, so only a first run pays for exports).
Eager FP32 at 720x1280 takes about 40 s a frame on such a CPU: the quick bench never runs it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..backend_spec import EAGER_FP32, BackendSpec

QUICK_RESOLUTION = (360, 640)
QUICK_BUDGET_S = 1.5  # timed seconds per row, after one warm-up call
QUICK_MIN_REPS = 1
QUICK_MAX_REPS = 20
QUICK_PROBE_REPEATS = 5
FULL_BUDGET_S = 8.0
FULL_MIN_REPS = 3
FULL_PROBE_REPEATS = 20


@dataclass(frozen=True)
class Mode:
    """The settings a mode gives where the command line names none."""

    full: bool
    budget_s: float
    min_reps: int
    max_reps: int
    probe_repeats: int
    resolutions: list[tuple[int, int]] | None  # None: the bench's default matrix


def mode(full: bool) -> Mode:
    if full:
        return Mode(True, FULL_BUDGET_S, FULL_MIN_REPS, 100, FULL_PROBE_REPEATS, None)
    quick = [QUICK_RESOLUTION]
    return Mode(False, QUICK_BUDGET_S, QUICK_MIN_REPS, QUICK_MAX_REPS, QUICK_PROBE_REPEATS, quick)


def quick_rows(best_fp32: BackendSpec, fastest: BackendSpec) -> list[BackendSpec]:
    """Eager FP32, the best FP32 backend and the fastest precision, without repeats."""
    rows = [EAGER_FP32.with_device(best_fp32.device)]
    for spec in (best_fp32, fastest):
        if spec not in rows:
            rows.append(spec)
    return rows
