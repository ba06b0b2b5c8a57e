"""A run folder's loss and validation logs as a curve: each periodic validation with the
iteration, the wall hours it was reached at and the stages trained then (from ``log.csv``'s row
of the same iteration), and a Markdown table of it for the README."""

from __future__ import annotations

import csv
from pathlib import Path

PARTS = {  # val.csv column -> table column
    "synthetic-light/output_psnr_y": "light",
    "synthetic-heavy/output_psnr_y": "heavy",
    "real/output_psnr_y": "real",
    "clean/change_psnr_y": "rain-free change",
    "texture/change_psnr_y": "texture change",
}


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def part_values(metrics: dict[str, str | float]) -> dict[str, float]:
    """The table's columns from one flat validation row (``trainer.validate.flat`` keys)."""
    return {col: round(float(metrics[key]), 2) for key, col in PARTS.items() if key in metrics}


def summarize(run_dir: Path, val_file: str = "val.csv") -> dict[str, object]:
    """Iterations, it/s over the whole run, and the validation curve (``val_ema.csv``: the
    curve of the averaged weights, train.ema_decay)."""
    log = _rows(run_dir / "log.csv")
    at = {int(r["iteration"]): r for r in log}
    last = log[-1]
    curve = []
    for r in _rows(run_dir / val_file):
        it = int(r["iteration"])
        if it not in at:
            raise ValueError(f"{run_dir}: validation at iteration {it} has no loss-log row")
        curve.append({"iteration": it, "wall_h": round(float(at[it]["wall_s"]) / 3600, 3),
                      "stages": int(at[it]["stages"]), **part_values(r)})
    return {"iterations": int(last["iteration"]), "wall_h": round(float(last["wall_s"]) / 3600, 3),
            "it_per_s": round(int(last["iteration"]) / float(last["wall_s"]), 4),
            "stages_seen": sorted({int(r["stages"]) for r in log}), "curve": curve}


def markdown(curves: dict[str, dict], baseline: dict[str, float] | None = None,
             baseline_name: str = "bundled weights", every: int = 0) -> str:
    """One row per validation of each run (``curves``: name -> :func:`summarize`), the baseline's
    figures on the same images first; with ``every``, only iterations that are multiples of it
    (and each run's last)."""
    cols = list(PARTS.values())
    lines = ["| run | iteration | wall h | stages | " + " | ".join(cols) + " |",
             "|---|---:|---:|---:|" + "---:|" * len(cols)]

    def cells(point: dict) -> str:
        return " | ".join(f"{point[c]:.2f}" if c in point else "" for c in cols)

    if baseline:
        lines.append(f"| {baseline_name} | | | 12 | {cells(baseline)} |")
    for name, r in curves.items():
        for p in r["curve"]:
            if every and p["iteration"] % every and p is not r["curve"][-1]:
                continue
            lines.append(f"| {name} | {p['iteration']:,} | {p['wall_h']:.2f} | {p['stages']} | {cells(p)} |")
    return "\n".join(lines) + "\n"
