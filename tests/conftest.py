"""Shared fixtures and the gpu / tensorrt markers' automatic skips."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator

import pytest


def _cuda_reason() -> str | None:
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        return "no CUDA GPU on this machine (torch.cuda.is_available() is False)"
    return None


def _tensorrt_reason() -> str | None:
    if importlib.util.find_spec("tensorrt") is None:
        return "TensorRT is not installed (pip install 'derain-deploy[trt]' from NVIDIA's index)"
    return _cuda_reason()


@pytest.fixture(autouse=True, scope="session")
def private_model_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Exports made by tests go to a temporary cache, never the user's ~/.cache/derain-deploy."""
    mp = pytest.MonkeyPatch()
    mp.setenv("DERAIN_DEPLOY_CACHE", str(tmp_path_factory.mktemp("model-cache")))
    yield
    mp.undo()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reasons = {"gpu": _cuda_reason(), "tensorrt": _tensorrt_reason()}
    for item in items:
        for marker, reason in reasons.items():
            if reason and marker in item.keywords:
                item.add_marker(pytest.mark.skip(reason=f"{marker}: {reason}"))
