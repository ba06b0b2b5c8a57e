"""Recipe variants side by side at equal wall time: the stage curriculum against the flat
12-stage schedule, and bf16 against FP32 (issue 13, item 3).

The variants run at the same time on the same machine, one thread each, from scratch with the
same seed and data, at the recipe's first learning rate (no drops, so that a variant that is
slower per step is not also cut off before its drops), and are all stopped after the same wall
time. Because they share the machine, contention slows them alike; the absolute it/s are lower
than a run alone. Validation is the recipe's periodic one (160-px crops, 8 images a part), run
with the stages the variant trains at.

    python benchmarks/train_pilots.py run --minutes 40        # starts the variants, waits, stops them
    python benchmarks/train_pilots.py report [--out benchmarks/results/train_pilots_<machine>.json]

Run from the repository root. The pilots of 2026-12-02 were started by hand with these commands
(less ``--no-progress``, run folders renamed after).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from trainer.runlog import markdown, summarize

CONFIG = "trainer/configs/default_v2.toml"
PILOT_ITERATIONS = 1600  # the curriculum's schedule is spread over this many iterations
VARIANTS: dict[str, dict[str, str]] = {
    "curriculum_bf16": {"train.stage_schedule": "[[0.0,4],[0.25,8],[0.45,12]]", "train.bf16": "auto"},
    "flat_bf16": {"train.stage_schedule": "[[0.0,12]]", "train.bf16": "auto"},
    "flat_fp32": {"train.stage_schedule": "[[0.0,12]]", "train.bf16": "false"},
}


def command(name: str, runs: Path) -> list[str]:
    """The derain-train command line of one variant."""
    sets = {**VARIANTS[name], "optim.milestones": "[]", "val.every": "100", "train.name": f"pilot_{name}"}
    cmd = ["nice", "-n", "10", "derain-train", CONFIG, "--threads", "1",
           "--iterations", str(PILOT_ITERATIONS), "--out", str(runs / f"pilot_{name}"), "--no-progress"]
    for key, value in sets.items():
        cmd += ["--set", f"{key}={value}"]
    return cmd


def run(minutes: float, runs: Path) -> None:
    """Start every variant, wait ``minutes`` of wall time, stop them (each saves a checkpoint)."""
    with contextlib.ExitStack() as stack:
        procs = [subprocess.Popen(command(n, runs), stderr=subprocess.STDOUT,
                                  stdout=stack.enter_context(open(runs / f"pilot_{n}.log", "w")))
                 for n in VARIANTS]
        time.sleep(minutes * 60)
        for p in procs:
            p.send_signal(signal.SIGINT)
        for p in procs:
            p.wait(timeout=300)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("action", choices=["run", "report"])
    ap.add_argument("--minutes", type=float, default=40.0)
    ap.add_argument("--runs", type=Path, default=Path("runs"))
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if args.action == "run":
        run(args.minutes, args.runs)
        return
    from derain_deploy.atomic import write_atomic
    from derain_deploy.bench.machine import machine_info

    try:
        results = {n: summarize(args.runs / f"pilot_{n}") for n in VARIANTS}
    except (OSError, ValueError, KeyError) as e:
        sys.exit(f"error: {e}")
    print(markdown(results), end="")
    if args.out:
        report = {"benchmark": "train_pilots", "config": CONFIG, "pilot_iterations": PILOT_ITERATIONS,
                  "commands": {n: command(n, args.runs) for n in VARIANTS},
                  "machine": machine_info(), "variants": results}
        write_atomic(args.out, json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
