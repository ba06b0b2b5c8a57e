"""derain-export's bad-input handling (one line, non-zero exit, nothing written) and re-export."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
from click.testing import CliRunner

import derain_deploy.build.api
from derain_deploy.build.api import ExportOptions, export_model
from export.cli import EXIT_ERROR, main


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def assert_one_line_error(result, expected: str) -> None:
    assert result.exit_code == EXIT_ERROR, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], result.stderr
    assert "Traceback" not in result.output


def test_missing_weights(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert_one_line_error(run(str(tmp_path / "nope.safetensors"), "-o", str(out)), "weights file not found")
    assert not out.exists()


def test_corrupt_weights(tmp_path: Path) -> None:
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    out = tmp_path / "out"
    assert_one_line_error(run(str(bad), "-o", str(out)), "not a safetensors file")
    assert not out.exists()


def test_missing_bundled_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "derain_default.safetensors"
    monkeypatch.setattr(derain_deploy.build.api, "default_weights_path", lambda: missing)
    assert_one_line_error(run("-o", str(tmp_path / "out")), "bundled default weights are missing")


def test_unwritable_output_dir(tiny_weights: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where a directory should be")
    assert_one_line_error(
        run(str(tiny_weights), "-o", str(blocker / "out")), "cannot write to output directory"
    )
    assert blocker.read_text().startswith("a file")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--shape", "1x3x0x64"], "zero or negative"),
        (["--shape", "1x3x64"], "3 dimensions"),
        (["--min", "2x3x64x64", "--max", "1x3x32x32"], "exceeds"),
        (["--shape", "1x3x64x64", "--max", "1x3x128x128"], "not both"),
        (["--stages", "4"], "trained with 3 stages"),
        (["--stages", "0"], "out of range"),
        (["--int8", "--int8-max-loss", "-1"], "must be >= 0"),
        (["--opt-level", "9"], "optimization level"),
        (["--shape", "1x3x100000x100000"], "at most 16384"),
        (["--max", "65x3x64x64"], "batch 65 is over 64"),
        (["--shape", "1x3x8192x8192"], "at most 16777216 pixels"),
        (["--opset", "5"], "opset 5 is not supported"),
        (["--opset", "99"], "opset 99 is not supported"),
        (["--name", "a/b"], "--name 'a/b' must be a plain file name"),
        (["--name", ""], "must be a plain file name"),
    ],
)
def test_invalid_options(tiny_weights: Path, tmp_path: Path, args: list[str], expected: str) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("existing")
    assert_one_line_error(run(str(tiny_weights), "-o", str(out), *args), expected)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]  # nothing written, nothing removed


def test_reexport_is_byte_identical(tiny_export, tiny_weights: Path, tmp_path: Path) -> None:
    again = export_model(
        tiny_weights,
        tmp_path,
        ExportOptions(stages=2, fp16=True, int8=True, bench_shape=None, fp16_large_shape=(1, 3, 240, 320)),
    )
    first = {a.precision: a.path.read_bytes() for a in tiny_export.artifacts}
    second = {a.precision: a.path.read_bytes() for a in again.artifacts}
    assert set(first) == {"fp32", "fp16", "int8"}
    for precision in first:
        assert first[precision] == second[precision], f"{precision} differs between two exports"


def test_cli_prints_artifacts_and_figures(tiny_weights: Path, tmp_path: Path) -> None:
    result = run(
        str(tiny_weights),
        "-o",
        str(tmp_path),
        "--graph",
        "split",
        "--shape",
        "1x3x32x48",
        "--no-bench",
        "--json",
        str(tmp_path / "report.json"),
    )
    assert result.exit_code == 0, result.output
    path = tmp_path / "tiny.split.1x3x32x48.onnx"
    assert f"wrote {path}" in result.stdout
    assert "fp32 parity vs eager: max abs" in result.stdout
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["graph"] == "split" and report["checks"]["fp32"]["shapes"] == [[1, 3, 32, 48]]
    proto = onnx.load(str(path))
    assert [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim] == [1, 3, 32, 48]
    assert not any(n.op_type == "Concat" for n in proto.graph.node)
