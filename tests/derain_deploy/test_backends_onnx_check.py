"""Foreign ONNX models are checked at open: one NCHW 3-channel float input, one output of its shape."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnx
import pytest
from bad_files import foreign_onnx

from derain_deploy.backends import open_backend
from derain_deploy.backends.base import BackendError
from derain_deploy.backends.onnx_check import check_io

DYN = ["N", 3, "H", "W"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"in_shape": ["N", 1, "H", "W"], "out_shape": ["N", 1, "H", "W"]}, "input rainy has 1 channels"),
        ({"in_shape": ["N", 3, "H"], "out_shape": ["N", 3, "H"]}, "input rainy has 3 dimensions"),
        ({"in_shape": DYN, "out_shape": ["N", 1, "H", "W"], "op": "ReduceMean"}, "derained is Nx1xHxW"),
        ({"in_shape": DYN, "out_shape": ["N", 3, 32, 32]}, "output derained is Nx3x32x32"),
        ({"in_shape": DYN, "out_shape": DYN, "elem": "INT64"}, "rainy is int64; expected float32/float16"),
        ({"in_shape": DYN, "out_shape": DYN, "inputs": 2}, "2 inputs"),
    ],
)
def test_foreign_models_are_refused(tmp_path: Path, kwargs: dict, message: str) -> None:
    path = foreign_onnx(tmp_path / "m.onnx", **kwargs)
    with pytest.raises(BackendError) as err:
        check_io(onnx.load(str(path)), path.name)
    assert message in str(err.value) and "m.onnx" in str(err.value) and "\n" not in str(err.value)


def test_other_names_are_said(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = foreign_onnx(tmp_path / "m.onnx", DYN, DYN, names=("input", "output"))
    with caplog.at_level(logging.WARNING):
        check_io(onnx.load(str(path)), path.name)
    assert "not a derain-export file" in caplog.text and "'input'" in caplog.text


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_backends_check_at_open(tmp_path: Path, backend: str) -> None:
    grey = foreign_onnx(tmp_path / "grey.onnx", ["N", 1, "H", "W"], ["N", 1, "H", "W"])
    with pytest.raises(BackendError, match="1 channels"):
        open_backend(backend, str(grey), "cpu", None)


def test_static_input_shape_mismatch_is_one_line(tmp_path: Path) -> None:
    path = foreign_onnx(tmp_path / "static.onnx", [1, 3, 32, 32], [1, 3, 32, 32])
    backend = open_backend("onnxruntime", str(path), "cpu", None)
    assert backend(np.zeros((1, 3, 32, 32), np.float32)).shape == (1, 3, 32, 32)
    with pytest.raises(BackendError, match=r"static.onnx takes only 1x3x32x32 input, got 1x3x24x32"):
        backend(np.zeros((1, 3, 24, 32), np.float32))
