"""Crafted bad inputs shared by the unit tests and the bad-input suite (tests/test_bad_inputs.py)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def huge_png(path: Path, width: int = 20000, height: int = 20000) -> Path:
    """A PNG whose header says ``width`` x ``height`` 8-bit grey pixels but whose data holds one
    row: a few hundred bytes that a decoder would allocate the whole frame for (the real file of
    the issue, all rows of zeros, is 389 KB; it takes seconds to compress)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    data = zlib.compress(bytes(width + 1), 9)
    chunks = _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunks)
    return path


def foreign_onnx(
    path: Path,
    in_shape: list,
    out_shape: list,
    *,
    names: tuple[str, str] = ("rainy", "derained"),
    op: str = "Identity",
    elem: str = "FLOAT",
    inputs: int = 1,
) -> Path:
    """A one-node ONNX model (``op``) with the given input and output shapes (ints or names)."""
    import onnx
    from onnx import TensorProto, helper

    kind = getattr(TensorProto, elem)
    input_names = [names[0] + (str(i) if i else "") for i in range(inputs)]
    ins = [helper.make_tensor_value_info(name, kind, in_shape) for name in input_names]
    out = helper.make_tensor_value_info(names[1], kind, out_shape)
    attributes = {"keepdims": 1} if op.startswith("Reduce") else {}
    node = helper.make_node(op, [names[0]], [names[1]], **attributes)
    graph = helper.make_graph([node], "g", ins, [out])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 10
    onnx.save(model, str(path))
    return path
