"""OpenVINO backend: parity with eager PyTorch, precision checks, per-shape compiles, auto's choice."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from derain_deploy.artifacts import cached_onnx, user_cache
from derain_deploy.backends import open_backend
from derain_deploy.backends.base import BackendError
from derain_deploy.backends.torch_backend import TorchBackend
from derain_deploy.model import DerainConfig, DerainNet
from derain_deploy.parity import compare

ov = pytest.importorskip(
    "openvino", reason="openvino is not installed (pip install 'derain-deploy[openvino]')"
)
from derain_deploy.backends.openvino_backend import COMPILED_SHAPES_KEPT, OpenVinoBackend  # noqa: E402

TINY = DerainConfig(stages=2, channels=4)  # the tiny_weights fixture's config
HAS_BF16 = "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


pytestmark = pytest.mark.usefixtures("use_shared_onnx_cache")


@pytest.fixture(scope="module")
def weights(tiny_weights: Path) -> Path:
    return tiny_weights


@pytest.fixture(scope="module")
def files(weights: Path, shared_onnx_cache: Path) -> dict[str, Path]:
    """The split FP32 and INT8 exports of the tiny weights (INT8 is calibrated: slow-ish, once)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DERAIN_DEPLOY_CACHE", str(shared_onnx_cache))
        return {p: cached_onnx(weights, p, "split")[0] for p in ("fp32", "int8")}


@pytest.fixture(scope="module")
def batch() -> np.ndarray:
    return np.random.default_rng(0).random((2, 3, 24, 32), dtype=np.float32)


def test_fp32_parity_with_torch(files: dict[str, Path], weights: Path, batch: np.ndarray) -> None:
    backend = OpenVinoBackend(files["fp32"], threads=1)
    out = backend(batch)
    assert backend.info.name == "openvino" and backend.info.precision == "fp32"
    assert backend.info.details["conv_precisions"] == ["f32"]  # not OpenVINO's default bf16 on AMX CPUs
    assert out.dtype == np.float32 and out.shape == batch.shape
    result = compare(out, TorchBackend(weights)(batch), "fp32", "openvino fp32")
    assert result.passed, result.describe()


def test_parity_check_rejects_a_wrong_backend(files: dict[str, Path], batch: np.ndarray) -> None:
    torch.manual_seed(7)
    other = TorchBackend(DerainNet(TINY))
    assert not compare(OpenVinoBackend(files["fp32"])(batch), other(batch), "fp32", "other weights").passed


def test_int8_runs_8_bit_convolutions(files: dict[str, Path], weights: Path, batch: np.ndarray) -> None:
    backend = OpenVinoBackend(files["int8"])
    out = backend(batch)
    assert backend.info.precision == "int8"
    assert set(backend.info.details["conv_precisions"]) & {"u8", "i8"}
    result = compare(out, TorchBackend(weights)(batch), "int8", "openvino int8")
    assert result.passed, result.describe()


def test_int8_check_refuses_dequantized_convolutions(
    files: dict[str, Path], batch: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    import derain_deploy.backends.openvino_backend as module

    monkeypatch.setattr(module, "conv_precisions", lambda compiled: {"f32"})
    with pytest.raises(BackendError, match="int8 was asked for but its convolutions run in f32"):
        OpenVinoBackend(files["int8"])(batch)


@pytest.mark.skipif(not HAS_BF16, reason="this CPU has no native bf16 (AVX-512 BF16 or AMX)")
def test_bf16_computes_the_fp32_file_in_bf16(
    files: dict[str, Path], weights: Path, batch: np.ndarray
) -> None:
    backend = OpenVinoBackend(files["fp32"], precision="bf16")
    out = backend(batch)
    assert backend.info.precision == "bf16" and "bf16" in backend.info.details["conv_precisions"]
    result = compare(out, TorchBackend(weights)(batch), "bf16", "openvino bf16")
    assert result.passed, result.describe()


@pytest.mark.skipif(HAS_BF16, reason="this CPU has native bf16, so the refusal cannot happen here")
def test_bf16_is_refused_where_the_cpu_lacks_it(files: dict[str, Path]) -> None:
    # OpenVINO would otherwise compute in f32 and call it bf16.
    with pytest.raises(BackendError, match="bf16 was asked for but this CPU has no native bf16"):
        OpenVinoBackend(files["fp32"], precision="bf16")


def test_each_shape_is_compiled_once_and_a_few_are_kept(files: dict[str, Path]) -> None:
    backend = OpenVinoBackend(files["fp32"], threads=1)
    x = np.random.default_rng(1).random((1, 3, 16, 20), dtype=np.float32)
    first = backend.request(x.shape)
    assert backend.request(x.shape) is first
    for w in range(COMPILED_SHAPES_KEPT):
        backend(np.zeros((1, 3, 8, 8 + w), np.float32))
    assert x.shape not in backend._compiled and len(backend._compiled) == COMPILED_SHAPES_KEPT
    backend.close()
    assert not backend._compiled


def test_precision_and_device_errors(files: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(BackendError, match=r"int8 was asked for but .* is a fp32 model"):
        OpenVinoBackend(files["fp32"], precision="int8")
    with pytest.raises(BackendError, match=r"bf16 was asked for but .* is a int8 model"):
        OpenVinoBackend(files["int8"], precision="bf16")
    with pytest.raises(BackendError, match="precision 'fp16' is not offered"):
        OpenVinoBackend(files["fp32"], precision="fp16")
    with pytest.raises(BackendError, match="runs on the CPU only"):
        OpenVinoBackend(files["fp32"], device="cuda")
    with pytest.raises(BackendError, match="model file not found"):
        OpenVinoBackend(tmp_path / "missing.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not a protobuf")
    with pytest.raises(BackendError, match=r"openvino cannot read bad\.onnx"):
        OpenVinoBackend(bad)
    with pytest.raises(BackendError, match="expected an Nx3xHxW batch"):
        OpenVinoBackend(files["fp32"])(np.zeros((3, 8, 8), np.float32))


def test_open_backend_exports_the_split_graph(
    weights: Path, files: dict[str, Path], batch: np.ndarray
) -> None:
    backend = open_backend("openvino", weights)
    cached = user_cache().onnx_path(weights, "fp32", "split")
    assert Path(str(backend.info.details["model"])) == cached == files["fp32"]
    assert "--backend openvino was asked for" in str(backend.info.details["chosen_because"])
    with pytest.raises(BackendError, match="runs on the CPU only"):
        open_backend("openvino", weights, device="cuda")


def test_auto_prefers_openvino_on_the_cpu_and_says_why(weights: Path, files: dict[str, Path]) -> None:
    backend = open_backend("auto", weights, device="cpu")
    assert backend.info.name == "openvino"
    assert "openvino is installed" in str(backend.info.details["chosen_because"])
    fp16 = open_backend("auto", weights, device="cpu", precision="fp16")
    assert fp16.info.name == "onnxruntime"
    assert "openvino does not run fp16" in str(fp16.info.details["chosen_because"])


def test_bench_specs_open_openvino(tmp_path: Path, batch: np.ndarray) -> None:
    from derain_deploy.backend_spec import open_spec, parse_spec

    torch.manual_seed(0)
    model = DerainNet(TINY).eval()
    fp32 = open_spec(parse_spec("ov:split"), model, tmp_path)
    assert fp32.info.name == "openvino" and fp32.info.precision == "fp32"
    assert Path(str(fp32.info.details["model"])).parent.parent == tmp_path / "onnx"  # the artifact cache
    result = compare(fp32(batch), TorchBackend(model)(batch), "fp32", "ov:split")
    assert result.passed, result.describe()
    if HAS_BF16:  # bf16 computes the same FP32 file: no second export
        bf16 = open_spec(parse_spec("ov:bf16:split"), model, tmp_path)
        assert bf16.info.precision == "bf16" and bf16.info.details["model"] == fp32.info.details["model"]


def test_shared_biases_get_one_copy_per_conv(files: dict[str, Path]) -> None:
    import onnx
    from onnx import numpy_helper

    from derain_deploy.backends.openvino_backend import per_use_biases

    proto = onnx.load(str(files["fp32"]))
    values = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    before = [(n.name, n.input[2]) for n in proto.graph.node if n.op_type == "Conv" and len(n.input) > 2]
    copies = per_use_biases(proto)
    assert copies == len(before) - len({b for _, b in before}) > 0  # the stages share their biases
    after = {n.name: n.input[2] for n in proto.graph.node if n.op_type == "Conv" and len(n.input) > 2}
    assert len(set(after.values())) == len(after)  # each conv its own
    copied = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    for name, bias in before:
        np.testing.assert_array_equal(copied[after[name]], values[bias])
    onnx.checker.check_model(proto)
    assert per_use_biases(proto) == 0
