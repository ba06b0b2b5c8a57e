"""Many real CLI runs for the price of one interpreter start: a subprocess imports every command
once, then forks a child per run (a few at a time), each in its own folder with its own
environment, argv and output files; a child is a fresh process running the command's ``main()``
exactly as the console script does. Interpreter starts (about 3 s of CPU each, mostly imports)
would otherwise dominate the bad-input suite."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from cli_case import ENTRY, CliResult


@dataclass(frozen=True)
class Job:
    command: str
    args: list[str]
    cwd: Path
    env: dict[str, str]


# The forking runner: reads the jobs as JSON on stdin, writes [exit code, ...] as JSON on stdout.
RUNNER = r"""
import importlib, json, os, signal, sys, time
entry, jobs, workers, timeout = json.load(sys.stdin)
mains = {name: importlib.import_module(module).main for name, module in entry.items()}

def child(job):
    os.chdir(job["cwd"])
    os.environ.update(job["env"])
    out = os.open(job["out"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    err = os.open(job["err"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(out, 1)
    os.dup2(err, 2)
    sys.argv = [job["command"], *job["args"]]
    code = 0
    try:
        mains[job["command"]](prog_name=job["command"])
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:
        import traceback
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)

codes = [None] * len(jobs)
running = {}  # pid -> (index, started)
pending = list(range(len(jobs)))
while pending or running:
    while pending and len(running) < workers:
        i = pending.pop(0)
        pid = os.fork()
        if pid == 0:
            child(jobs[i])
        running[pid] = (i, time.monotonic())
    pid, status = os.waitpid(-1, os.WNOHANG)
    if pid == 0:
        for p, (i, started) in list(running.items()):
            if time.monotonic() - started > timeout:
                os.kill(p, signal.SIGKILL)
        time.sleep(0.01)
        continue
    i, _ = running.pop(pid)
    codes[i] = os.waitstatus_to_exitcode(status)
print(json.dumps(codes))
"""


def run_cli_batch(jobs: list[Job], workers: int = 2, timeout: float = 120.0) -> list[CliResult]:
    """Run every job (see :class:`Job`) and return their results in order."""
    if not jobs:
        return []
    specs = []
    for k, job in enumerate(jobs):
        logs = job.cwd.parent / f".{job.cwd.name}.{k}"
        specs.append({"command": job.command, "args": job.args, "cwd": str(job.cwd), "env": job.env,
                      "out": f"{logs}.out", "err": f"{logs}.err"})
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    entry = {c: ENTRY[c] for c in sorted({job.command for job in jobs})}  # only what runs is imported
    payload = json.dumps([entry, specs, workers, timeout])
    done = subprocess.run([sys.executable, "-c", RUNNER], input=payload, capture_output=True, text=True,
                          timeout=timeout * len(jobs) / workers + 60, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"the CLI runner failed ({done.returncode}): {done.stderr[-2000:]}")
    codes = json.loads(done.stdout.strip().splitlines()[-1])
    results = []
    for code, spec in zip(codes, specs):
        out, err = Path(spec["out"]), Path(spec["err"])
        results.append(CliResult(code, out.read_text(errors="replace"), err.read_text(errors="replace")))
        out.unlink()
        err.unlink()
    return results
