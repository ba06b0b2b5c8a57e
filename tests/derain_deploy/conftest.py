"""Fixtures shared by the backend and CLI tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from derain_deploy.model import DerainConfig, DerainNet
from derain_deploy.weights import save_weights

TINY = DerainConfig(stages=2, channels=4)


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny weights file per test session, so that the ONNX cache exports it once: safetensors
    files are not byte-identical across saves."""
    path = tmp_path_factory.getbasetemp() / "shared-weights" / "tiny.safetensors"
    if not path.is_file():
        torch.manual_seed(0)
        save_weights(DerainNet(TINY), path)
    return path


@pytest.fixture(scope="session")
def shared_onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ONNX cache the backend and CLI tests share (never the user's)."""
    return tmp_path_factory.getbasetemp() / "shared-onnx-cache"


@pytest.fixture
def use_shared_onnx_cache(shared_onnx_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """For ``pytestmark = pytest.mark.usefixtures(...)``: this test exports into the shared cache."""
    monkeypatch.setenv("DERAIN_DEPLOY_CACHE", str(shared_onnx_cache))
