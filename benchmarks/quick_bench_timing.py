"""When does the default ``derain-bench`` print its first row, and when does it finish, on a cold
cache (a machine's first run for the weights) and a warm one?

Runs ``derain-bench`` (no options) ``--runs`` times in a row with ``DERAIN_DEPLOY_CACHE`` pointed
at a new empty folder, so the first run is cold and the others warm; every stderr line is
time-stamped as it arrives. The targets (issue 17): first row within 20 s, done within 60 s on a
2-core CPU. Writes ``benchmarks/results/quick_bench_<machine>.json`` (or ``--out``). Run it with
nothing else on the machine (pause a training run: ``kill -STOP <pid>``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from derain_deploy.atomic import write_atomic
from derain_deploy.bench.machine import machine_info, versions

ROW = re.compile(r"^\S+ \d+x\d+ b\d+: [\d.]+ ms p50")
TARGETS = {"first_row_s": 20.0, "done_s": 60.0}


def one_run(cache: Path, extra: list[str]) -> dict[str, object]:
    """One ``derain-bench`` run: each stderr line with the seconds since the start."""
    env = {**os.environ, "DERAIN_DEPLOY_CACHE": str(cache)}
    command = [str(Path(sys.executable).with_name("derain-bench")), *extra]
    start = time.perf_counter()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None and proc.stdout is not None
    lines = [(round(time.perf_counter() - start, 2), line.rstrip()) for line in proc.stderr]
    table = proc.stdout.read()
    rc = proc.wait()
    done = round(time.perf_counter() - start, 2)
    rows = [(t, line) for t, line in lines if ROW.match(line)]
    picks = [line for _, line in lines if line.startswith("fastest: ") and " dB from FP32, " in line
             and "a call" not in line and "rejected (" not in line]  # fmt: skip
    return {
        "rc": rc,
        "first_row_s": rows[0][0] if rows else None,
        "done_s": done,
        "rows": [line for _, line in rows],
        "choice": picks[-1] if picks else None,
        "lines": lines,
        "table": table,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2, help="runs in a row: the first cold, the rest warm")
    parser.add_argument("--machine", help="file label (default: from the CPU model)")
    parser.add_argument("--out", type=Path)
    parser.add_argument("bench_args", nargs="*", help="extra derain-bench arguments (after --)")
    args = parser.parse_args()
    info = machine_info()
    label = args.machine or re.sub(r"[^a-z0-9]+", "-", str(info["cpu"]).lower()).strip("-")
    out = args.out or Path(__file__).parent / "results" / f"quick_bench_{label}.json"
    cache = Path(tempfile.mkdtemp(prefix="derain-quick-bench-"))
    try:
        runs = []
        for i in range(args.runs):
            run = one_run(cache, args.bench_args)
            run["cache"] = "cold" if i == 0 else "warm"
            runs.append(run)
            print(f"{run['cache']}: first row at {run['first_row_s']} s, done at {run['done_s']} s, "
                  f"rc {run['rc']}", flush=True)  # fmt: skip
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    loads = os.getloadavg()
    report = {"machine": info, "versions": versions(), "targets": TARGETS, "load_after": loads,
              "command": ["derain-bench", *args.bench_args], "runs": runs}  # fmt: skip
    write_atomic(out, json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    if any(run["rc"] != 0 for run in runs):
        sys.exit("error: a derain-bench run failed (its lines are in the JSON)")


if __name__ == "__main__":
    main()
