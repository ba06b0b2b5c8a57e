"""Validation figures: rainy-input vs derained PSNR_Y/SSIM_Y per part, share improved, and how
much rain-free images change."""

from __future__ import annotations

import math

import numpy as np

from derain_deploy.infer import on_image, run_net
from derain_deploy.model import DerainNet

from .datasets import ValItem

RAIN_FREE_PARTS = ("clean", "texture")  # no rain: the output is compared with the input itself
PSNR_CAP = 100.0  # identical images have infinite PSNR; averages use this cap


def derain_array(model: DerainNet, image: np.ndarray, stages: int | None = None) -> np.ndarray:
    """One HxWx3 image through ``model`` (its first ``stages``), clipped to [0, 1]."""
    return on_image(lambda batch: run_net(model, batch, stages=stages), image)


def _cap(v: float) -> float:
    return PSNR_CAP if math.isinf(v) else min(v, PSNR_CAP)


def evaluate(model: DerainNet, items: list[ValItem],
             stages: int | None = None) -> dict[str, dict[str, float]]:
    """Per part: mean input and output PSNR_Y/SSIM_Y against the clean image and the share of
    images whose output PSNR_Y beats the input's; for rain-free parts ("clean", "texture"), the PSNR_Y/SSIM_Y
    of the output against the untouched input (higher = less changed) and its minimum."""
    from derain_deploy.metrics import psnr, ssim

    model.eval()
    rows: dict[str, list[tuple[float, float, float, float]]] = {}
    for item in items:
        out = derain_array(model, item.rainy, stages)
        p_in, s_in = _cap(psnr(item.rainy, item.clean)), ssim(item.rainy, item.clean)
        p_out, s_out = _cap(psnr(out, item.clean)), ssim(out, item.clean)
        rows.setdefault(item.part, []).append((p_in, s_in, p_out, s_out))
    result: dict[str, dict[str, float]] = {}
    for part, r in rows.items():
        a = np.array(r)
        if part in RAIN_FREE_PARTS:
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


SCORED_PARTS = ("synthetic-light", "synthetic-heavy", "real")
MAX_PART_LOSS_DB = 0.3  # no scored part may lose more than this against the baseline
MAX_SHARE_WORSE = 0.05  # at most this share of rainy images may come out worse than their input


def score(metrics: dict[str, dict[str, float]]) -> float:
    """The one number a candidate is ranked by: mean output PSNR_Y over the light, heavy and real
    parts (each part weighs the same, whatever its image count)."""
    missing = [p for p in SCORED_PARTS if p not in metrics]
    if missing:
        raise ValueError(f"cannot score: no {', '.join(missing)} part in the validation")
    return float(np.mean([metrics[p]["output_psnr_y"] for p in SCORED_PARTS]))


def share_worse(metrics: dict[str, dict[str, float]]) -> float:
    """Share of all rainy validation images whose output PSNR_Y is not above their input's."""
    parts = [d for p, d in metrics.items() if p not in RAIN_FREE_PARTS]
    n = sum(d["n"] for d in parts)
    return float(sum((1 - d["share_better"]) * d["n"] for d in parts) / n) if n else 0.0


def verdict(candidate: dict[str, dict[str, float]], baseline: dict[str, dict[str, float]]) -> list[str]:
    """Why ``candidate`` may not replace ``baseline`` (empty: it may): a lower score, a scored part
    worse by more than :data:`MAX_PART_LOSS_DB`, rain-free photos changed more than the baseline
    changes them, or more than :data:`MAX_SHARE_WORSE` of rainy images worse than their input."""
    reasons = []
    s_new, s_old = score(candidate), score(baseline)
    if s_new <= s_old:
        reasons.append(f"score {s_new:.3f} dB is not above the baseline's {s_old:.3f} dB")
    for part in SCORED_PARTS:
        drop = baseline[part]["output_psnr_y"] - candidate[part]["output_psnr_y"]
        if drop > MAX_PART_LOSS_DB:
            reasons.append(f"{part} is {drop:.2f} dB worse than the baseline (at most {MAX_PART_LOSS_DB})")
    for part in RAIN_FREE_PARTS:
        if part in candidate and part in baseline:
            new, old = candidate[part]["change_psnr_y"], baseline[part]["change_psnr_y"]
            if new < old:
                reasons.append(f"rain-free part {part} changed more: {new:.2f} dB against {old:.2f} dB")
    worse = share_worse(candidate)
    if worse > MAX_SHARE_WORSE:
        reasons.append(f"{worse:.1%} of rainy images come out worse than their input (at most "
                       f"{MAX_SHARE_WORSE:.0%})")
    return reasons
