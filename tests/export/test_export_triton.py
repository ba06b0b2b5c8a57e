"""derain-export --triton: every config.pbtxt parses with the schema tritonclient ships, and its
names, types and dims are the ONNX graph's."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import onnx
import pytest

from derain_deploy.build.api import Artifact, ExportOptions, ExportReport, export_model
from export.triton import write_repository

model_config_pb2 = pytest.importorskip(
    "tritonclient.grpc.model_config_pb2",
    reason="tritonclient is not installed (pip install 'derain-deploy[triton]')",
)
text_format = pytest.importorskip("google.protobuf.text_format")
pytestmark = pytest.mark.slow  # each exports the tiny model (seconds on 2 busy cores)


def parse(path: Path):  # type: ignore[no-untyped-def]
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def graph_io(path: Path) -> list[tuple[str, int, list[int]]]:
    """(name, elem_type, dims with -1 where dynamic) of the graph's inputs then outputs."""
    g = onnx.load(str(path)).graph
    return [
        (v.name, v.type.tensor_type.elem_type, [d.dim_value or -1 for d in v.type.tensor_type.shape.dim])
        for v in [*g.input, *g.output]
    ]


def config_io(config) -> list[tuple[str, int, list[int]]]:  # type: ignore[no-untyped-def]
    batch = [-1] if config.max_batch_size > 0 else []
    fp32 = model_config_pb2.DataType.Value("TYPE_FP32")
    return [
        (t.name, onnx.TensorProto.FLOAT if t.data_type == fp32 else -t.data_type, batch + list(t.dims))
        for t in [*config.input, *config.output]
    ]


@pytest.fixture(scope="module")
def dynamic_export(tiny_weights: Path, tmp_path_factory: pytest.TempPathFactory) -> ExportReport:
    return export_model(
        tiny_weights, tmp_path_factory.mktemp("triton-export"), ExportOptions(bench_shape=None)
    )


def test_onnx_repository_matches_the_graph(dynamic_export: ExportReport, tmp_path: Path) -> None:
    paths = write_repository(dynamic_export, tmp_path / "repo")
    model = tmp_path / "repo" / "derain"
    assert paths == [model / "config.pbtxt", model / "1" / "model.onnx"]
    config = parse(model / "config.pbtxt")
    assert (config.name, config.platform, config.default_model_filename) == (
        "derain",
        "onnxruntime_onnx",
        "model.onnx",
    )
    io = graph_io(model / "1" / "model.onnx")
    assert [n for n, _, _ in io] == ["rainy", "derained"] and io[0][2] == [-1, 3, -1, -1]
    assert config_io(config) == io
    assert config.max_batch_size == 4 and config.dynamic_batching.max_queue_delay_microseconds > 0
    assert [(g.kind, g.count) for g in config.instance_group] == [
        (model_config_pb2.ModelInstanceGroup.KIND_AUTO, 1)
    ]


def test_engine_repository_has_the_plan_and_its_profile(dynamic_export: ExportReport, tmp_path: Path) -> None:
    """An engine artifact (a stand-in file and the sidecar trt_build writes) makes a tensorrt_plan model."""
    onnx_artifact = dynamic_export.artifact("onnx", "fp32")
    engine = tmp_path / "built" / (onnx_artifact.path.stem + ".engine")
    engine.parent.mkdir()
    engine.write_bytes(b"engine bytes")
    profile = {"min": [1, 3, 64, 64], "opt": [2, 3, 480, 640], "max": [6, 3, 1080, 1920]}
    engine.with_name(engine.name + ".json").write_text(json.dumps({"profiles": [profile]}))
    report = dataclasses.replace(
        dynamic_export, artifacts=[*dynamic_export.artifacts, Artifact(engine, "fp32", "engine", 12, "x")]
    )
    write_repository(report, tmp_path / "repo")
    model = tmp_path / "repo" / "derain"
    assert (model / "1" / "model.plan").read_bytes() == b"engine bytes"
    config = parse(model / "config.pbtxt")
    assert (config.platform, config.default_model_filename, config.max_batch_size) == (
        "tensorrt_plan",
        "model.plan",
        6,
    )
    assert config_io(config) == graph_io(model / "1" / "model.onnx")
    (group,) = config.instance_group
    assert group.kind == model_config_pb2.ModelInstanceGroup.KIND_GPU and list(group.profile) == ["0"]
    assert "min 1x3x64x64, opt 2x3x480x640, max 6x3x1080x1920" in (model / "config.pbtxt").read_text()
    # exported again without an engine: the stale plan goes
    write_repository(dynamic_export, tmp_path / "repo")
    assert (
        not (model / "1" / "model.plan").exists()
        and parse(model / "config.pbtxt").platform == "onnxruntime_onnx"
    )


def test_static_export_has_no_batching(tiny_weights: Path, tmp_path: Path) -> None:
    report = export_model(
        tiny_weights, tmp_path / "out", ExportOptions(shape=(1, 3, 64, 96), bench_shape=None)
    )
    write_repository(report, tmp_path / "repo")
    config = parse(tmp_path / "repo" / "derain" / "config.pbtxt")
    assert config.max_batch_size == 0 and not config.HasField("dynamic_batching")
    assert config_io(config) == graph_io(tmp_path / "repo" / "derain" / "1" / "model.onnx")
    assert list(config.input[0].dims) == [1, 3, 64, 96]


def test_cli_writes_the_repository(tiny_weights: Path, tmp_path: Path) -> None:
    from cli_case import run_cli

    result = run_cli(
        "derain-export",
        [str(tiny_weights), "-o", "out", "--no-bench", "--shape", "1x3x64x96", "--triton", "repo"],
        tmp_path,
    )
    assert result.code == 0, result.stderr
    assert "repo/derain/config.pbtxt" in result.stdout
    config = parse(tmp_path / "repo" / "derain" / "config.pbtxt")
    assert config_io(config) == graph_io(tmp_path / "repo" / "derain" / "1" / "model.onnx")


@pytest.mark.tensorrt
def test_real_engine_repository(tiny_weights: Path, tmp_path: Path) -> None:
    options = ExportOptions(bench_shape=None, engine=True, profile=None)
    report = export_model(tiny_weights, tmp_path / "out", options)
    write_repository(report, tmp_path / "repo")
    model = tmp_path / "repo" / "derain"
    config = parse(model / "config.pbtxt")
    assert config.platform == "tensorrt_plan" and (model / "1" / "model.plan").stat().st_size > 0
    assert config_io(config) == graph_io(model / "1" / "model.onnx")
    shutil.rmtree(tmp_path / "out")
