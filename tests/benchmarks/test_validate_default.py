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


def test_out_that_is_one_of_the_merged_reports_is_refused(tmp_path: Path) -> None:
    import subprocess
    import sys

    a, b = _report(tmp_path / "a.json", "old", 30.0), _report(tmp_path / "b.json", "new", 31.0)
    before = a.read_bytes()
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "validate_default.py"), "--reports",
                          str(a), str(b), "--baseline", "old", "--out", str(a)],
                         capture_output=True, text=True, cwd=ROOT)
    assert run.returncode != 0 and a.read_bytes() == before
    assert "Traceback" not in run.stderr and "is one of the reports" in run.stderr


def test_install_renames_the_result_of_the_default_it_replaces(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from derain_deploy.model import DerainConfig, DerainNet
    from derain_deploy.weights import file_sha256, save_weights

    vd = _load()
    target, new = tmp_path / "pkg" / "derain_default.safetensors", tmp_path / "new.safetensors"
    target.parent.mkdir()
    save_weights(DerainNet(DerainConfig(stages=2)), target)
    save_weights(DerainNet(DerainConfig(stages=2)), new)
    old_sha = file_sha256(target)
    monkeypatch.setattr(vd, "default_weights_path", lambda: target)
    monkeypatch.chdir(tmp_path)  # the report names the default as the command was given it: relative
    relative = Path("pkg/derain_default.safetensors")
    report = {"results": {str(relative): {"metrics": _metrics(30.0)}, str(new): {"metrics": _metrics(31.0)}}}
    vd.judge(report, relative)
    vd.install(new, report)
    renamed = f"{relative} (sha256 {old_sha[:12]}, before {new.name} was installed)"
    assert list(report["results"]) == [renamed, str(new)] and report["baseline"] == renamed
    card = json.loads((tmp_path / "pkg" / "derain_default.card.json").read_text())
    assert list(card["compared"]) == [renamed, str(new)] and file_sha256(target) == card["sha256"] != old_sha


def test_a_refused_install_still_writes_the_report(tmp_path: Path) -> None:
    import subprocess
    import sys

    a, b = _report(tmp_path / "a.json", "old", 30.0), _report(tmp_path / "b.json", "new", 29.0)
    out = tmp_path / "merged.json"
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "validate_default.py"), "--reports",
                          str(a), str(b), "--baseline", "old", "--out", str(out), "--install", "new"],
                         capture_output=True, text=True, cwd=ROOT)
    assert run.returncode != 0 and "not installing new" in run.stderr and "Traceback" not in run.stderr
    assert json.loads(out.read_text())["results"]["new"]["verdict"]  # the figures are kept, with why
