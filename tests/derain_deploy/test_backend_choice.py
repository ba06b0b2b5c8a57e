"""Only ``auto`` chooses a backend: a named one runs (on its best device for ``--device auto``),
an impossible or unknown one is an error."""

from __future__ import annotations

from pathlib import Path

import pytest

from derain_deploy.backend_spec import BackendSpec, open_spec
from derain_deploy.backends import open_backend, ort_backend
from derain_deploy.backends.base import BackendError, FiniteBackend
from derain_deploy.model import DerainConfig, DerainNet

pytestmark = pytest.mark.usefixtures("use_shared_onnx_cache")


def test_a_named_backend_with_device_auto_runs_itself(tiny_weights: Path) -> None:
    backend = open_backend("onnxruntime", tiny_weights, device="auto")
    try:
        assert isinstance(backend, FiniteBackend)
        assert backend.info.name == "onnxruntime"  # was openvino ("auto: this onnxruntime has no CUDA ...")
        assert "--backend onnxruntime was asked for; --device auto:" in str(
            backend.info.details["chosen_because"]
        )
    finally:
        backend.close()


def test_an_impossible_or_unknown_backend_is_an_error(tiny_weights: Path, tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="openvino: device 'cuda' is not offered"):
        open_backend("openvino", tiny_weights, device="cuda")
    with pytest.raises(BackendError, match="unknown backend 'onnx'"):
        open_backend("onnx", tiny_weights)
    with pytest.raises(BackendError, match="unknown backend 'bogus'"):  # was: opened TensorRT
        open_spec(BackendSpec("bogus"), DerainNet(DerainConfig(stages=2, channels=4)), tmp_path)


def test_auto_without_onnxruntime_picks_openvino(tiny_weights: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def absent() -> None:
        raise BackendError("onnxruntime is not installed: pip install 'derain-deploy[cpu]'")

    monkeypatch.setattr(ort_backend, "_import_ort", absent)
    backend = open_backend("auto", tiny_weights)
    try:
        assert backend.info.name == "openvino"
        assert "onnxruntime is not installed" in str(backend.info.details["chosen_because"])
    finally:
        backend.close()
