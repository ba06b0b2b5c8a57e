"""benchmarks/race.py and benchmarks/int8_calibration.py: the pieces CI can check without the
runtimes or a full-size model (a failed runtime is a row with its reason, not a crash)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str):  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


race = _load("race")
calibration = _load("int8_calibration")


def test_a_failing_conversion_is_a_reason_not_a_crash(tmp_path: Path) -> None:
    cmd = [sys.executable, "-c", "import sys; print('step 1'); sys.exit('bad op: Foo')"]
    with pytest.raises(race.SkipError, match=r"pnnx failed \(exit 1\): bad op: Foo"):
        race._run(cmd, "pnnx", cwd=tmp_path)
    with pytest.raises(race.SkipError, match="no-such-tool not found"):
        race._tool("no-such-tool")


def test_markdown_has_a_row_per_runtime_with_speed_against_openvino() -> None:
    machine = {"cpu": "Test CPU", "cores_usable": 2}
    rows = [
        {
            "runtime": "openvino",
            "version": "1",
            "graph": "split",
            "p50_ms": 1000.0,
            "min_ms": 990.0,
            "max_abs": 1e-6,
            "psnr_db": 120.0,
        },
        {
            "runtime": "iree",
            "version": "3",
            "graph": "split",
            "p50_ms": 500.0,
            "min_ms": 480.0,
            "max_abs": 2e-6,
            "psnr_db": 118.0,
        },
        {"runtime": "tvm", "version": None, "graph": "concat", "reason": "not installed (apache-tvm)"},
    ]
    text = race.markdown(
        {"machine": machine, "reps": 3, "load_before": [1.0], "load_after": [2.0], "rows": rows}
    )
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    assert len(lines) == 1 + len(rows)
    assert "| iree | 3 | split | 500 | 480 | 2.00x |" in text
    assert "not installed (apache-tvm)" in lines[-1]
    assert "Test CPU (2 cores)" in text and "load average 1.0 before, 2.0 after" in text


def test_calibration_variants_are_named_once_and_build_recipes() -> None:
    from derain_deploy.build import precision

    variants = calibration.variants(Path("photos"), roles=True)
    names = [v["name"] for v in variants]
    assert len(names) == len(set(names))
    fields = {f for f in precision.Int8Recipe.__dataclass_fields__}
    for v in variants:
        if "nncf" not in v:
            precision.Int8Recipe(**{k: val for k, val in v.items() if k in fields})
    assert {f"float {r}" for r in calibration.ROLES} <= set(names)


def test_check_set_is_fixed() -> None:
    a, b = calibration.check_set(32, 48, None), calibration.check_set(32, 48, None)
    assert a.shape == (6, 3, 32, 48) and (a == b).all()
