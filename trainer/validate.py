"""Validation figures: rainy-input vs derained PSNR_Y/SSIM_Y per part, share improved, and how
much rain-free images change."""

from __future__ import annotations

import math

import numpy as np
import torch

from derain_deploy.model import DerainNet

from .datasets import ValItem

PSNR_CAP = 100.0  # identical images have infinite PSNR; averages use this cap


def derain_array(model: DerainNet, image: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None].float()
    with torch.no_grad():
        y = model(x)
    return y[0].clamp(0, 1).permute(1, 2, 0).numpy().astype(np.float32)


def _cap(v: float) -> float:
    return PSNR_CAP if math.isinf(v) else min(v, PSNR_CAP)


def evaluate(model: DerainNet, items: list[ValItem]) -> dict[str, dict[str, float]]:
    """Per part: mean input and output PSNR_Y/SSIM_Y against the clean image and the share of
    images whose output PSNR_Y beats the input's; for part "clean" (no rain), the PSNR_Y/SSIM_Y
    of the output against the untouched input (higher = less changed) and its minimum."""
    from derain_deploy.metrics import psnr, ssim

    model.eval()
    rows: dict[str, list[tuple[float, float, float, float]]] = {}
    for item in items:
        out = derain_array(model, item.rainy)
        p_in, s_in = _cap(psnr(item.rainy, item.clean)), ssim(item.rainy, item.clean)
        p_out, s_out = _cap(psnr(out, item.clean)), ssim(out, item.clean)
        rows.setdefault(item.part, []).append((p_in, s_in, p_out, s_out))
    result: dict[str, dict[str, float]] = {}
    for part, r in rows.items():
        a = np.array(r)
        if part == "clean":
            result[part] = {"n": len(r), "change_psnr_y": float(a[:, 2].mean()),
                            "change_psnr_y_min": float(a[:, 2].min()), "change_ssim_y": float(a[:, 3].mean())}
        else:
            result[part] = {
                "n": len(r),
                "input_psnr_y": float(a[:, 0].mean()), "input_ssim_y": float(a[:, 1].mean()),
                "output_psnr_y": float(a[:, 2].mean()), "output_ssim_y": float(a[:, 3].mean()),
                "share_better": float((a[:, 2] > a[:, 0]).mean()),
            }
    return result


def flat(metrics: dict[str, dict[str, float]]) -> dict[str, float]:
    """``part/key`` -> value, for CSV logs."""
    return {f"{part}/{k}": v for part, d in metrics.items() for k, v in d.items() if k != "n"}
