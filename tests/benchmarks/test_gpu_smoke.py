"""benchmarks/gpu_smoke.sh: its dry run (what CI can check without a GPU) names every step."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_smoke.sh"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=60)


def test_dry_run_prints_every_step_and_runs_nothing(tmp_path: Path) -> None:
    out = tmp_path / "smoke"
    done = _run("--out", str(out), "--dry-run", "--install")
    assert done.returncode == 0, done.stderr
    plan = {line.split()[1]: line for line in done.stdout.splitlines() if line.startswith("step ")}
    assert list(plan) == ["install", "versions", "pytest", "parity", "engines", "bench", "video"]
    assert "pip install --no-input -e '.[gpu,trt]'" in plan["install"]
    assert "-m 'gpu or tensorrt'" in plan["pytest"]
    assert "TF32 off" in plan["parity"] and "tf32" in plan["parity"]
    assert "FP16 and INT8" in plan["engines"] and "1x3x256x256" in plan["engines"]
    assert "-r 480x640 --check-parity" in plan["bench"] and "--device cuda" in plan["bench"]
    assert "derain-run" in plan["video"] and "tensorrt engine" in plan["video"]
    assert not out.exists()  # a dry run writes nothing


def test_bad_arguments_are_one_line_errors(tmp_path: Path) -> None:
    done = _run("--out", str(tmp_path), "--steps", "versions,nope", "--dry-run")
    assert done.returncode == 2 and done.stderr.startswith("error: unknown step(s) nope")
    assert len(done.stderr.strip().splitlines()) == 1
