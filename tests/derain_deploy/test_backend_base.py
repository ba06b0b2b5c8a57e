"""The thin backend base: ``__call__`` checks the batch and clips the output; backends implement
``infer`` only; every backend (and every wrapper) is a context manager."""

from __future__ import annotations

import numpy as np
import pytest

from derain_deploy.backends.base import BackendBase, BackendError, BackendInfo, FiniteBackend
from derain_deploy.backends.openvino_backend import OpenVinoBackend
from derain_deploy.backends.ort_backend import OrtBackend
from derain_deploy.backends.torch_backend import TorchBackend
from derain_deploy.backends.trt_backend import TrtBackend
from derain_deploy.model import DerainConfig, DerainNet
from derain_deploy.tiling import TiledBackend
from derain_deploy.toy_backend import ToyBackend


class Overshoot(BackendBase):
    who = "overshoot"

    def __init__(self, fresh: bool) -> None:
        self.fresh_output = fresh  # type: ignore[misc]
        self.info = BackendInfo("overshoot", "cpu", "fp32")
        self.closed = False
        self.buffer = np.zeros((1, 3, 4, 4), np.float32)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        if self.fresh_output:
            return batch * 2 - 0.5
        self.buffer[...] = batch * 2 - 0.5  # a runtime's own buffer: must not be handed out
        return self.buffer

    def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize("fresh", [True, False])
def test_the_base_checks_the_batch_and_clips(fresh: bool) -> None:
    backend = Overshoot(fresh)
    batch = np.linspace(0, 1, 48, dtype=np.float32).reshape(1, 3, 4, 4)
    out = backend(batch)
    assert out.dtype == np.float32 and out.min() == 0.0 and out.max() == 1.0
    np.testing.assert_allclose(out, np.clip(batch * 2 - 0.5, 0, 1))
    if not fresh:
        assert out is not backend.buffer
    with pytest.raises(BackendError, match="overshoot: expected an Nx3xHxW batch"):
        backend(np.zeros((3, 4, 4), np.float32))
    with pytest.raises(BackendError, match="overshoot: expected an Nx3xHxW batch"):
        backend(np.zeros((1, 1, 4, 4), np.float32))


def test_every_backend_and_wrapper_is_a_context_manager() -> None:
    for cls in (TorchBackend, OrtBackend, OpenVinoBackend, TrtBackend):
        assert issubclass(cls, BackendBase) and "__call__" not in vars(cls) and "infer" in vars(cls)
    inner = Overshoot(True)
    with FiniteBackend(inner, probe=False) as backend:
        assert backend.inner is inner
    assert inner.closed
    inner = Overshoot(True)
    with TiledBackend(inner, (256, 256)) as tiled:
        assert tiled.backend is inner
    assert inner.closed
    with ToyBackend() as toy:
        assert toy(np.ones((1, 3, 2, 2), np.float32)).shape == (1, 3, 2, 2)
    with TorchBackend(DerainNet(DerainConfig(stages=2, channels=4))) as torch_backend:
        y = torch_backend(np.full((1, 3, 16, 16), 0.5, np.float32))
        assert y.shape == (1, 3, 16, 16) and y.min() >= 0.0 and y.max() <= 1.0
    assert torch_backend.model is None  # closed
