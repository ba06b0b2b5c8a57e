"""trainer/runlog.py: each validation gets the wall time and stages of its own iteration."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from trainer import runlog

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("train_pilots", ROOT / "benchmarks" / "train_pilots.py")
pilots = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pilots)


def _write(path: Path, header: str, rows: list[str]) -> None:
    path.write_text("\n".join([header, *rows]) + "\n")


def test_summary_pairs_each_validation_with_its_wall_time(tmp_path: Path) -> None:
    _write(tmp_path / "log.csv", "iteration,loss,it_per_s,stages,wall_s",
           ["100,0.2,1.0,4,360.0", "200,0.1,0.5,8,1080.0"])
    _write(tmp_path / "val.csv", "iteration,synthetic-light/output_psnr_y,clean/change_psnr_y",
           ["100,25.004,30.0", "200,27.5,31.25"])
    s = runlog.summarize(tmp_path)
    assert s["iterations"] == 200 and s["stages_seen"] == [4, 8]
    assert s["it_per_s"] == round(200 / 1080.0, 4)
    assert s["curve"] == [
        {"iteration": 100, "wall_h": 0.1, "stages": 4, "light": 25.0, "rain-free change": 30.0},
        {"iteration": 200, "wall_h": 0.3, "stages": 8, "light": 27.5, "rain-free change": 31.25},
    ]
    table = runlog.markdown({"v": s}, baseline={"light": 30.0})
    assert "| bundled weights | | | 12 | 30.00 |" in table
    assert "| v | 200 | 0.30 | 8 | 27.50 |" in table
    named = runlog.markdown({"v": s}, {"light": 30.0}, "stage-5 weights")
    assert "| stage-5 weights | | | 12 | 30.00 |" in named
    sparse = runlog.markdown({"v": s}, every=200)  # every 200th iteration, and always the last
    assert "| v | 100 |" not in sparse and "| v | 200 |" in sparse
    assert "| v | 100 |" in runlog.markdown({"v": {"curve": s["curve"][:1]}}, every=200)
    _write(tmp_path / "val_ema.csv", "iteration,synthetic-light/output_psnr_y", ["200,28.0"])
    ema = runlog.summarize(tmp_path, "val_ema.csv")  # the averaged weights' curve
    assert ema["curve"] == [{"iteration": 200, "wall_h": 0.3, "stages": 8, "light": 28.0}]


def test_a_validation_without_a_loss_row_is_an_error(tmp_path: Path) -> None:
    _write(tmp_path / "log.csv", "iteration,loss,it_per_s,stages,wall_s", ["100,0.2,1.0,4,360.0"])
    _write(tmp_path / "val.csv", "iteration,synthetic-light/output_psnr_y", ["150,25.0"])
    with pytest.raises(ValueError, match="iteration 150 has no loss-log row"):
        runlog.summarize(tmp_path)


def test_every_variant_runs_one_thread_at_the_first_learning_rate() -> None:
    for name in pilots.VARIANTS:
        cmd = pilots.command(name, Path("runs"))
        assert cmd[cmd.index("--threads") + 1] == "1"
        assert "optim.milestones=[]" in cmd and f"train.name=pilot_{name}" in cmd
