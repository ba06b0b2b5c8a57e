"""One parity result and one tolerance per precision, for the bench and the builder's FP32 gate."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from derain_deploy import parity
from derain_deploy.parity import TOLERANCES, ParityResult, compare


def test_the_builder_and_the_bench_judge_fp32_alike() -> None:
    from derain_deploy.build import verify
    from derain_deploy.build.onnx_export import export_fp32, serialize
    from derain_deploy.model import DerainConfig, DerainNet

    assert verify.ParityResult is ParityResult
    assert verify.FP32_MAX_ABS == TOLERANCES["fp32"][1] == 1e-4
    torch.manual_seed(0)
    net = DerainNet(DerainConfig(stages=2, channels=4)).eval()
    result = verify.check_fp32_parity(net, serialize(export_fp32(net)))
    assert isinstance(result, ParityResult) and result.passed and result.precision == "fp32"
    assert result.tolerance == result.threshold == TOLERANCES["fp32"][1]
    assert result.shapes == [list(s) for s in verify.PARITY_SHAPES] and result.shape in result.shapes
    assert "shapes" in result.to_dict()


def test_a_bench_result_judges_one_shape() -> None:
    ref = np.full((1, 3, 4, 4), 0.5, np.float32)
    ok, off = compare(ref + 5e-5, ref, "fp32", "a"), compare(ref + 5e-4, ref, "fp32", "b")
    assert ok.passed and not off.passed and ok.shapes == [] and "shapes" not in ok.to_dict()
    with pytest.raises(ValueError, match="no parity tolerance"):
        compare(ref, ref, "fp8", "c")
    assert parity.__doc__ and "fp32: max abs <= 1e-4" in parity.__doc__
