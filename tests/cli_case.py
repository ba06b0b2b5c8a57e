"""Run a real CLI in a subprocess and check the bad-input promises: a non-zero exit, one
``error:`` line and no traceback, inputs byte-identical afterwards, nothing left at final paths."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

# Each command's click entry point, run as ``python -c`` so that the test needs no console scripts.
ENTRY = {
    "derain-run": "derain_deploy.cli_run",
    "derain-export": "export.cli",
    "derain-bench": "derain_deploy.cli_bench",
    "derain-eval": "derain_deploy.cli_eval",
    "derain-train": "trainer.cli",
    "derain-serve": "derain_deploy.cli_serve",
}


@dataclass(frozen=True)
class CliResult:
    code: int
    stdout: str
    stderr: str


def cli_argv(command: str, args: list[str]) -> list[str]:
    """The command line that runs ``command args`` in a fresh interpreter."""
    code = f"import sys; from {ENTRY[command]} import main; sys.argv[0] = {command!r}; main()"
    return [sys.executable, "-c", code, *args]


def run_cli(command: str, args: list[str], cwd: Path, timeout: float = 120.0,
            env: dict[str, str] | None = None) -> CliResult:
    """Run ``command args`` in a fresh interpreter under ``cwd``; bounded by ``timeout``."""
    full_env = {**os.environ, **(env or {})}
    done = subprocess.run(cli_argv(command, args), cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=full_env)
    return CliResult(done.returncode, done.stdout, done.stderr)


def digests(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (or of ``root`` itself), by relative path."""
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root.parent)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def assert_one_line_error(result: CliResult, contains: str | None = None) -> str:
    """The run failed with exactly one ``error:`` line and no traceback; returns that line."""
    text = result.stdout + result.stderr
    assert result.code != 0, f"exit 0 on bad input:\n{text}"
    assert "Traceback" not in text, f"traceback instead of one error line:\n{text}"
    # click's own usage errors say "Error:"; ours say "error:".
    errors = [line for line in text.splitlines() if line.lower().startswith("error:")]
    assert len(errors) == 1, f"expected one 'error:' line, got {len(errors)}:\n{text}"
    if contains is not None:
        assert contains.lower() in errors[0].lower(), f"{contains!r} not in {errors[0]!r}"
    return errors[0]
