"""PyTorch eager backend: output shape and range, parity with the model, refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from derain_deploy.backends import open_backend
from derain_deploy.backends.base import Backend, BackendError
from derain_deploy.backends.torch_backend import TorchBackend
from derain_deploy.model import DerainConfig, DerainNet
from derain_deploy.parity import compare
from derain_deploy.weights import save_weights

TINY = DerainConfig(stages=2, channels=4)


@pytest.fixture(scope="module")
def net() -> DerainNet:
    torch.manual_seed(0)
    return DerainNet(TINY).eval()


@pytest.fixture(scope="module")
def batch() -> np.ndarray:
    return np.random.default_rng(0).random((2, 3, 24, 32), dtype=np.float32)


def reference(net: DerainNet, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return net(torch.from_numpy(x)).clamp(0, 1).numpy()


@pytest.mark.parametrize("channels_last", [False, True])
def test_matches_the_model(net: DerainNet, batch: np.ndarray, channels_last: bool) -> None:
    backend = TorchBackend(net, channels_last=channels_last)
    assert isinstance(backend, Backend)
    out = backend(batch)
    assert out.shape == batch.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert compare(out, reference(net, batch), "fp32", "torch").passed


def test_parity_check_rejects_another_model(batch: np.ndarray, net: DerainNet) -> None:
    torch.manual_seed(1)
    other = TorchBackend(DerainNet(TINY).eval())
    assert not compare(other(batch), reference(net, batch), "fp32", "wrong weights").passed


def test_bf16_autocast_within_tolerance(net: DerainNet, batch: np.ndarray) -> None:
    backend = TorchBackend(net, precision="bf16")
    assert backend.info.precision == "bf16"
    result = compare(backend(batch), reference(net, batch), "bf16", "torch bf16")
    assert result.passed, result.describe()


def test_stage_outputs(net: DerainNet, batch: np.ndarray) -> None:
    out, stages = TorchBackend(net).run_stages(batch)
    assert len(stages) == TINY.stages
    assert all(s.shape == batch.shape for s in stages)
    np.testing.assert_allclose(out, reference(net, batch), atol=1e-5)


def test_loads_weights_file(tmp_path, net: DerainNet, batch: np.ndarray) -> None:
    path = save_weights(net, tmp_path / "w.safetensors")
    backend = open_backend("torch", path, "cpu")
    assert backend.info.name == "torch" and backend.info.device == "cpu"
    assert "torch was asked for" in str(backend.info.details["chosen_because"])
    assert compare(backend(batch), reference(net, batch), "fp32", "torch").passed


def test_refusals(tmp_path, net: DerainNet) -> None:
    with pytest.raises(BackendError, match="fp16 was asked for on the CPU"):
        TorchBackend(net, device="cpu", precision="fp16")
    with pytest.raises(BackendError, match="precision 'int8'"):
        TorchBackend(net, precision="int8")
    with pytest.raises(BackendError, match=r"\.safetensors"):
        TorchBackend(tmp_path / "model.onnx")
    with pytest.raises(BackendError, match="Nx3xHxW"):
        TorchBackend(net)(np.zeros((3, 8, 8), np.float32))
    with pytest.raises(BackendError, match="unknown device"):
        TorchBackend(net, device="gpu7")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_cuda_missing_is_an_error(net: DerainNet) -> None:
    with pytest.raises(BackendError, match="no CUDA GPU"):
        TorchBackend(net, device="cuda")


@pytest.mark.gpu
def test_cuda_fp16_parity(net: DerainNet, batch: np.ndarray) -> None:
    backend = TorchBackend(net, device="cuda", precision="fp16")
    result = compare(backend(batch), reference(net, batch), "fp16", "torch fp16 cuda")
    assert result.passed, result.describe()


def _snapshot(net: DerainNet) -> list[tuple[str, torch.dtype, torch.device, tuple[int, ...], torch.Tensor]]:
    return [(n, p.dtype, p.device, p.stride(), p.detach().clone()) for n, p in net.state_dict().items()]


@pytest.mark.parametrize(("precision", "channels_last"), [("fp32", True), ("bf16", True), ("bf16", False)])
def test_backend_leaves_the_given_module_alone(precision: str, channels_last: bool) -> None:
    torch.manual_seed(0)
    net = DerainNet(TINY).eval()
    before = _snapshot(net)
    backend = TorchBackend(net, precision=precision, channels_last=channels_last)
    backend(np.zeros((1, 3, 16, 16), np.float32))
    assert backend.model is not net
    after = _snapshot(net)
    assert [b[:4] for b in before] == [a[:4] for a in after]  # dtype, device, layout
    assert all(torch.equal(b[4], a[4]) for b, a in zip(before, after))


def test_fp32_on_cuda_turns_tf32_off_per_call(net: DerainNet) -> None:
    from derain_deploy.backends import torch_backend

    assert torch_backend.tf32_setting("cuda", "fp32") is False
    assert torch_backend.tf32_setting("cuda", "tf32") is True
    assert torch_backend.tf32_setting("cpu", "fp32") is None
    seen = []

    class Probe(torch.nn.Module):
        config = TINY

        def forward(self, x, return_stages=False, stages=None):  # type: ignore[no-untyped-def]
            seen.append((torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32))
            return x

    backend = TorchBackend(net)
    backend.model, backend._tf32 = Probe(), False  # as on CUDA with fp32
    saved = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
    try:
        backend(np.zeros((1, 3, 8, 8), np.float32))
        assert seen == [(False, False)]
        assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32  # restored
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
    with pytest.raises(BackendError, match="tf32 needs a CUDA GPU"):
        TorchBackend(net, precision="tf32")
