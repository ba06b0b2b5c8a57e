from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from derain_deploy.build import precision, verify
from derain_deploy.build.api import ExportOptions, export_model
from derain_deploy.build.onnx_export import ExportError, actual_counts, export_fp32, serialize
from derain_deploy.build.precision import check_fp16_structure, quantize_int8, quantized_weights, to_fp16
from derain_deploy.build.verify import ParityError, check_fp16, compare_quality
from derain_deploy.model import DerainConfig, DerainNet

TINY = DerainConfig(stages=3, channels=4)


@pytest.fixture
def tiny_proto(tiny_onnx: onnx.ModelProto) -> onnx.ModelProto:
    return tiny_onnx


def test_fp16_file_has_fp16_weights_and_fp32_io(tiny_export) -> None:
    fp16 = next(a for a in tiny_export.artifacts if a.precision == "fp16")
    proto = onnx.load(str(fp16.path))
    assert all(t.data_type == onnx.TensorProto.FLOAT16 for t in proto.graph.initializer)
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert proto.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    # The convolutions compute in FP16: their inputs come out of the input Cast's FP16 chain.
    inferred = onnx.shape_inference.infer_shapes(proto)
    types = {v.name: v.type.tensor_type.elem_type for v in inferred.graph.value_info}
    conv_inputs = [n.input[0] for n in proto.graph.node if n.op_type == "Conv"]
    assert conv_inputs and all(types[name] == onnx.TensorProto.FLOAT16 for name in conv_inputs)
    figures = tiny_export.checks["fp16"]
    assert figures["min_psnr"] >= 50 and all(figures["hard_inputs"].values())
    assert figures["emulated_min_psnr"] >= 50 and all(figures["emulated_hard_inputs"].values())
    assert set(figures["hard_inputs"]) == {"white", "black", "saturated_noise", "large_frame"}


def test_fp16_structure_check_rejects_fp32_leftovers(tiny_proto: onnx.ModelProto) -> None:
    counts = actual_counts(tiny_proto)
    with pytest.raises(ExportError, match="non-FP16 initializers"):
        check_fp16_structure(tiny_proto, counts.convs, counts.initializers)


def test_fp16_check_reports_overflow() -> None:
    # Weights that push activations past FP16's 65504: the check must see Inf/NaN, not pass.
    torch.manual_seed(0)
    net = DerainNet(DerainConfig(stages=2, channels=4)).eval()
    with torch.no_grad():
        net.fs.bias.fill_(1000.0)
        net.dcdcb.convs[0].weight.fill_(2.0)  # 36 inputs of >= 1000, doubled: > 65504
    half = serialize(to_fp16(export_fp32(net)))
    with pytest.raises(ParityError, match=r"NaN/Inf on: white \(FP16 arithmetic\)"):
        check_fp16(net, half, natural=(1, 32, 32), large=(1, 3, 64, 64))


def test_fp16_check_rejects_a_wrong_model(tiny_net: DerainNet, tiny_proto: onnx.ModelProto) -> None:
    half = serialize(to_fp16(tiny_proto))
    result = check_fp16(tiny_net, half, natural=(2, 48, 64), large=(1, 3, 64, 64))
    assert result.min_psnr >= 50
    wrong = DerainNet(TINY).eval()
    wrong.load_state_dict(tiny_net.state_dict())
    with torch.no_grad():
        wrong.refine[-1].bias += 0.01  # about 40 dB away
    with pytest.raises(ParityError, match=r"PSNR against eager FP32 is \d+\.\d+ dB"):
        check_fp16(wrong, half, natural=(2, 48, 64), large=(1, 3, 64, 64))


def test_int8_model_is_qdq_and_close_to_fp32(tiny_export) -> None:
    int8 = next(a for a in tiny_export.artifacts if a.precision == "int8")
    ops = {n.op_type for n in onnx.load(str(int8.path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    figures = tiny_export.checks["int8"]
    assert figures["loss_db"] <= figures["max_loss_db"] == 0.5
    assert figures["psnr_vs_fp32"] > 30


def test_int8_weights_fit_seven_bits(tiny_export, tiny_proto: onnx.ModelProto, monkeypatch) -> None:
    # 8-bit weights saturate VPMADDUBSW on CPUs without VNNI (derain_deploy/build/precision.py says why).
    int8 = next(a for a in tiny_export.artifacts if a.precision == "int8")
    weights = quantized_weights(onnx.load(str(int8.path)))
    assert weights and 32 <= precision.max_abs_weight(weights) <= precision.WEIGHT_LIMIT
    calib, _ = verify.rainy_images(2, 32, 32, seed=6)
    monkeypatch.setattr(precision, "WEIGHT_LIMIT", 16)
    with pytest.raises(ExportError, match="would saturate"):
        quantize_int8(tiny_proto, calib)


def test_int8_calibration_matters(tiny_proto: onnx.ModelProto) -> None:
    # Calibrating on black frames gives activation ranges that do not fit rainy images:
    # its output must be measurably further from FP32 than a properly calibrated one.
    rainy, clean = verify.rainy_images(2, 48, 64, seed=5)
    calib, _ = verify.rainy_images(8, 48, 48, seed=6)
    fp32 = serialize(tiny_proto)
    good = compare_quality(fp32, serialize(quantize_int8(tiny_proto, calib)), rainy, clean)
    bad = compare_quality(fp32, serialize(quantize_int8(tiny_proto, np.zeros_like(calib))), rainy, clean)
    assert good.psnr_vs_fp32 > bad.psnr_vs_fp32 + 3


def test_int8_refused_over_threshold(tiny_weights, tmp_path, monkeypatch) -> None:
    real = verify.compare_quality

    def pessimistic(*args, **kwargs):
        result = real(*args, **kwargs)
        result.psnr_low -= 1.0  # as if INT8 lost 1 dB more
        result.loss_db += 1.0
        return result

    monkeypatch.setattr(verify, "compare_quality", pessimistic)
    out = tmp_path / "out"
    with pytest.raises(ParityError, match=r"INT8 model not written: PSNR loss \S+ dB > 0.5 dB"):
        export_model(tiny_weights, out, ExportOptions(int8=True, bench_shape=None, calibration_frames=4))
    assert not out.exists()  # nothing written, not even the FP32 file


def test_early_exit_report(tiny_export) -> None:
    early = tiny_export.checks["early_exit"]
    assert (early["stages"], early["trained_stages"]) == (2, 3)
    assert early["macs_per_pixel"] < early["macs_per_pixel_full"]
    assert np.isfinite(early["psnr_vs_full_rgb"])
    fp32 = next(a for a in tiny_export.artifacts if a.precision == "fp32")
    assert (
        actual_counts(onnx.load(str(fp32.path))).convs == 2 * 10 + 1 + 3
    )  # 2 stages, 1 stage fusion, refine


def qdq_figures(proto: onnx.ModelProto) -> dict[str, object]:
    """Q/DQ node counts, the element types and values of every zero point, and how many
    DequantizeLinear nodes read an int32 tensor (quantized biases)."""
    init = {t.name: t for t in proto.graph.initializer}
    q = [n for n in proto.graph.node if n.op_type == "QuantizeLinear"]
    dq = [n for n in proto.graph.node if n.op_type == "DequantizeLinear"]
    zero_points = [init[n.input[2]] for n in q + dq if len(n.input) > 2 and n.input[2] in init]
    return {
        "q": len(q),
        "dq": len(dq),
        "zero_point_types": {onnx.TensorProto.DataType.Name(z.data_type) for z in zero_points},
        "nonzero_zero_points": sum(int(np.count_nonzero(onnx.numpy_helper.to_array(z))) for z in zero_points),
        "int32_dq": sum(
            1 for n in dq if n.input[0] in init and init[n.input[0]].data_type == onnx.TensorProto.INT32
        ),
    }


def test_tensorrt_int8_file_is_symmetric_int8(tiny_proto: onnx.ModelProto) -> None:
    # TensorRT on GPUs takes only symmetric INT8 Q/DQ (zero point 0) and no int32 bias DQ.
    calib, _ = verify.rainy_images(4, 32, 32, seed=6)
    trt = quantize_int8(tiny_proto, calib, target="tensorrt")
    figures = qdq_figures(trt)
    convs = actual_counts(tiny_proto).convs
    assert figures["q"] >= convs and figures["dq"] >= 2 * convs  # activations and weights
    assert figures["zero_point_types"] == {"INT8"} and figures["nonzero_zero_points"] == 0
    assert figures["int32_dq"] == 0
    precision.check_tensorrt_qdq(trt)
    cpu = quantize_int8(tiny_proto, calib)  # today's file: u8 activations, int32 biases
    cpu_figures = qdq_figures(cpu)
    assert "UINT8" in cpu_figures["zero_point_types"] and cpu_figures["int32_dq"] > 0
    with pytest.raises(ExportError, match="TensorRT"):
        precision.check_tensorrt_qdq(cpu)


def test_export_writes_both_int8_files(tiny_export) -> None:
    int8 = {a.path.name: a for a in tiny_export.artifacts if a.precision == "int8"}
    assert set(int8) == {"tiny.s2.int8.onnx", "tiny.s2.int8.tensorrt.onnx"}
    precision.check_tensorrt_qdq(onnx.load(str(int8["tiny.s2.int8.tensorrt.onnx"].path)))
    meta = {p.key: p.value for p in onnx.load(str(int8["tiny.s2.int8.tensorrt.onnx"].path)).metadata_props}
    assert '"target": "tensorrt"' in meta["quantization"] or "tensorrt" in meta["quantization"]
    for key in ("int8", "int8_tensorrt"):
        figures = tiny_export.checks[key]
        assert figures["loss_db"] <= figures["max_loss_db"], (key, figures)


def _check_set(height: int = 48, width: int = 64) -> np.ndarray:
    """benchmarks/int8_calibration.py's check set at tiny crops: mixed-rain crops and the
    bench's heavy-rain frames."""
    from derain_deploy.bench.inputs import rainy_batch

    return np.concatenate(
        [verify.rainy_images(4, height, width, seed=99)[0], rainy_batch(height, width, 2)[0]]
    )


def test_default_int8_recipe_keeps_the_image_convs_float_and_qdq_on_conv_only(
    tiny_proto: onnx.ModelProto,
) -> None:
    # The measured recipe (benchmarks/results/int8_calibration_*.json): quantized Adds/Subs and
    # the quantized input of each stage's first conv (fs, reading an image) cost the most dB.
    calib, _ = verify.rainy_images(4, 32, 32, seed=6)
    q = quantize_int8(tiny_proto, calib)
    producer = {o: n for n in q.graph.node for o in n.output}
    init = {t.name for t in q.graph.initializer}

    def dequantized(node: onnx.NodeProto) -> bool:
        return any(i in producer and producer[i].op_type == "DequantizeLinear" for i in node.input)

    fs = [
        n for n in q.graph.node if n.op_type == "Conv" and n.input[1] in init and n.input[1].startswith("fs.")
    ]
    assert fs, "the fs convolutions must keep their float weights"
    # (their input may still arrive through a DequantizeLinear: the producing conv's output Q/DQ)
    # Q/DQ only where a quantized conv reads: fewer Q nodes than with every op quantized.
    every_op = quantize_int8(tiny_proto, calib, recipe=precision.Int8Recipe())
    assert qdq_figures(q)["q"] < qdq_figures(every_op)["q"]
    others = [n for n in q.graph.node if n.op_type == "Conv" and n not in fs]
    assert others and all(producer[n.input[1]].op_type == "DequantizeLinear" for n in others)


def test_int8_file_meets_the_parity_line_on_the_check_set(tiny_export) -> None:
    # INT8 >= 42 dB RGB PSNR from FP32 on every image of the check set, on ONNX Runtime and,
    # where installed, OpenVINO (benchmarks/int8_calibration.py measures the full model).
    files = {
        a.precision: str(a.path) for a in tiny_export.artifacts if a.kind == "onnx" and a.target != "tensorrt"
    }
    x = _check_set()
    ref = verify.run_onnx(verify.cpu_session(files["fp32"]), x)
    low = verify.run_onnx(verify.cpu_session(files["int8"]), x)
    assert min(verify.psnr_rgb(low, ref)) >= 42
    ov = pytest.importorskip("openvino", reason="OpenVINO is not installed")
    compiled = ov.Core().compile_model(files["int8"], "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    low_ov = np.concatenate([compiled(f[None])[0] for f in x])
    assert min(verify.psnr_rgb(low_ov, ref)) >= 42


def test_int8_recipe_errors_name_the_problem(tiny_proto: onnx.ModelProto) -> None:
    calib, _ = verify.rainy_images(2, 32, 32, seed=6)
    with pytest.raises(ExportError, match="unknown calibration method 'median'"):
        quantize_int8(tiny_proto, calib, recipe=precision.Int8Recipe(method="median"))
    with pytest.raises(ExportError, match="no convolution matches the float layers nosuch"):
        quantize_int8(tiny_proto, calib, recipe=precision.Int8Recipe(float_layers=("nosuch",)))


def test_int8_recipe_variants_change_the_file(tiny_proto: onnx.ModelProto) -> None:
    calib, _ = verify.rainy_images(4, 32, 32, seed=6)
    eight = quantize_int8(tiny_proto, calib, recipe=precision.Int8Recipe(reduce_range=False))
    assert precision.max_abs_weight(quantized_weights(eight)) > precision.WEIGHT_LIMIT  # 8 bits: up to 127
    refine = quantize_int8(tiny_proto, calib, recipe=precision.Int8Recipe(float_layers=("refine",)))
    kept = precision.float_nodes(tiny_proto, ("refine",))
    assert len(kept) == 3 and not {f"{n}" for n in kept} - {n.name for n in refine.graph.node}
    assert not any(
        w.startswith("refine")
        for w in {n.input[0] for n in refine.graph.node if n.op_type == "DequantizeLinear"}
    )
