"""An output holding NaN or Inf fails with one line naming the model (and the frame), never a
black image: checked on a probe frame at open and on every batch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from derain_deploy.backends import open_backend
from derain_deploy.backends.base import BackendInfo, FiniteBackend, NonFiniteOutputError, first_nonfinite
from derain_deploy.model import DerainConfig, DerainNet
from derain_deploy.pipeline import run
from derain_deploy.streams.base import Frame, SourceInfo
from derain_deploy.weights import save_weights

pytestmark = pytest.mark.usefixtures("use_shared_onnx_cache")


@pytest.fixture(scope="module")
def nan_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    net = DerainNet(DerainConfig(stages=2, channels=4))
    with torch.no_grad():
        next(net.parameters()).fill_(float("nan"))
    path = tmp_path_factory.mktemp("nan") / "nan.safetensors"
    save_weights(net, path)
    return path


@pytest.mark.parametrize("name", ["torch", "onnxruntime"])
def test_nan_weights_fail_at_open(nan_weights: Path, name: str) -> None:
    with pytest.raises(NonFiniteOutputError, match=r"nan\.safetensors: the model's output holds NaN or Inf"):
        open_backend(name, nan_weights, device="cpu")


def test_first_nonfinite() -> None:
    batch = np.zeros((3, 3, 4, 4), np.float32)
    assert first_nonfinite(batch) is None
    batch[2, 0, 1, 1] = np.inf
    batch[1, 1, 0, 0] = np.nan
    assert first_nonfinite(batch) == 1
    assert first_nonfinite(np.full((2, 3, 4, 4), 3e38, np.float32)) is None  # a float32 sum overflow only


class _NanOnSecond:
    """Frame 1 of each batch comes back NaN."""

    info = BackendInfo("fake", "cpu", "fp32", {"model": "fake.onnx"})

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        out = batch.copy()
        if len(out) > 1:
            out[1] = np.nan
        return out

    def close(self) -> None:
        pass


class _Source:
    info = SourceInfo(kind="folder", path="imgs", frames=2)

    def __iter__(self):  # type: ignore[no-untyped-def]
        for i, name in enumerate(("a.png", "b.png")):
            yield Frame(image=np.full((8, 8, 3), 0.5, np.float32), index=i, name=name)

    def close(self) -> None:
        pass


class _Sink:
    def __init__(self) -> None:
        self.written, self.aborted, self.closed = 0, False, False

    def write(self, frame: Frame, output: np.ndarray) -> None:
        self.written += 1

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True


def test_the_pipeline_names_the_frame_and_aborts_the_sink() -> None:
    sink = _Sink()
    with pytest.raises(NonFiniteOutputError, match=r"^fake\.onnx: NaN or Inf in the output for b\.png$"):
        run(_Source(), FiniteBackend(_NanOnSecond(), probe=False), sink, batch=2, progress=False)
    assert (sink.written, sink.aborted, sink.closed) == (0, True, False)
