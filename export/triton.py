"""``derain-export --triton DIR``: an NVIDIA Triton Inference Server model repository.

    DIR/derain/config.pbtxt
    DIR/derain/1/model.onnx    the FP32 ONNX file (FP32 input and output)
    DIR/derain/1/model.plan    its TensorRT engine, where one was built (--engine)

The config is built with the protobuf schema ``tritonclient`` ships (``model_config_pb2``), so
it is valid for Triton by construction. Input and output names, types and dims come from the
ONNX graph itself; a dynamic batch dimension gives ``max_batch_size`` and dynamic batching (Triton
batches only requests of the same height and width), dynamic height and width become -1. With an
engine the platform is ``tensorrt_plan``: ``max_batch_size`` is the engine profile's largest batch,
the instances use its profile 0, and a comment records the profile's min/opt/max shapes. Without
one it is ``onnxruntime_onnx`` on ``KIND_AUTO`` instances (a GPU where Triton has one).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from derain_deploy.atomic import write_atomic
from derain_deploy.build.api import ExportReport
from derain_deploy.build.onnx_export import ExportError

MODEL_NAME = "derain"
DEFAULT_MAX_BATCH = 4  # an ONNX model with a dynamic batch: the default engine profile's largest batch
QUEUE_DELAY_US = 2000  # how long Triton's dynamic batcher waits to fill a batch


@dataclass(frozen=True)
class Tensor:
    name: str
    data_type: str  # Triton's TYPE_* name
    dims: list[int]  # -1 for a dynamic dimension, the batch dimension included


ONNX_TO_TRITON = {1: "TYPE_FP32", 10: "TYPE_FP16", 11: "TYPE_FP64", 7: "TYPE_INT64", 6: "TYPE_INT32"}


def graph_tensors(onnx_path: Path) -> tuple[list[Tensor], list[Tensor]]:
    """The graph's inputs and outputs as Triton sees them (names, types, dims; -1 where dynamic)."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    initializers = {i.name for i in model.graph.initializer}

    def tensors(values: object) -> list[Tensor]:
        out = []
        for v in values:  # type: ignore[attr-defined]
            if v.name in initializers:
                continue
            t = v.type.tensor_type
            dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else -1 for d in t.shape.dim]
            out.append(Tensor(v.name, ONNX_TO_TRITON.get(t.elem_type, f"elem_type {t.elem_type}"), dims))
        return out

    return tensors(model.graph.input), tensors(model.graph.output)


def check_schema() -> None:
    """Raise :class:`ExportError` where tritonclient's schema is missing (before any export)."""
    _model_config_pb2()


def _model_config_pb2():  # type: ignore[no-untyped-def]
    try:
        from tritonclient.grpc import model_config_pb2
    except ImportError as e:
        raise ExportError(
            f"--triton needs tritonclient's model config schema ({e}): pip install 'derain-deploy[triton]'"
        ) from None
    return model_config_pb2


def model_config(
    onnx_path: Path, profile: dict[str, list[int]] | None = None, instances: int = 1
) -> tuple[object, str]:
    """The ``ModelConfig`` message for ``onnx_path`` (served as a TensorRT plan built with
    ``profile`` where one is given, else by ONNX Runtime) and its text form."""
    from google.protobuf import text_format

    pb = _model_config_pb2()
    inputs, outputs = graph_tensors(onnx_path)
    for t in inputs + outputs:
        if t.data_type != "TYPE_FP32":
            raise ExportError(
                f"{onnx_path.name}: {t.name} is {t.data_type}; Triton's config here needs FP32 I/O"
            )
    batched = all(t.dims and t.dims[0] == -1 for t in inputs + outputs)
    config = pb.ModelConfig(name=MODEL_NAME)
    if profile is not None:
        config.platform, config.default_model_filename = "tensorrt_plan", "model.plan"
        max_batch = int(profile["max"][0])
    else:
        config.platform, config.default_model_filename = "onnxruntime_onnx", "model.onnx"
        max_batch = DEFAULT_MAX_BATCH
    config.max_batch_size = max_batch if batched else 0
    for target, tensors in ((config.input, inputs), (config.output, outputs)):
        for t in tensors:
            target.add(
                name=t.name,
                data_type=pb.DataType.Value(t.data_type),
                dims=t.dims[1:] if batched else t.dims,
            )
    if batched:
        config.dynamic_batching.max_queue_delay_microseconds = QUEUE_DELAY_US
    group = config.instance_group.add(count=instances)
    if profile is not None:
        group.kind = pb.ModelInstanceGroup.KIND_GPU
        group.profile.append("0")
    else:
        group.kind = pb.ModelInstanceGroup.KIND_AUTO
    text = text_format.MessageToString(config)
    if profile is not None:
        shapes = ", ".join(f"{k} {'x'.join(str(d) for d in profile[k])}" for k in ("min", "opt", "max"))
        text = f"# model.plan: TensorRT engine, optimization profile 0: {shapes}\n" + text
    return config, text


def write_repository(report: ExportReport, out_dir: Path, instances: int = 1) -> list[Path]:
    """Write the Triton repository for ``report``'s FP32 ONNX file (and its engine, if built)
    into ``out_dir``; returns the paths written."""
    check_schema()  # fail before writing anything
    onnx_files = [a for a in report.artifacts if a.kind == "onnx" and a.precision == "fp32"]
    if not onnx_files:
        raise ExportError("--triton: the export wrote no FP32 ONNX file")
    onnx_path = onnx_files[0].path
    engines = [a for a in report.artifacts if a.kind == "engine" and a.path.stem == onnx_path.stem]
    profile = None
    if engines:
        sidecar = json.loads(engines[0].path.with_name(engines[0].path.name + ".json").read_text())
        profile = sidecar["profiles"][0]
    _, text = model_config(onnx_path, profile, instances)
    version = Path(out_dir) / MODEL_NAME / "1"
    version.mkdir(parents=True, exist_ok=True)
    written = [version / "model.onnx"]
    write_atomic(written[0], onnx_path.read_bytes())
    plan = version / "model.plan"
    if engines:
        write_atomic(plan, engines[0].path.read_bytes())
        written.append(plan)
    elif plan.exists():
        plan.unlink()  # an engine from an earlier export would not match this model
    config_path = version.parent / "config.pbtxt"
    write_atomic(config_path, text.encode())
    return [config_path, *written]
