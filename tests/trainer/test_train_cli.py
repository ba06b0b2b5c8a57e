"""derain-train through click's CliRunner: a tiny run, bad input as one-line errors."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from trainer_fixtures import tiny_overrides

from trainer.cli import main


def _args(clean_dir: Path, out: Path) -> list[str]:
    args: list[str] = []
    for o in tiny_overrides(clean_dir, out, **{"train.iterations": 2}):
        args += ["--set", o]
    return args


def test_tiny_run_and_resume(clean_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(main, [*_args(clean_dir, tmp_path / "o"), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "o" / "derain.safetensors").is_file() and "model card:" in res.output
    args = [*_args(clean_dir, tmp_path / "o"), "--iterations", "3", "--resume", "--no-progress"]
    res = runner.invoke(main, args)
    assert res.exit_code == 0, res.output
    assert "resumed" in res.output


def test_errors_are_one_line(clean_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nspeed = 1\n")
    cases = [
        [str(bad)],
        [str(tmp_path / "none.toml")],
        ["--set", f"data.clean=[{tmp_path / 'missing'}]", "--out", str(tmp_path / "x")],
        ["--set", f"data.paired=[{clean_dir}]", "--out", str(tmp_path / "y")],
        [*_args(clean_dir, tmp_path / "z"), "--set", "loss.perceptual=1", "--set",
         f"loss.vgg_weights={tmp_path / 'vgg.pth'}"],
        ["--set", "data.crop=2"],
    ]
    for args in cases:
        res = runner.invoke(main, args)
        assert res.exit_code == 1, (args, res.output)
        lines = [line for line in res.output.splitlines() if line.startswith("error:")]
        assert len(lines) == 1 and "Traceback" not in res.output, res.output
