from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch

from derain_deploy.build import verify
from derain_deploy.build.onnx_export import (
    ExportError,
    GraphCounts,
    actual_counts,
    check_structure,
    expected_counts,
    export_fp32,
    read_metadata,
    serialize,
)
from derain_deploy.build.verify import ParityError, check_fp32_parity, cpu_session, run_eager, run_onnx
from derain_deploy.model import DerainConfig, DerainNet
from derain_deploy.weights import file_sha256

TINY = DerainConfig(stages=3, channels=4)  # the tiny_weights fixture's config


def test_expected_counts_of_the_default_config() -> None:
    # DESIGN.md: 134 Conv, 48 initializers, 17,356 values (= the parameter count).
    cfg = DerainConfig()
    assert expected_counts(cfg) == GraphCounts(134, 48, 17356)
    assert expected_counts(cfg).values == DerainNet(cfg).num_parameters()
    split = expected_counts(cfg, graph="split")
    assert (split.convs, split.values) == (320, 17356)
    # Early exit drops whole stages: 10 convs per stage in concat form, one stage fusion less.
    assert expected_counts(cfg, stages=11).convs == 134 - 11


@pytest.fixture(scope="module")
def default_net() -> DerainNet:
    torch.manual_seed(1)
    return DerainNet().eval()


@pytest.fixture(scope="module")
def default_onnx(default_net: DerainNet) -> onnx.ModelProto:
    return export_fp32(default_net)


def test_default_config_exports_with_shared_weights(default_onnx: onnx.ModelProto) -> None:
    got = actual_counts(default_onnx)
    assert (got.convs, got.initializers, got.values) == (134, 48, 17356)
    uses = [n.input[1] for n in default_onnx.graph.node if n.op_type == "Conv"]
    assert uses.count("fs.weight") == 12 and uses.count("dcdcb.convs.3.weight") == 12
    assert default_onnx.ir_version <= 13
    dims = [d.dim_param or d.dim_value for d in default_onnx.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, "height", "width"]
    assert [o.name for o in default_onnx.graph.output] == ["derained"]


def test_default_config_runs_in_onnxruntime_at_several_sizes(
    default_net: DerainNet, default_onnx: onnx.ModelProto
) -> None:
    session = cpu_session(serialize(default_onnx))
    for shape in [(1, 3, 24, 32), (2, 3, 19, 41)]:
        x = np.random.default_rng(0).random(shape, dtype=np.float32)
        y = run_onnx(session, x)
        assert y.shape == shape
        assert np.abs(y - run_eager(default_net, x)).max() <= verify.FP32_MAX_ABS


@pytest.mark.parametrize(
    ("config", "graph"),
    [
        (TINY, "split"),
        (DerainConfig.ablation("no-all-dense", stages=2, channels=4), "concat"),
        (DerainConfig.ablation("no-refinement", stages=2, channels=4), "split"),
    ],
    ids=["tiny-split", "tiny-no-all-dense", "tiny-no-refinement-split"],
)
def test_tiny_configs_export_and_match_eager(config: DerainConfig, graph: str) -> None:
    torch.manual_seed(0)
    net = DerainNet(config).eval()
    proto = export_fp32(net, graph=graph)
    assert actual_counts(proto) == expected_counts(config, graph=graph)
    if graph == "split" and config.inner_dense:
        assert not any(n.op_type == "Concat" for n in proto.graph.node)
    result = check_fp32_parity(net, serialize(proto))
    assert result.passed and result.max_abs <= 1e-5


def test_tiny_concat_form(tiny_net: DerainNet, tiny_onnx: onnx.ModelProto) -> None:
    assert actual_counts(tiny_onnx) == expected_counts(TINY)
    assert check_fp32_parity(tiny_net, serialize(tiny_onnx)).max_abs <= 1e-5


def test_structure_check_rejects_duplicated_shared_weights(tiny_onnx: onnx.ModelProto) -> None:
    proto = onnx.ModelProto()
    proto.CopyFrom(tiny_onnx)
    check_structure(proto, TINY, TINY.stages, "concat")  # passes as exported
    # Give the second stage its own copy of fs.weight: what an exporter that does not share
    # parameters would write.
    copy = onnx.TensorProto()
    copy.CopyFrom(next(t for t in proto.graph.initializer if t.name == "fs.weight"))
    copy.name = "fs.weight.copy"
    proto.graph.initializer.append(copy)
    second = [n for n in proto.graph.node if n.op_type == "Conv" and n.input[1] == "fs.weight"][1]
    second.input[1] = "fs.weight.copy"
    with pytest.raises(ExportError, match="shared weights duplicated"):
        check_structure(proto, TINY, TINY.stages, "concat")


def test_parity_check_rejects_a_perturbed_model(tiny_net: DerainNet, tiny_onnx: onnx.ModelProto) -> None:
    model = serialize(tiny_onnx)
    wrong = DerainNet(TINY).eval()
    wrong.load_state_dict(tiny_net.state_dict())
    with torch.no_grad():
        wrong.rs.bias += 1e-3  # a small, systematic error (parity.py's fp32 rule: 1e-4)
    with pytest.raises(ParityError, match=r"max abs .* > 0\.0001"):
        check_fp32_parity(wrong, model)


def test_stages_out_of_range(tiny_net: DerainNet) -> None:
    with pytest.raises(ExportError, match="trained with 3 stages"):
        export_fp32(tiny_net, stages=4)


def test_written_files_metadata_round_trip(tiny_export, tiny_weights) -> None:
    by_precision = {
        a.precision + (".tensorrt" if a.target == "tensorrt" else ""): a for a in tiny_export.artifacts
    }
    assert set(by_precision) == {"fp32", "fp16", "int8", "int8.tensorrt"}
    for precision, artifact in by_precision.items():
        assert artifact.path.name == f"tiny.s2{'' if precision == 'fp32' else '.' + precision}.onnx"
        meta = read_metadata(str(artifact.path))
        assert meta["precision"] == precision.removesuffix(".tensorrt")
        assert json.loads(meta["model_config"]) == TINY.to_dict()
        assert meta["weights_sha256"] == file_sha256(tiny_weights)
        assert (meta["stages"], meta["trained_stages"]) == ("2", "3")
        assert json.loads(meta["value_range"]) == [0.0, 1.0] and meta["layout"] == "NCHW"
        assert meta["input"] == "rainy" and meta["output"] == "derained"
        assert "torch" in json.loads(meta["tool_versions"])
        proto = onnx.load(str(artifact.path))
        assert proto.ir_version <= 13
        # One self-contained file: no tensor refers to external data.
        assert all(t.data_location != onnx.TensorProto.EXTERNAL for t in proto.graph.initializer)
        onnx.checker.check_model(proto, full_check=True)
    # Nothing else (no temp files) is left in the output directory.
    assert sorted(p.name for p in by_precision["fp32"].path.parent.iterdir()) == sorted(
        a.path.name for a in tiny_export.artifacts
    )
