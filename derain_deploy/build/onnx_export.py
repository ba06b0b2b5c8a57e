"""FP32 ONNX export of DerainNet: the T shared stages unrolled into one static graph.

Exporter: ``torch.onnx.export(..., dynamo=True)`` (torch.export + onnxscript), the default and
maintained exporter since torch 2.9. The legacy TorchScript exporter (``dynamo=False``) gives
the same graph (same Conv and initializer counts) but warns that it will be removed. Both store
the shared stage weights once. The dynamo path is deterministic (same bytes for the same
weights), writes IR version 10 and takes a few seconds for the default model.

After export the graph is checked structurally against counts computed from the config
(:func:`expected_counts`); a graph that duplicated the shared weights or lost a conv fails.
"""

from __future__ import annotations

import collections
import contextlib
import io
import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from google.protobuf.message import DecodeError

from derain_deploy.model import DerainConfig, DerainNet

INPUT_NAME = "rainy"
OUTPUT_NAME = "derained"
DEFAULT_OPSET = 18
MIN_OPSET = 15  # below it the exporter's version converter gives up and silently writes opset 18
MAX_STATIC_PIXELS = 4096 * 4096  # batch x height x width of a static export: traced and checked
MAX_IR_VERSION = 13  # onnxruntime(-gpu) 1.31 rejects IR 14 (onnx 1.23's default)
GRAPH_FORMS = ("concat", "split")


class ExportError(RuntimeError):
    """The export or one of its checks failed; the message is one line."""


@dataclass(frozen=True)
class GraphCounts:
    """What the unrolled graph must contain: Conv nodes, initializers, stored float values."""

    convs: int
    initializers: int
    values: int


def expected_counts(config: DerainConfig, stages: int | None = None, graph: str = "concat") -> GraphCounts:
    """Conv nodes, initializers and weight values of the unrolled graph with ``stages`` stages
    (shared weights stored once), computed from the config alone."""
    if graph not in GRAPH_FORMS:
        raise ValueError(f"unknown graph form {graph!r}; expected one of {', '.join(GRAPH_FORMS)}")
    T = config.stages if stages is None else stages
    C, L = config.channels, len(config.dilations)
    split = graph == "split"
    convs = inits = 0
    values = 0

    def conv(cin: int, cout: int, k: int, parts: int = 1, uses: int = 1) -> None:
        # One conv over ``cin`` channels; in split form a 1x1 over ``parts`` parts becomes
        # ``parts`` convs with one weight initializer each and one bias.
        nonlocal convs, inits, values
        n = parts if split else 1
        convs += n * uses
        inits += n + 1
        values += cout * cin * k * k + cout

    conv(3, C, 3, uses=T)  # fs
    for _ in range(L):  # dilated 3x3 convs
        conv(C, C, 3, uses=T)
    if config.inner_dense:
        for l in range(2, L + 1):
            conv(l * C, C, 1, parts=l, uses=T)
        conv((L + 1) * C, C, 1, parts=L + 1, uses=T)
    conv(C, 3, 3, uses=T)  # rs
    if config.outer_dense:
        for t in range(2, T + 1):
            conv(3 * t, 3, 1, parts=t)
    if config.refinement:
        conv(3, C, 3)
        conv(C, C, 3)
        conv(C, 3, 1)
    return GraphCounts(convs, inits, values)


def actual_counts(proto: onnx.ModelProto) -> GraphCounts:
    g = proto.graph
    return GraphCounts(
        convs=sum(n.op_type == "Conv" for n in g.node),
        initializers=len(g.initializer),
        values=sum(int(np.prod(t.dims)) for t in g.initializer),
    )


def check_structure(proto: onnx.ModelProto, config: DerainConfig, stages: int, graph: str) -> GraphCounts:
    """Fail unless the graph holds exactly the expected convs and initializers, each shared
    stage weight feeding all ``stages`` stages, with input ``rainy`` and output ``derained``."""
    want, got = expected_counts(config, stages, graph), actual_counts(proto)
    if want != got:
        raise ExportError(
            f"unexpected graph structure: {got.convs} Conv / {got.initializers} initializers / "
            f"{got.values} values, expected {want.convs} / {want.initializers} / {want.values} "
            f"({graph} form, {stages} stages): shared weights duplicated or layers lost"
        )
    uses = collections.Counter(n.input[1] for n in proto.graph.node if n.op_type == "Conv")
    if uses.get("fs.weight") != stages:
        raise ExportError(f"fs.weight feeds {uses.get('fs.weight')} convs, expected one per stage ({stages})")
    ins = [i.name for i in proto.graph.input]
    outs = [o.name for o in proto.graph.output]
    if ins != [INPUT_NAME] or outs != [OUTPUT_NAME]:
        raise ExportError(
            f"graph inputs {ins} / outputs {outs}, expected [{INPUT_NAME!r}] / [{OUTPUT_NAME!r}]"
        )
    if proto.ir_version > MAX_IR_VERSION:
        raise ExportError(f"ONNX IR version {proto.ir_version} > {MAX_IR_VERSION} (onnxruntime rejects it)")
    return got


def prepare(net: DerainNet, graph: str) -> DerainNet:
    """The eval-mode model in the requested graph form (``split``: no Concat)."""
    if graph not in GRAPH_FORMS:
        raise ExportError(f"unknown graph form {graph!r}; expected one of {', '.join(GRAPH_FORMS)}")
    net = net.eval()
    return net.split_dense() if graph == "split" else net


def _strip_node_metadata(proto: onnx.ModelProto) -> None:
    # The exporter annotates every node with stack traces and source paths: drop them so the
    # file does not depend on where the package is installed.
    for node in proto.graph.node:
        del node.metadata_props[:]
        node.doc_string = ""
    for value in list(proto.graph.value_info) + list(proto.graph.input) + list(proto.graph.output):
        del value.metadata_props[:]
    del proto.graph.metadata_props[:]
    for init in proto.graph.initializer:
        del init.metadata_props[:]


def _name_dynamic_dims(proto: onnx.ModelProto) -> None:
    # torch.export names the output's symbols s0, s53...: name both ends batch/height/width.
    for value in (proto.graph.input[0], proto.graph.output[0]):
        dims = value.type.tensor_type.shape.dim
        for index, name in ((0, "batch"), (2, "height"), (3, "width")):
            dims[index].dim_param = name


def check_settings(opset: int, static_shape: tuple[int, int, int, int] | None = None) -> None:
    """Refuse an opset the exporter cannot write (it would fall back to another one) and a static
    shape too large to trace and check, before any work."""
    highest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= highest:
        raise ExportError(f"opset {opset} is not supported: the exporter writes {MIN_OPSET} to {highest}")
    if static_shape is not None and static_shape[0] * static_shape[2] * static_shape[3] > MAX_STATIC_PIXELS:
        raise ExportError(
            f"static shape {'x'.join(map(str, static_shape))} is too large to export: at most "
            f"{MAX_STATIC_PIXELS} pixels (batch x height x width), as the export runs the model at it"
        )


def export_fp32(
    net: DerainNet,
    *,
    stages: int | None = None,
    graph: str = "concat",
    opset: int = DEFAULT_OPSET,
    static_shape: tuple[int, int, int, int] | None = None,
) -> onnx.ModelProto:
    """Export ``net`` (FP32, CPU) to an in-memory ONNX model and check its structure.

    Dynamic batch/height/width unless ``static_shape`` is given. Metadata is added by the caller."""
    cfg = net.config
    T = cfg.stages if stages is None else stages
    if not 1 <= T <= cfg.stages:
        raise ExportError(f"--stages {T} is out of range: the weights were trained with {cfg.stages} stages")
    check_settings(opset, static_shape)
    model = prepare(net.float().cpu(), graph)
    if static_shape is not None:
        sample = torch.rand(static_shape, generator=torch.Generator().manual_seed(0))
        dynamic_shapes = None
    else:
        # A sample with batch 2 and odd sizes, so that no dimension is specialised to 1.
        sample = torch.rand(2, 3, 37, 45, generator=torch.Generator().manual_seed(0))
        dims = {0: torch.export.Dim("batch"), 2: torch.export.Dim("height"), 3: torch.export.Dim("width")}
        dynamic_shapes = {"x": dims, "stages": None}  # DerainNet.forward's arguments
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    try:
        quiet.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                model,
                (sample,),
                kwargs={"stages": T},  # a constant: the loop unrolls to T stages
                dynamo=True,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                opset_version=opset,
                dynamic_shapes=dynamic_shapes,
                external_data=False,
                optimize=True,
                verbose=False,
            )
    except Exception as e:  # the exporter raises many types; keep the first line
        raise ExportError(f"torch.onnx export failed: {type(e).__name__}: {str(e).splitlines()[0]}") from None
    finally:
        quiet.setLevel(level)
    proto = program.model_proto
    written = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    if written != opset:
        raise ExportError(f"the exporter wrote opset {written} instead of the requested opset {opset}")
    _strip_node_metadata(proto)
    if static_shape is None:
        _name_dynamic_dims(proto)
    proto.doc_string = ""
    check_structure(proto, cfg, T, graph)
    return proto


def load_fp32(path: str | Path, config: DerainConfig, stages: int, graph: str) -> onnx.ModelProto:
    """An FP32 file this exporter wrote earlier, read back and checked like a fresh export."""
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except (OSError, ValueError, DecodeError) as e:
        raise ExportError(f"cannot read the FP32 file {Path(path).name}: {e}") from None
    check_structure(proto, config, stages, graph)
    return proto


def set_metadata(proto: onnx.ModelProto, meta: dict[str, object]) -> None:
    """Replace the model's metadata_props by ``meta`` (non-strings stored as JSON), sorted."""
    del proto.metadata_props[:]
    for key in sorted(meta):
        value = meta[key]
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        proto.metadata_props.add(key=key, value=text)


def read_metadata(path_or_proto: str | onnx.ModelProto) -> dict[str, str]:
    """The metadata_props of an ONNX file as a dict of strings."""
    proto = path_or_proto
    if not isinstance(proto, onnx.ModelProto):
        proto = onnx.load(str(path_or_proto), load_external_data=False)
    return {p.key: p.value for p in proto.metadata_props}


def full_check(proto: onnx.ModelProto) -> None:
    """onnx.checker with full shape inference; one-line error."""
    try:
        onnx.checker.check_model(proto, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        raise ExportError(f"onnx.checker rejected the model: {str(e).splitlines()[0]}") from None


def serialize(proto: onnx.ModelProto) -> bytes:
    """The single-file bytes of ``proto`` (no external data; deterministic)."""
    return proto.SerializeToString(deterministic=True)
