"""FP16 and INT8 variants of the checked FP32 ONNX graph.

FP16: ``onnxruntime.transformers.float16.convert_float_to_float16`` with ``keep_io_types``:
every initializer and every op computes in FP16, with one Cast after the FP32 input and one
before the FP32 output. Converting the already checked FP32 graph (rather than exporting a
``.half()`` model) keeps one export path, keeps the shared weights stored once, needs no FP16
eager kernels on the CPU, and ships with onnxruntime (no extra package; it is the maintained
copy of onnxconverter-common's converter). TensorRT builds it strongly typed: FP16 is in the
file, so no builder flag can silently fall back to FP32.

INT8: static QDQ quantization with ``onnxruntime.quantization.quantize_static``: QUInt8
activations (asymmetric), per-channel symmetric QInt8 weights in 7 bits (``reduce_range``),
MinMax calibration on small rainy crops (Percentile/Entropy keep histograms of every activation
and ran out of 24 GB on large crops). QDQ is the format TensorRT consumes for explicit INT8.
:data:`DEFAULT_RECIPE` puts Q/DQ only on the convolutions' inputs (the Adds and Subs that carry
each stage's image stay float) and keeps ``fs``, the conv that reads each stage's image, in
float (3 % of the MACs): the bundled weights went from 39.4 to 45.6 dB from FP32 (worst image of
benchmarks/int8_calibration.py's check set), where Percentile, Entropy, more or real-photo
calibration crops and NNCF moved it by -10 to +1.3 dB.

Why 7-bit weights: x86 CPUs without VNNI (AVX2, plain AVX-512) multiply u8 activations by s8
weights with VPMADDUBSW, which adds two products in 16 bits and saturates (2 x 255 x 127 >
32767). Both ONNX Runtime and OpenVINO use it there. With 8-bit weights an AVX2 EPYC lost 2.7 dB
(ONNX Runtime) and 5.2 dB (OpenVINO) against FP32; with 7-bit weights (2 x 255 x 63 fits) it
lost nothing measurable, 43.8/44.2 dB from FP32. One file then gives the same answer on every CPU.

TensorRT wants the opposite, so it gets its own file (``target="tensorrt"``, written as
``*.int8.tensorrt.onnx``): on GPUs TensorRT takes only symmetric INT8 Q/DQ (zero point 0; UINT8
and asymmetric Q/DQ are DLA-only) and its ONNX importer rejects int32 bias DequantizeLinear.
That file has QInt8 symmetric activations, per-channel QInt8 symmetric weights in 8 bits (no
saturation issue: TensorRT's INT8 kernels accumulate in int32) and float biases
(``QuantizeBias=False``); :func:`check_tensorrt_qdq` proves it.
"""

from __future__ import annotations

import collections
import contextlib
import io
import logging
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from .onnx_export import ExportError, actual_counts

CALIBRATION_CROP = (96, 96)
CALIBRATION_FRAMES = 24


def to_fp16(proto: onnx.ModelProto) -> onnx.ModelProto:
    """FP16 weights and arithmetic with FP32 input and output; checked structurally."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    before = actual_counts(proto)
    with contextlib.redirect_stdout(io.StringIO()):
        half = convert_float_to_float16(
            onnx.ModelProto.FromString(proto.SerializeToString()), keep_io_types=True
        )
    _topological_sort(half.graph)  # the converter appends the input Cast at the end
    check_fp16_structure(half, before.convs, before.initializers)
    return half


def _topological_sort(graph: onnx.GraphProto) -> None:
    """Reorder ``graph.node`` so every node follows its producers (stable otherwise)."""
    produced = {o for n in graph.node for o in n.output}
    ready = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    pending, ordered = list(graph.node), []
    while pending:
        rest = []
        for node in pending:
            if all(i in ready or i not in produced for i in node.input if i):
                ordered.append(node)
                ready.update(node.output)
            else:
                rest.append(node)
        if len(rest) == len(pending):
            raise ExportError("FP16 graph has a cycle")
        pending = rest
    copies = [onnx.NodeProto.FromString(n.SerializeToString()) for n in ordered]
    del graph.node[:]
    graph.node.extend(copies)


def check_fp16_structure(proto: onnx.ModelProto, convs: int, initializers: int) -> None:
    """Fail unless every initializer is FP16, the only Casts are the two at the I/O, the
    I/O stay FP32 and no conv or initializer was lost."""
    g = proto.graph
    f16 = onnx.TensorProto.FLOAT16
    wrong = [t.name for t in g.initializer if t.data_type != f16]
    casts = [n for n in g.node if n.op_type == "Cast"]
    io_types = [v.type.tensor_type.elem_type for v in list(g.input) + list(g.output)]
    got = actual_counts(proto)
    if wrong:
        raise ExportError(f"FP16 model keeps {len(wrong)} non-FP16 initializers (e.g. {wrong[0]})")
    if len(casts) != 2 or io_types != [onnx.TensorProto.FLOAT] * 2:
        raise ExportError(
            f"FP16 model has {len(casts)} Casts and I/O types {io_types}; expected 2 Casts, FP32 I/O"
        )
    if (got.convs, got.initializers) != (convs, initializers):
        raise ExportError(
            f"FP16 conversion changed the graph: {got.convs} Conv / {got.initializers} initializers, "
            f"expected {convs} / {initializers}"
        )


class _Frames:
    """onnxruntime.quantization CalibrationDataReader over NCHW frames, ``batch`` a step."""

    def __init__(self, input_name: str, frames: np.ndarray, batch: int = 1) -> None:
        self.input_name = input_name
        chunks = [frames[i : i + batch] for i in range(0, len(frames) - batch + 1, batch)]
        self._it: Iterator[np.ndarray] = iter(chunks)

    def get_next(self) -> dict[str, np.ndarray] | None:
        chunk = next(self._it, None)
        return None if chunk is None else {self.input_name: np.ascontiguousarray(chunk, np.float32)}


WEIGHT_LIMIT = 64  # 7-bit signed weights, whose pairwise u8 x s8 sums fit 16 bits


def quantized_weights(qproto: onnx.ModelProto) -> list[np.ndarray]:
    """The int8 weight initializers of a QDQ model (the inputs of DequantizeLinear that are
    stored as INT8)."""
    init = {t.name: t for t in qproto.graph.initializer}
    names = {n.input[0] for n in qproto.graph.node if n.op_type == "DequantizeLinear"}
    return [
        numpy_helper.to_array(init[n])
        for n in sorted(names & set(init))
        if init[n].data_type == onnx.TensorProto.INT8
    ]


def max_abs_weight(weights: list[np.ndarray]) -> int:
    """The largest |w| over int8 arrays (widened first: np.abs(int8(-128)) is -128)."""
    return max(int(np.abs(w.astype(np.int16)).max()) for w in weights)


INT8_TARGETS = ("cpu", "tensorrt")


def _quantizer_settings(target: str) -> dict[str, object]:
    """quantize_static keyword arguments for ``target`` (see the module docstring)."""
    from onnxruntime.quantization import QuantType

    if target == "cpu":
        return {
            "activation_type": QuantType.QUInt8,
            "reduce_range": True,  # 7-bit weights: see the module docstring
            "extra_options": {"ActivationSymmetric": False, "WeightSymmetric": True},
        }
    if target == "tensorrt":
        return {
            "activation_type": QuantType.QInt8,
            "reduce_range": False,
            "extra_options": {"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False},
        }
    raise ExportError(f"unknown INT8 target {target!r}; expected {' or '.join(INT8_TARGETS)}")


def check_tensorrt_qdq(qproto: onnx.ModelProto) -> None:
    """Fail unless every Q/DQ zero point is an int8 0 and no DequantizeLinear reads an int32
    tensor (what TensorRT's ONNX importer accepts on GPUs)."""
    init = {t.name: t for t in qproto.graph.initializer}
    qdq = [n for n in qproto.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    bad_type, nonzero, int32_dq = set(), 0, 0
    for node in qdq:
        if len(node.input) > 2 and node.input[2] in init:
            zp = init[node.input[2]]
            if zp.data_type != onnx.TensorProto.INT8:
                bad_type.add(onnx.TensorProto.DataType.Name(zp.data_type))
            nonzero += int(np.count_nonzero(numpy_helper.to_array(zp)))
        source = init.get(node.input[0])
        int32 = source is not None and source.data_type == onnx.TensorProto.INT32
        int32_dq += int(node.op_type == "DequantizeLinear" and int32)
    if not qdq:
        raise ExportError("INT8 model for TensorRT has no Q/DQ nodes")
    if bad_type or nonzero or int32_dq:
        raise ExportError(
            f"INT8 model is not loadable by TensorRT on a GPU: zero point types "
            f"{sorted(bad_type) or ['INT8']}, {nonzero} non-zero zero points, "
            f"{int32_dq} int32 (bias) DequantizeLinear nodes"
        )


@dataclass(frozen=True)
class Int8Recipe:
    """How the INT8 file is calibrated: the range method over the calibration frames, which
    convolutions stay in float (by the weight name prefix of their module, e.g. ``refine``),
    per-channel and 7-bit (``reduce_range``) weights, and which op types get Q/DQ.
    ``reduce_range`` applies to the CPU file only (TensorRT's file always has 8-bit weights)."""

    method: str = "minmax"  # minmax, percentile or entropy
    percentile: float = 99.999
    float_layers: tuple[str, ...] = ()
    per_channel: bool = True
    reduce_range: bool = True
    op_types: tuple[str, ...] | None = None  # None: onnxruntime's default set (Conv, Add, ...)

    def describe(self) -> str:
        method = f"percentile {self.percentile:g}" if self.method == "percentile" else self.method
        bits = "7-bit" if self.reduce_range else "8-bit"
        kept = f", float: {'+'.join(self.float_layers)}" if self.float_layers else ""
        ops = f", Q/DQ on {'+'.join(self.op_types)}" if self.op_types else ""
        return f"{method}, {'per-channel' if self.per_channel else 'per-tensor'} {bits} weights{kept}{ops}"


CALIBRATION_METHODS = ("minmax", "percentile", "entropy")
# The CPU file: Q/DQ only around convolutions, and each stage's first conv (fs, which reads an
# image: the stage input) in float; benchmarks/results/int8_calibration_*.json measured it.
DEFAULT_RECIPE = Int8Recipe(float_layers=("fs",), op_types=("Conv",))
TENSORRT_RECIPE = Int8Recipe(reduce_range=False)  # every op quantized, 8-bit weights


def float_nodes(proto: onnx.ModelProto, prefixes: tuple[str, ...]) -> list[str]:
    """Names of the Conv nodes whose weight initializer starts with one of ``prefixes``."""
    found = [
        n.name
        for n in proto.graph.node
        if n.op_type == "Conv" and len(n.input) > 1 and n.input[1].startswith(tuple(prefixes))
    ]
    if prefixes and not found:
        raise ExportError(f"no convolution matches the float layers {', '.join(prefixes)}")
    return found


def quantize_int8(
    proto: onnx.ModelProto,
    calibration: np.ndarray,
    batch: int = 1,
    target: str = "cpu",
    recipe: Int8Recipe | None = None,
) -> onnx.ModelProto:
    """Static QDQ INT8 model of ``proto`` for ``target`` (cpu or tensorrt, see the module
    docstring) calibrated on ``calibration`` (NCHW frames, ``batch`` a step: a static
    graph's batch size) as ``recipe`` says (default: the target's, DEFAULT_RECIPE or
    TENSORRT_RECIPE)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if recipe is None:
        recipe = TENSORRT_RECIPE if target == "tensorrt" else DEFAULT_RECIPE
    if recipe.method not in CALIBRATION_METHODS:
        expected = ", ".join(CALIBRATION_METHODS)
        raise ExportError(f"unknown calibration method {recipe.method!r}; expected {expected}")
    settings = _quantizer_settings(target)
    if target == "cpu":
        settings["reduce_range"] = recipe.reduce_range
    if recipe.method == "percentile":
        settings["extra_options"] = {**settings["extra_options"], "CalibPercentile": recipe.percentile}  # type: ignore[dict-item]
    if recipe.op_types is not None:
        settings["op_types_to_quantize"] = list(recipe.op_types)
    method = {
        "minmax": CalibrationMethod.MinMax,
        "percentile": CalibrationMethod.Percentile,
        "entropy": CalibrationMethod.Entropy,
    }[recipe.method]

    quiet = logging.getLogger()
    level = quiet.level
    with tempfile.TemporaryDirectory(prefix="derain-int8-") as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(proto.SerializeToString())
        try:
            quiet.setLevel(logging.ERROR)
            with contextlib.redirect_stdout(io.StringIO()):
                quantize_static(
                    str(src),
                    str(dst),
                    _Frames(proto.graph.input[0].name, calibration, batch),
                    quant_format=QuantFormat.QDQ,
                    weight_type=QuantType.QInt8,
                    per_channel=recipe.per_channel,
                    calibrate_method=method,
                    nodes_to_exclude=float_nodes(proto, recipe.float_layers),
                    **settings,  # type: ignore[arg-type]
                )
        except ExportError:
            raise
        except Exception as e:  # quantizer errors come in many types
            raise ExportError(
                f"INT8 quantization failed: {type(e).__name__}: {str(e).splitlines()[0]}"
            ) from None
        finally:
            quiet.setLevel(level)
        qproto = onnx.load(str(dst))
    ops = collections.Counter(n.op_type for n in qproto.graph.node)
    convs = actual_counts(proto).convs
    weights = quantized_weights(qproto)
    if target == "tensorrt":
        check_tensorrt_qdq(qproto)
    elif weights and recipe.reduce_range and max_abs_weight(weights) > WEIGHT_LIMIT:
        raise ExportError(f"INT8 weights exceed +-{WEIGHT_LIMIT}: they would saturate on CPUs without VNNI")
    if ops["Conv"] != convs or ops["QuantizeLinear"] == 0:
        raise ExportError(
            f"INT8 model has {ops['Conv']} Conv (expected {convs}) and {ops['QuantizeLinear']} Q nodes"
        )
    return qproto
