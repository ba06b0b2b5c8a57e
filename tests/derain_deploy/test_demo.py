"""The README's first command: a rainy clip, derained by the bundled model, scored."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from derain_deploy.demo import main, run_demo
from derain_deploy.streams import open_source


def frame_count(path: Path) -> int:
    source = open_source(path)
    try:
        return sum(1 for _ in source)
    finally:
        source.close()


def test_demo_derains_the_clip_with_the_bundled_model(tmp_path: Path) -> None:
    r = run_demo(tmp_path, frames=3, size=(64, 96), preset="heavy", backend="torch", progress=False)
    for path in (r.rainy_video, r.derained_video, r.compare_video):
        assert path.is_file() and path.parent == tmp_path
        assert frame_count(path) == 3
    # heavy synthetic rain: the bundled model must improve it clearly, not just pass it through
    assert r.psnr_derained > r.psnr_rainy + 3.0, (r.psnr_rainy, r.psnr_derained)


def test_demo_cli_prints_psnr_and_paths(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = CliRunner().invoke(main, ["-o", str(out), "--frames", "2", "--backend", "torch", "-q"])
    assert result.exit_code == 0, result.output
    assert "PSNR_Y" in result.output and str(out / "rainy.derained.mp4") in result.output
    assert "side by side:" in result.output


@pytest.mark.parametrize("backend", ["no-such-backend"])
def test_demo_bad_backend_is_one_line(tmp_path: Path, backend: str) -> None:
    result = CliRunner().invoke(main, ["-o", str(tmp_path), "--frames", "1", "--backend", backend])
    assert result.exit_code == 1
    assert result.output.startswith("error: ") and result.output.count("\n") == 1
