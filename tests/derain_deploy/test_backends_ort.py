"""ONNX Runtime backend: provider checks, parity with eager PyTorch, the per-user ONNX cache."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import onnxruntime
import pytest
import torch

from derain_deploy.artifacts import cached_onnx, user_cache, user_cache_dir
from derain_deploy.backends import open_backend
from derain_deploy.backends.base import BackendError
from derain_deploy.backends.ort_backend import OrtBackend, check_providers, provider_list
from derain_deploy.backends.torch_backend import TorchBackend
from derain_deploy.cpu import usable_cores
from derain_deploy.model import DerainConfig, DerainNet
from derain_deploy.parity import compare
from derain_deploy.weights import save_weights

TINY = DerainConfig(stages=2, channels=4)
CPU_ONLY = "CUDAExecutionProvider" not in onnxruntime.get_available_providers()


@pytest.fixture(scope="module")
def cache(shared_onnx_cache: Path) -> Path:
    return shared_onnx_cache  # shared with test_cli_run.py: one export


pytestmark = pytest.mark.usefixtures("use_shared_onnx_cache")


@pytest.fixture(scope="module")
def weights(tiny_weights: Path) -> Path:
    return tiny_weights


@pytest.fixture(scope="module")
def onnx_file(weights: Path, cache: Path) -> Path:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DERAIN_DEPLOY_CACHE", str(cache))
        path, _ = cached_onnx(weights)
    return path


@pytest.fixture(scope="module")
def batch() -> np.ndarray:
    return np.random.default_rng(0).random((2, 3, 24, 32), dtype=np.float32)


def test_parity_with_torch(onnx_file: Path, weights: Path, batch: np.ndarray) -> None:
    backend = OrtBackend(onnx_file, device="cpu")
    assert backend.info.precision == "fp32"
    assert backend.info.details["providers"] == ["CPUExecutionProvider"]
    assert backend.info.details["threads"] == usable_cores()
    result = compare(backend(batch), TorchBackend(weights)(batch), "fp32", "ort cpu")
    assert result.passed, result.describe()


def test_parity_check_rejects_a_wrong_backend(onnx_file: Path, batch: np.ndarray, tmp_path: Path) -> None:
    torch.manual_seed(7)
    other = TorchBackend(DerainNet(TINY))
    result = compare(OrtBackend(onnx_file)(batch), other(batch), "fp32", "ort vs other weights")
    assert not result.passed
    three_stages = TorchBackend(DerainNet(TINY), stages=1)  # early exit: a different computation
    assert not compare(three_stages(batch), OrtBackend(onnx_file)(batch), "fp32", "fewer stages").passed


def test_cache_reuses_and_keys_by_weights(
    weights: Path, onnx_file: Path, tmp_path: Path, cache: Path
) -> None:
    again, exported = cached_onnx(weights)
    assert again == onnx_file and not exported
    assert user_cache_dir() == cache
    assert not [p for p in onnx_file.parent.iterdir() if p.name.startswith(".")]  # no temp files left
    assert user_cache().onnx_path(weights) == onnx_file
    torch.manual_seed(3)
    other = save_weights(DerainNet(TINY), tmp_path / "tiny.safetensors")  # same name, other weights
    assert user_cache().onnx_path(other) != onnx_file
    assert user_cache().onnx_path(weights, graph="split") != onnx_file
    with pytest.raises(BackendError, match=r"no bf16 ONNX can be exported \(bf16 runs on the torch backend"):
        cached_onnx(weights, precision="bf16")


def test_cuda_refused_by_a_cpu_build(onnx_file: Path) -> None:
    if not CPU_ONLY:
        pytest.skip("this onnxruntime has a CUDA provider")
    with pytest.raises(
        BackendError, match="CUDAExecutionProvider was asked for but this onnxruntime offers only"
    ):
        OrtBackend(onnx_file, device="cuda")
    with pytest.raises(BackendError, match="TensorrtExecutionProvider"):
        open_backend("onnxruntime", onnx_file, device="tensorrt")


@pytest.mark.filterwarnings("ignore:Specified provider")
def test_silent_cpu_fallback_is_caught(onnx_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """onnxruntime-gpu without working CUDA lists the provider, then runs on the CPU: refuse that."""
    if not CPU_ONLY:
        pytest.skip("needs a machine where the CUDA provider cannot load")
    listed = [*onnxruntime.get_available_providers(), "CUDAExecutionProvider"]
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: listed)
    with pytest.raises(BackendError, match="the session runs on CPUExecutionProvider"):
        OrtBackend(onnx_file, device="cuda:0")


def test_check_providers_logic() -> None:
    check_providers("CPUExecutionProvider", ["CPUExecutionProvider"], ["CPUExecutionProvider"])
    check_providers(
        "CUDAExecutionProvider",
        ["CUDAExecutionProvider", "CPUExecutionProvider"],
        ["CUDAExecutionProvider", "CPUExecutionProvider"],
    )
    with pytest.raises(BackendError, match="runs on CPUExecutionProvider"):
        check_providers("CUDAExecutionProvider", ["CUDAExecutionProvider"], ["CPUExecutionProvider"])
    assert provider_list("cuda:1")[1][0] == ("CUDAExecutionProvider", {"device_id": 1, "use_tf32": 0})
    assert provider_list("tensorrt")[0] == "TensorrtExecutionProvider"
    for bad in ("gpu", "cuda:x", "cpu:1"):
        with pytest.raises(BackendError):
            provider_list(bad)


def test_precision_must_match_the_file(onnx_file: Path) -> None:
    with pytest.raises(BackendError, match=r"fp16 was asked for but .* is a fp32 model"):
        OrtBackend(onnx_file, precision="fp16")


def test_bad_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not a protobuf")
    with pytest.raises(BackendError, match=r"cannot load bad\.onnx"):
        OrtBackend(bad)
    with pytest.raises(BackendError, match="model file not found"):
        OrtBackend(tmp_path / "missing.onnx")
    with pytest.raises(BackendError, match="model file not found"):
        open_backend("onnxruntime", tmp_path / "missing.onnx")
    txt = tmp_path / "model.txt"
    txt.write_text("x")
    with pytest.raises(BackendError, match="unsupported model file"):
        open_backend("auto", txt)


def test_auto_says_what_it_chose(
    weights: Path, onnx_file: Path, batch: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    import derain_deploy.backends.openvino_backend as openvino_backend

    monkeypatch.setattr(openvino_backend, "openvino_available", lambda: False)  # else auto prefers it on CPUs
    backend = open_backend("auto", weights)
    assert backend.info.name == "onnxruntime"
    why = str(backend.info.details["chosen_because"])
    assert why.startswith("auto: no TensorRT engine given")
    if CPU_ONLY:
        assert backend.info.device == "cpu" and "no CUDA provider" in why
        assert why.endswith("onnxruntime on the CPU: openvino is not installed")
    assert Path(str(backend.info.details["model"])) == onnx_file  # the cached export
    with pytest.raises(BackendError, match="unknown backend"):
        open_backend("tflite", weights)
    with pytest.raises(BackendError, match="unknown device"):
        open_backend("onnxruntime", weights, device="npu")


@pytest.mark.gpu
def test_cuda_provider_parity(onnx_file: Path, weights: Path, batch: np.ndarray) -> None:
    if CPU_ONLY:
        pytest.skip("onnxruntime-gpu is not installed")
    backend = OrtBackend(onnx_file, device="cuda")
    assert backend.info.details["providers"][0] == "CUDAExecutionProvider"
    assert compare(backend(batch), TorchBackend(weights)(batch), "fp32", "ort cuda").passed


class _Arg:
    def __init__(self, name: str, shape: list[object]) -> None:
        self.name, self.type, self.shape = name, "tensor(float)", shape


class RecordingSession:
    """Stands in for onnxruntime.InferenceSession: records the providers it was given and
    reports the first one as running."""

    made: ClassVar[list[list[object]]] = []

    def __init__(self, path: str, sess_options: object = None, providers: list[object] = ()) -> None:
        RecordingSession.made.append(list(providers))
        self._providers = [p if isinstance(p, str) else p[0] for p in providers]

    def get_providers(self) -> list[str]:
        return self._providers

    def get_inputs(self) -> list[_Arg]:
        return [_Arg("rainy", ["batch", 3, "height", "width"])]

    def get_outputs(self) -> list[_Arg]:
        return [_Arg("derained", ["batch", 3, "height", "width"])]

    def get_modelmeta(self) -> object:
        return type("Meta", (), {"custom_metadata_map": {"precision": "fp32"}})()


@pytest.fixture
def recording(monkeypatch: pytest.MonkeyPatch) -> list[list[object]]:
    gpu = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: gpu)
    monkeypatch.setattr(onnxruntime, "InferenceSession", RecordingSession)
    RecordingSession.made = []
    return RecordingSession.made


def _options(providers: list[object], name: str) -> dict[str, object]:
    return next(p[1] for p in providers if isinstance(p, tuple) and p[0] == name)


def test_cuda_fp32_turns_tf32_off_and_tf32_asks_for_it(onnx_file: Path, recording) -> None:
    backend = OrtBackend(onnx_file, device="cuda")
    assert _options(recording[-1], "CUDAExecutionProvider")["use_tf32"] == 0
    assert backend.info.precision == "fp32"
    backend = OrtBackend(onnx_file, device="cuda", precision="tf32")
    assert _options(recording[-1], "CUDAExecutionProvider")["use_tf32"] == 1
    assert backend.info.precision == "tf32"
    with pytest.raises(BackendError, match="tf32 needs a CUDA GPU"):
        OrtBackend(onnx_file, device="cpu", precision="tf32")


def test_tensorrt_provider_has_engine_cache_and_profile(
    onnx_file: Path, recording, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DERAIN_DEPLOY_CACHE", str(tmp_path))
    monkeypatch.setenv("NVIDIA_TF32_OVERRIDE", "0")  # FP32 (see the next test)
    OrtBackend(onnx_file, device="tensorrt")
    trt = _options(recording[-1], "TensorrtExecutionProvider")
    assert trt["trt_engine_cache_enable"] is True and trt["trt_timing_cache_enable"] is True
    engines = Path(str(trt["trt_engine_cache_path"]))
    assert engines.is_relative_to(tmp_path / "ort-tensorrt") and engines.is_dir()
    assert trt["trt_timing_cache_path"] == trt["trt_engine_cache_path"]
    assert trt["trt_profile_min_shapes"] == "rainy:1x3x64x64"
    assert trt["trt_profile_opt_shapes"] == "rainy:1x3x720x1280"
    assert trt["trt_profile_max_shapes"] == "rainy:4x3x1080x1920"
    assert _options(recording[-1], "CUDAExecutionProvider")["use_tf32"] == 0


def test_tensorrt_provider_fp32_needs_the_tf32_override(
    onnx_file: Path, recording, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ORT's TensorRT provider has no use_tf32 option: TensorRT's TF32 default holds unless
    # NVIDIA_TF32_OVERRIDE=0, so FP32 is only claimed (or granted) with it.
    monkeypatch.setenv("DERAIN_DEPLOY_CACHE", str(tmp_path))
    monkeypatch.delenv("NVIDIA_TF32_OVERRIDE", raising=False)
    assert OrtBackend(onnx_file, device="tensorrt").info.precision == "tf32"
    with pytest.raises(BackendError, match="NVIDIA_TF32_OVERRIDE=0"):
        OrtBackend(onnx_file, device="tensorrt", precision="fp32")
    tf32_folder = _options(recording[-1], "TensorrtExecutionProvider")["trt_engine_cache_path"]
    monkeypatch.setenv("NVIDIA_TF32_OVERRIDE", "0")
    assert OrtBackend(onnx_file, device="tensorrt", precision="fp32").info.precision == "fp32"
    assert _options(recording[-1], "TensorrtExecutionProvider")["trt_engine_cache_path"] != tf32_folder
