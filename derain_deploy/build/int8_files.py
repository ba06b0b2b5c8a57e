"""The export's INT8 step: the CPU file and the TensorRT file, each calibrated, checked against
its own PSNR budget and stamped with how it was made (``derain_deploy.build.precision`` says
why the two differ). Nothing is written here: :func:`int8_files` returns bytes to stage."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np
import onnx

from . import onnx_export, precision, verify
from .verify import ParityError

if TYPE_CHECKING:
    from .api import ExportOptions, ExportReport

CALIBRATION_SEED = 1234
TARGETS = ("cpu", "tensorrt")
KEYS = {"cpu": "int8", "tensorrt": "int8_tensorrt"}  # the file keys of export_model


def _quantization_meta(target: str, recipe: precision.Int8Recipe, frames: int, crop: list[int]) -> dict:
    cpu = target == "cpu"
    bits = "7 bits (reduce_range)" if cpu and recipe.reduce_range else "8 bits"
    scope = "per-channel" if recipe.per_channel else "per-tensor"
    meta: dict[str, object] = {
        "format": "QDQ",
        "target": target,
        "activations": "QUInt8 asymmetric" if cpu else "QInt8 symmetric (zero point 0)",
        "weights": f"QInt8 {scope} symmetric, {bits}",
        "calibration": recipe.describe(),
        "float_layers": list(recipe.float_layers),
        "frames": frames,
        "crop": crop,
        "seed": CALIBRATION_SEED,
        "source": "derain_deploy.rain mixed",
    }
    if not cpu:
        meta["biases"] = "float (QuantizeBias=False)"
    return meta


def _one_file(
    proto: onnx.ModelProto,
    calib: np.ndarray,
    fp32: bytes,
    quality: tuple[np.ndarray, np.ndarray],
    options: ExportOptions,
    base_meta: dict[str, object],
    report: ExportReport,
    target: str,
) -> bytes:
    """One INT8 file for ``target``, checked: the CPU file on ONNX Runtime's fused CPU kernels,
    the TensorRT file on its unfused Q/DQ reference kernels (the arithmetic TensorRT runs)."""
    batch = options.shape[0] if options.shape else 1
    recipe = options.int8_recipe if target == "cpu" else precision.TENSORRT_RECIPE
    qproto = precision.quantize_int8(proto, calib, batch, target=target, recipe=recipe)
    meta = _quantization_meta(target, recipe, options.calibration_frames, list(calib.shape[2:]))
    onnx_export.set_metadata(
        qproto, {**base_meta, "precision": "int8", "simplified": options.simplify, "quantization": meta}
    )
    onnx_export.full_check(qproto)
    data = onnx_export.serialize(qproto)
    trt = target == "tensorrt"
    cmp = verify.compare_quality(fp32, data, *quality, batch=batch, low_reference_kernels=trt)
    budget = options.int8_tensorrt_max_loss_db if trt else options.int8_max_loss_db
    report.checks["int8_tensorrt" if trt else "int8"] = {**dataclasses.asdict(cmp), "max_loss_db": budget}
    if cmp.loss_db > budget:
        raise ParityError(
            f"{'TensorRT INT8' if trt else 'INT8'} model not written: PSNR loss {cmp.loss_db:.3f} dB > "
            f"{budget:g} dB (FP32 {cmp.psnr_fp32:.2f} dB, INT8 {cmp.psnr_low:.2f} dB "
            f"on {cmp.images} rainy images)"
        )
    return data


def int8_files(
    proto: onnx.ModelProto,
    fp32: bytes,
    quality: tuple[np.ndarray, np.ndarray],
    options: ExportOptions,
    base_meta: dict[str, object],
    report: ExportReport,
) -> dict[str, bytes]:
    """``{"int8": CPU file, "int8_tensorrt": TensorRT file}`` (those in ``options.int8_targets``),
    calibrated on seeded rainy crops (the static shape's size for a static graph); fills
    ``report.checks``."""
    batch = options.shape[0] if options.shape else 1
    ch, cw = options.shape[2:] if options.shape else options.calibration_crop
    frames = batch * -(-options.calibration_frames // batch)
    calib, _ = verify.rainy_images(frames, ch, cw, seed=CALIBRATION_SEED)
    args = (proto, calib, fp32, quality, options, base_meta, report)
    return {KEYS[t]: _one_file(*args, target=t) for t in TARGETS if t in options.int8_targets}
