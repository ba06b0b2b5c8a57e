"""The one guard for written paths: never an input, never inside an input folder, never outside
the folder asked for."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from derain_deploy.output_guard import OutputGuardError, check_writes, is_inside


def test_an_input_is_refused_by_path_link_or_hard_link(tmp_path: Path) -> None:
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"weights")
    (tmp_path / "link").symlink_to(weights)
    os.link(weights, tmp_path / "hard")
    for path in (weights, tmp_path / "sub" / ".." / "w.safetensors", tmp_path / "link", tmp_path / "hard"):
        with pytest.raises(OutputGuardError, match=r"^--json .* is an input of this run"):
            check_writes({"--json": path}, [weights])
    check_writes({"--json": tmp_path / "report.json", "--csv": None}, [weights, None])


def test_inside_an_input_folder_or_outside_the_output_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(OutputGuardError, match="inside the input folder"):
        check_writes({"--save-outputs": tmp_path / "ds" / "out"}, input_folders=[tmp_path / "ds"])
    check_writes({"--save-outputs": tmp_path / "dsx"}, input_folders=[tmp_path / "ds"])
    with pytest.raises(OutputGuardError, match="falls outside the output folder"):
        check_writes([("--name", tmp_path / "out" / ".." / "x.onnx")], within=tmp_path / "out")
    check_writes([("--name", tmp_path / "out" / "x.onnx")], within=tmp_path / "out")
    assert is_inside(tmp_path / "a" / "b", tmp_path / "a") and not is_inside(tmp_path / "ab", tmp_path / "a")
