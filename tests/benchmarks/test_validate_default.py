"""benchmarks/validate_default.py: reports evaluated apart (each judged against its own first
weights) merge into one judged against the chosen baseline; reports of another setup do not."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load():  # type: ignore[no-untyped-def]
    path = ROOT / "benchmarks" / "validate_default.py"
    spec = importlib.util.spec_from_file_location("bench_validate_default", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def _metrics(light: float) -> dict[str, dict[str, float]]:
    rainy = {"input_psnr_y": 20.0, "share_better": 1.0, "n": 4}
    return {"synthetic-light": {**rainy, "output_psnr_y": light},
            "synthetic-heavy": {**rainy, "output_psnr_y": 20.0}, "real": {**rainy, "output_psnr_y": 25.0},
            "clean": {"n": 4, "change_psnr_y": 37.0, "change_psnr_y_min": 30.0}}


def _report(path: Path, weights: str, light: float, seed: int = 1234) -> Path:
    path.write_text(json.dumps({"config": "c.toml", "seed": seed, "baseline": weights,
                                "results": {weights: {"metrics": _metrics(light)}}}))
    return path


def test_reports_judged_apart_merge_against_the_chosen_baseline(tmp_path: Path) -> None:
    vd = _load()
    a, b = _report(tmp_path / "a.json", "old", 30.0), _report(tmp_path / "b.json", "new", 31.0)
    merged = vd.merge_reports([a, b])
    vd.judge(merged, Path("old"))
    assert merged["baseline"] == "old" and list(merged["results"]) == ["old", "new"]
    assert merged["results"]["new"]["verdict"] == [] and merged["results"]["new"]["score"] > \
        merged["results"]["old"]["score"]


def test_reports_of_another_setup_are_refused(tmp_path: Path) -> None:
    vd = _load()
    with pytest.raises(SystemExit, match=r"reports differ in \['seed'\]"):
        vd.merge_reports([_report(tmp_path / "a.json", "old", 30.0),
                          _report(tmp_path / "b.json", "new", 31.0, seed=1)])
