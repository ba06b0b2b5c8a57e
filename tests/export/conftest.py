"""Fixtures for the export tests: small weights files and one shared export of each kind."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from derain_deploy.model import DerainConfig, DerainNet
from derain_deploy.weights import save_weights

TINY = DerainConfig(stages=3, channels=4)


def make_weights(path: Path, config: DerainConfig, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    return save_weights(DerainNet(config), path)


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_weights(tmp_path_factory.mktemp("weights") / "tiny.safetensors", TINY)


@pytest.fixture(scope="session")
def tiny_net() -> DerainNet:
    torch.manual_seed(0)
    return DerainNet(TINY).eval()


@pytest.fixture(scope="session")
def tiny_onnx(tiny_net: DerainNet):
    """The tiny model's FP32 graph (concat form, dynamic shapes), in memory: do not modify."""
    from derain_deploy.build.onnx_export import export_fp32

    return export_fp32(tiny_net)


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory: pytest.TempPathFactory, tiny_weights: Path):
    """FP32 + FP16 + INT8 of the tiny model, 2 of 3 stages (early exit), no timings."""
    from derain_deploy.build.api import ExportOptions, export_model

    out = tmp_path_factory.mktemp("tiny_export")
    options = ExportOptions(
        stages=2, fp16=True, int8=True, bench_shape=None, fp16_large_shape=(1, 3, 240, 320)
    )
    return export_model(tiny_weights, out, options)
