"""TensorRT backend: the sidecar checks run without TensorRT; real engines only where it exists."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from derain_deploy.backends import open_backend
from derain_deploy.backends.base import BackendError
from derain_deploy.backends.trt_backend import TrtBackend, check_sidecar, read_sidecar, sidecar_path

# as derain_deploy/build/trt_build.py writes it (the keys this backend reads, plus a few others)
META = {
    "format": "derain-deploy-engine",
    "tensorrt_version": "10.16.1.11",
    "gpu": "NVIDIA H100 80GB HBM3",
    "compute_capability": "9.0",
    "precision": "fp16",
    "hardware_compatible": False,
    "version_compatible": False,
}


def engine_with_sidecar(tmp_path: Path, meta: object) -> Path:
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"not a real engine")
    sidecar_path(engine).write_text(json.dumps(meta))
    return engine


def test_sidecar_name() -> None:
    assert sidecar_path("a/model.engine") == Path("a/model.engine.json")


def test_matching_sidecar_passes(tmp_path: Path) -> None:
    meta = read_sidecar(engine_with_sidecar(tmp_path, META))
    check_sidecar(meta, "10.16.1.11", "NVIDIA H100 80GB HBM3", "9.0")
    check_sidecar({**meta, "compute_capability": [9, 0]}, "10.16.1.11", "NVIDIA H100 80GB HBM3", "9.0")


@pytest.mark.parametrize(
    ("version", "gpu", "cc", "message"),
    [
        (
            "11.4.0.106",
            "NVIDIA H100 80GB HBM3",
            "9.0",
            "built with TensorRT 10.16.1.11 but this is TensorRT 11.4",
        ),
        ("10.16.1.12", "NVIDIA H100 80GB HBM3", "9.0", "built with TensorRT 10.16.1.11"),
        (
            "10.16.1.11",
            "NVIDIA A100-SXM4-80GB",
            "8.0",
            "built for NVIDIA H100 80GB HBM3 .compute capability 9.0",
        ),
        ("10.16.1.11", "NVIDIA H200", "9.0", "but this GPU is NVIDIA H200"),
    ],
)
def test_mismatch_is_refused(version: str, gpu: str, cc: str, message: str) -> None:
    with pytest.raises(BackendError, match=message):
        check_sidecar(META, version, gpu, cc)


def test_compatibility_flags() -> None:
    newer = {**META, "version_compatible": True}
    check_sidecar(newer, "10.17.0.5", META["gpu"], "9.0")  # later minor: allowed
    with pytest.raises(BackendError, match="built with TensorRT"):
        check_sidecar(newer, "11.4.0.106", META["gpu"], "9.0")  # other major
    with pytest.raises(BackendError, match="built with TensorRT"):
        check_sidecar(newer, "10.15.0.1", META["gpu"], "9.0")  # older runtime
    ampere_plus = {**META, "hardware_compatible": True}
    check_sidecar(ampere_plus, META["tensorrt_version"], "NVIDIA A100-SXM4-80GB", "8.0")
    with pytest.raises(BackendError, match=r"need compute capability 8\.0"):
        check_sidecar(ampere_plus, META["tensorrt_version"], "Tesla T4", "7.5")
    with pytest.raises(BackendError, match="format"):
        check_sidecar({**META, "format": "something-else"}, META["tensorrt_version"], META["gpu"], "9.0")


def test_missing_or_bad_sidecar(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="engine file not found"):
        read_sidecar(tmp_path / "none.engine")
    engine = tmp_path / "bare.engine"
    engine.write_bytes(b"x")
    with pytest.raises(BackendError, match=r"has no sidecar bare\.engine\.json"):
        read_sidecar(engine)
    sidecar_path(engine).write_text("{not json")
    with pytest.raises(BackendError, match="cannot read sidecar"):
        read_sidecar(engine)
    sidecar_path(engine).write_text(json.dumps({"tensorrt_version": "10.0"}))
    with pytest.raises(BackendError, match="lacks gpu, compute_capability"):
        read_sidecar(engine)
    sidecar_path(engine).write_text("[1, 2]")
    with pytest.raises(BackendError, match="not a JSON object"):
        read_sidecar(engine)


def test_sidecar_is_read_before_anything_else(tmp_path: Path) -> None:
    engine = tmp_path / "bare.engine"
    engine.write_bytes(b"x")
    with pytest.raises(BackendError, match="no sidecar"):
        TrtBackend(engine)


def test_cpu_device_refused(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="runs on a CUDA GPU"):
        TrtBackend(engine_with_sidecar(tmp_path, META), device="cpu")


def test_wrong_file_type_refused(tmp_path: Path) -> None:
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"x")
    with pytest.raises(BackendError, match=r"runs \.engine files"):
        open_backend("tensorrt", onnx)


@pytest.mark.tensorrt
def test_real_engine_matches_torch(tmp_path: Path) -> None:
    """An engine built by derain_deploy/build/trt_build.py: sidecar accepted, output matches eager PyTorch,
    CUDA graph replay gives the same result, shapes outside the profile are refused."""
    import torch

    from derain_deploy.artifacts import cached_onnx
    from derain_deploy.backends.torch_backend import TorchBackend
    from derain_deploy.build.profiles import Profile
    from derain_deploy.build.trt_build import EngineOptions, build_engine
    from derain_deploy.model import DerainConfig, DerainNet
    from derain_deploy.parity import compare
    from derain_deploy.weights import file_sha256, save_weights

    torch.manual_seed(0)
    net = DerainNet(DerainConfig(stages=2, channels=4)).eval()
    weights = save_weights(net, tmp_path / "w.safetensors")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DERAIN_DEPLOY_CACHE", str(tmp_path / "cache"))
        onnx_path, _ = cached_onnx(weights)
    engine = tmp_path / "m.engine"
    profile = Profile((1, 3, 16, 16), (2, 3, 24, 32), (2, 3, 64, 64))
    build_engine(
        onnx_path, engine, profile, EngineOptions(), precision="fp32", onnx_sha256=file_sha256(onnx_path)
    )
    backend = open_backend("auto", engine)
    assert backend.info.name == "tensorrt" and "engine was given" in str(
        backend.info.details["chosen_because"]
    )
    x = np.random.default_rng(0).random((2, 3, 24, 32), dtype=np.float32)
    ref = TorchBackend(net)(x)
    for _ in range(2):  # the second call replays the captured CUDA graph
        result = compare(backend(x), ref, "fp32", "tensorrt")
        assert result.passed, result.describe()
    with pytest.raises(BackendError, match="outside the engine profile"):
        backend(np.zeros((1, 3, 128, 128), np.float32))
    meta = read_sidecar(engine)
    with pytest.raises(BackendError, match="built for"):
        check_sidecar(
            {**meta, "gpu": "other"},
            str(meta["tensorrt_version"]),
            torch.cuda.get_device_name(0),
            str(meta["compute_capability"]),
        )


class _Context:
    """An execution context whose enqueue fails while a graph is being captured."""

    def __init__(self) -> None:
        self.capturing = False
        self.runs = 0

    def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
        self.shape = shape
        return True

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return self.shape

    def set_tensor_address(self, name: str, address: int) -> None:
        pass

    def execute_async_v3(self, stream: int) -> bool:
        self.runs += 1
        return not self.capturing


def _stand_in_backend(monkeypatch: pytest.MonkeyPatch) -> tuple[TrtBackend, _Context, list[dict]]:
    """A TrtBackend on the CPU: torch's CUDA stream and graph calls replaced by recorders; the
    graph context fails at its exit after a failed enqueue, as CUDA does (capture invalidated)."""
    import contextlib

    import torch

    context, graph_calls = _Context(), []

    @contextlib.contextmanager
    def fake_graph(graph: object, **kwargs: object):  # type: ignore[no-untyped-def]
        graph_calls.append(kwargs)
        context.capturing = True
        try:
            yield
        except BaseException:
            message = "CUDA error: operation failed due to a previous error during capture"
            raise RuntimeError(message) from None
        finally:
            context.capturing = False

    monkeypatch.setattr(torch.cuda, "graph", fake_graph)
    monkeypatch.setattr(torch.cuda, "CUDAGraph", lambda: object())
    monkeypatch.setattr(torch.cuda, "stream", lambda s: contextlib.nullcontext())
    backend = TrtBackend.__new__(TrtBackend)
    backend.context, backend.device = context, torch.device("cpu")
    backend.input_name, backend.output_name = "rainy", "derained"
    backend.input_dtype = backend.output_dtype = torch.float32
    backend.min_shape, backend.max_shape = (1, 3, 8, 8), (2, 3, 64, 64)
    backend.stream = type("Stream", (), {"cuda_stream": 0, "synchronize": lambda self: None})()
    backend.cuda_graphs, backend._shape, backend._graph = True, None, None
    backend.info = type("Info", (), {"details": {}})()
    return backend, context, graph_calls


def test_graph_capture_is_thread_local_and_falls_back_saying_why(monkeypatch: pytest.MonkeyPatch) -> None:
    backend, context, graph_calls = _stand_in_backend(monkeypatch)
    with pytest.warns(RuntimeWarning, match=r"CUDA graph capture failed .*execute_async_v3 failed") as caught:
        backend._prepare((1, 3, 16, 16))
    assert len(caught) == 1 and "\n" not in str(caught[0].message)
    assert graph_calls == [{"stream": backend.stream, "capture_error_mode": "thread_local"}]
    assert backend._graph is None and backend.info.details["cuda_graphs"] is False
    assert "execute_async_v3 failed" in str(backend.info.details["cuda_graphs_fallback"])
    runs = context.runs
    backend._execute()  # without a graph: plain enqueues
    assert context.runs == runs + 1
