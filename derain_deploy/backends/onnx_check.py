"""What an ONNX file must look like to be run as a deraining model, checked when it is opened:
one NCHW float input with 3 channels and one output of the same shape. Files from elsewhere
(other tensor names, no derain-export metadata) run if they fit, with a warning that says so."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import onnx

from .base import BackendError

log = logging.getLogger(__name__)

OUR_NAMES = ("rainy", "derained")  # build.onnx_export's INPUT_NAME, OUTPUT_NAME
FLOATS = {onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.FLOAT16: "float16"}

Dim = int | str | None  # a fixed size, a named dynamic one, or unknown


def _dims(value: onnx.ValueInfoProto) -> list[Dim] | None:
    kind = value.type.tensor_type
    if not kind.HasField("shape"):
        return None
    out: list[Dim] = []
    for d in kind.shape.dim:
        out.append(d.dim_value if d.HasField("dim_value") else (d.dim_param or None))
    return out


def _shape_text(dims: Sequence[Dim]) -> str:
    return "x".join(str(d) if d is not None else "?" for d in dims)


def _type_name(value: onnx.ValueInfoProto) -> str:
    elem = value.type.tensor_type.elem_type
    return FLOATS.get(elem) or onnx.helper.tensor_dtype_to_np_dtype(elem).name if elem else "not a tensor"


def check_io(proto: onnx.ModelProto, name: str) -> tuple[int, ...] | None:
    """Refuse (BackendError, one line naming ``name``) a model that does not take one NCHW float
    batch with 3 channels and give one of the same shape. Returns the input shape when it is
    fixed in every dimension (the model runs only that shape), else None."""
    initializers = {i.name for i in proto.graph.initializer}
    inputs = [i for i in proto.graph.input if i.name not in initializers]
    outputs = list(proto.graph.output)
    if len(inputs) != 1 or len(outputs) != 1:
        raise BackendError(
            f"{name} has {len(inputs)} inputs and {len(outputs)} outputs; a deraining model has one "
            "of each (an Nx3xHxW float batch in, the same shape out)"
        )
    (x,), (y,) = inputs, outputs
    for value, role in ((x, "input"), (y, "output")):
        if value.type.tensor_type.elem_type not in FLOATS:
            found = _type_name(value)
            raise BackendError(f"{name}: {role} {value.name} is {found}; expected float32/float16")
    x_dims, y_dims = _dims(x), _dims(y)
    if x_dims is None or len(x_dims) != 4:
        what = "no shape" if x_dims is None else f"{len(x_dims)} dimensions"
        raise BackendError(f"{name}: input {x.name} has {what}; expected NCHW (Nx3xHxW)")
    if x_dims[1] != 3:
        raise BackendError(f"{name}: input {x.name} has {x_dims[1]} channels; the model must take RGB (3)")
    if y_dims is not None and (len(y_dims) != 4 or not all(_same(a, b) for a, b in zip(x_dims, y_dims))):
        raise BackendError(
            f"{name}: output {y.name} is {_shape_text(y_dims)} for input {_shape_text(x_dims)}; "
            "a deraining model gives an image of its input's shape"
        )
    if (x.name, y.name) != OUR_NAMES:
        log.warning(
            "%s is not a derain-export file (input %r, output %r, not %r, %r): running it as an "
            "NCHW RGB model with values in [0, 1]", name, x.name, y.name, *OUR_NAMES
        )
    fixed = all(isinstance(d, int) and d > 0 for d in x_dims)
    return tuple(x_dims) if fixed else None  # type: ignore[arg-type]


def _same(a: Dim, b: Dim) -> bool:
    """Whether output dimension ``b`` may equal input dimension ``a``: only a fixed output size
    that differs from the input's (fixed or dynamic) is known to be wrong."""
    return not isinstance(b, int) or a == b


def check_batch(batch: np.ndarray, model_shape: Sequence[Dim], name: str) -> None:
    """A one-line refusal of a batch that a model whose input shape is fixed (``model_shape``
    all integers, as ONNX Runtime reports it) cannot take."""
    fixed = tuple(model_shape)
    if all(isinstance(d, int) for d in fixed) and tuple(batch.shape) != fixed:
        raise BackendError(
            f"{name} takes only {_shape_text(fixed)} input, got {_shape_text(batch.shape)} "
            "(export a model with dynamic sizes, or one for this size)"
        )
