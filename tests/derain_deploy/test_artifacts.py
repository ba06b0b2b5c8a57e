"""The one artifact cache: ONNX variants and TensorRT engines keyed by content and versions,
written atomically, a second call a hit. Engines are built by a fake builder here (CPU); the
real TensorRT build is in test_backend_trt.py (marked tensorrt)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from derain_deploy import artifacts
from derain_deploy.artifacts import ArtifactCache, EngineTarget, cached_onnx
from derain_deploy.backends import trt_backend
from derain_deploy.backends.base import BackendError
from derain_deploy.build import api
from derain_deploy.model import DerainConfig, DerainNet
from derain_deploy.weights import save_weights

TINY = DerainConfig(stages=2, channels=4)


@pytest.fixture
def export_calls(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every export_model call the cache makes (the real export still runs)."""
    calls: list[Path] = []
    real = api.export_model

    def counting(weights: Path, out_dir: Path, options: api.ExportOptions) -> api.ExportReport:
        calls.append(Path(weights))
        return real(weights, out_dir, options)

    monkeypatch.setattr(api, "export_model", counting)
    return calls


class FakeBuilder:
    """Writes a fake engine and its sidecar; counts builds; can fail after a partial write."""

    def __init__(self, gpu: str = "Fake GPU", fail: bool = False) -> None:
        self.gpu, self.fail, self.builds = gpu, fail, []

    def target(self) -> EngineTarget:
        return EngineTarget(self.gpu, "9.0", "10.9.0")

    def build(self, onnx: Path, engine: Path, *, precision: str, tf32: bool, timing_cache: Path) -> None:
        self.builds.append((onnx.name, precision, tf32))
        engine.write_bytes(b"partial engine")
        if self.fail:
            raise BackendError("tensorrt: cannot build an engine: fake failure")
        meta = {
            "tensorrt_version": "10.9.0",
            "gpu": self.gpu,
            "compute_capability": "9.0",
            "precision": precision,
        }
        engine.with_name(engine.name + ".json").write_text(json.dumps(meta))


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache folder for this module's tests: the tiny model is exported once."""
    return tmp_path_factory.mktemp("artifact-cache")


def _no_temp_left(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if p.name.startswith(".")]


def test_onnx_second_call_is_a_hit_keyed_by_content(
    tiny_weights: Path, tmp_path: Path, root: Path, export_calls: list[Path]
) -> None:
    cache = ArtifactCache(root)
    path, made = cache.onnx(tiny_weights, "fp32", "concat")
    assert made and path.is_file() and len(export_calls) == 1
    again, made = cache.onnx(tiny_weights, "fp32", "concat")
    assert again == path and not made and len(export_calls) == 1  # a hit: no second export
    assert cache.onnx_path(tiny_weights, "fp32", "concat") == path
    assert cache.onnx_path(tiny_weights, "fp32", "split") != path
    assert _no_temp_left(root)
    torch.manual_seed(5)
    other = save_weights(DerainNet(TINY), tmp_path / "other" / tiny_weights.name)  # same name, other bytes
    assert cache.onnx_path(other, "fp32", "concat") != path
    assert ArtifactCache(root, fp16_check_shape=(1, 3, 64, 64)).onnx_path(tiny_weights) != path


def test_a_failed_export_leaves_no_entry(
    tiny_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(weights: Path, out_dir: Path, options: api.ExportOptions) -> api.ExportReport:
        (Path(out_dir) / "half.onnx").write_bytes(b"partial")
        raise api.ExportError("FP32 parity failed (fake)")

    monkeypatch.setattr(api, "export_model", failing)
    cache = ArtifactCache(tmp_path / "cache")
    with pytest.raises(
        BackendError, match=r"cannot export tiny\.safetensors to fp32 ONNX: FP32 parity failed"
    ):
        cache.onnx(tiny_weights, "fp32", "concat")
    assert not list((tmp_path / "cache").rglob("*.onnx"))


def test_engine_built_once_per_gpu_and_precision(
    tiny_weights: Path, root: Path, export_calls: list[Path]
) -> None:
    """From the ONNX the test above cached: no export here."""
    builder = FakeBuilder()
    cache = ArtifactCache(root, engine_builder=builder)
    engine, built = cache.engine(tiny_weights, "fp32", "concat")
    assert built and engine.is_file() and trt_backend.sidecar_path(engine).is_file()
    assert engine.parent.parent == root / "engines"
    again, built = cache.engine(tiny_weights, "fp32", "concat")
    assert again == engine and not built and len(builder.builds) == 1 and not export_calls
    tf32, built = cache.engine(tiny_weights, "tf32", "concat")  # from the same cached ONNX, TF32 allowed
    assert built and tf32 != engine and builder.builds[-1][1:] == ("fp32", True) and not export_calls
    other_gpu = ArtifactCache(root, engine_builder=FakeBuilder(gpu="Other GPU"))
    assert other_gpu.engine(tiny_weights, "fp32", "concat")[0] != engine
    assert _no_temp_left(root)


def test_a_failed_engine_build_leaves_no_entry(tiny_weights: Path, root: Path) -> None:
    before = sorted(root.rglob("*.engine"))
    cache = ArtifactCache(root, engine_builder=FakeBuilder(gpu="Failing GPU", fail=True))
    with pytest.raises(BackendError, match="fake failure"):
        cache.engine(tiny_weights, "fp32", "concat")
    assert sorted(root.rglob("*.engine")) == before and _no_temp_left(root)


def test_tensorrt_given_weights_builds_once_into_the_user_cache(
    tiny_weights: Path, tmp_path: Path, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``derain-run --backend tensorrt --model W.safetensors``: trt_backend.open_file builds the
    engine once in the per-user cache and opens it; the second run opens the cached engine."""
    builder = FakeBuilder(gpu="User GPU")
    monkeypatch.setattr(artifacts.TensorRTBuilder, "target", lambda self: builder.target())
    monkeypatch.setattr(artifacts.TensorRTBuilder, "build", lambda self, *a, **k: builder.build(*a, **k))
    opened: list[tuple[Path, str, str | None]] = []
    monkeypatch.setattr(
        trt_backend, "TrtBackend", lambda path, device, precision: opened.append((path, device, precision))
    )
    monkeypatch.setenv("DERAIN_DEPLOY_CACHE", str(root))  # the FP32 ONNX cached above
    for _ in range(2):
        trt_backend.open_file(tiny_weights, "auto", None)
    assert builder.builds == [(cached_onnx(tiny_weights)[0].name, "fp32", False)]
    assert opened[0] == opened[1] and opened[0][1:] == ("cuda", None)
    assert opened[0][0].parent.parent == root / "engines" and opened[0][0].name == "tiny.engine"
    with pytest.raises(BackendError, match="tensorrt runs on a CUDA GPU"):
        trt_backend.open_file(tiny_weights, "cpu", None)


def test_bench_specs_use_the_same_cache_in_the_work_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from derain_deploy.backend_spec import exported_path, parse_spec

    builder = FakeBuilder()
    monkeypatch.setattr(artifacts.TensorRTBuilder, "target", lambda self: builder.target())
    monkeypatch.setattr(artifacts.TensorRTBuilder, "build", lambda self, *a, **k: builder.build(*a, **k))
    torch.manual_seed(0)
    net = DerainNet(TINY).eval()
    spec = parse_spec("trt:fp32:split@cuda")
    engine = exported_path(spec, net, tmp_path)
    assert engine.parent.parent == tmp_path / "engines" and exported_path(spec, net, tmp_path) == engine
    assert len(builder.builds) == 1 and engine.name == "derain.split.engine"
    onnx = exported_path(parse_spec("ort:split"), net, tmp_path)  # the engine's FP32 file: no new export
    assert (
        onnx.parent.parent == tmp_path / "onnx" and builder.builds[0][0] == onnx.name == "derain.split.onnx"
    )


def test_int8_is_calibrated_from_the_cached_fp32_file_and_only_the_file_asked_for(
    tiny_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An INT8 entry reads the FP32 entry of its graph form instead of exporting again (the
    export is most of the time on a 2-core CPU), and writes only the target asked for: a CPU
    machine never pays for the TensorRT file."""
    from derain_deploy.build import onnx_export

    exports: list[str] = []
    real = onnx_export.export_fp32
    def counting(net: DerainNet, **kw: object) -> object:
        exports.append(str(kw["graph"]))
        return real(net, **kw)

    monkeypatch.setattr(onnx_export, "export_fp32", counting)
    cache = ArtifactCache(tmp_path / "cache")
    fp32, _ = cache.onnx(tiny_weights, "fp32", "split")
    before = fp32.read_bytes()
    int8, made = cache.onnx(tiny_weights, "int8", "split")
    assert made and int8.is_file() and exports == ["split"]  # the FP32 file was read, not re-exported
    assert fp32.read_bytes() == before
    assert not cache.onnx_path(tiny_weights, "int8", "split", tensorrt=True).exists()
    trt, made = cache.onnx(tiny_weights, "int8", "split", tensorrt=True)
    assert made and trt.is_file() and trt != int8 and exports == ["split"]
    assert _no_temp_left(tmp_path / "cache")


def test_a_damaged_fp32_entry_stops_the_int8_export(tiny_weights: Path, tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path / "cache")
    fp32, _ = cache.onnx(tiny_weights, "fp32", "split")
    fp32.write_bytes(b"not an onnx file")
    with pytest.raises(BackendError, match=r"to int8 ONNX: cannot read the FP32 file"):
        cache.onnx(tiny_weights, "int8", "split")
    assert not cache.onnx_path(tiny_weights, "int8", "split").exists()
