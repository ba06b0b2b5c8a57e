"""How much tile margin does the deraining network need? Measures the effective receptive field.

Two measurements, for the untrained (seeded random init) model and for a weights file if given:

1. ERF profile: |d out[centre] / d input| summed over channels, and the share of its total mass
   lying beyond radius r (Chebyshev distance), for r up to the exact receptive-field radius.
2. Tiled vs whole-frame PSNR (RGB, peak 1) on a rainy photo for a range of margins, with the
   library's own :func:`derain_deploy.tiling.tiled_call`.

Usage: python benchmarks/tiling_overlap.py [--weights W.safetensors] [--tile 256]
Writes benchmarks/results/tiling_overlap.json. Takes a few minutes on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from derain_deploy.backends import open_backend
from derain_deploy.model import DerainConfig, DerainNet
from derain_deploy.rainy_inputs import rainy_frame
from derain_deploy.tiling import receptive_field_radius, tiled_call
from derain_deploy.weights import load_weights, save_weights


def rainy_photo(seed: int = 0) -> np.ndarray:
    """scikit-image's astronaut (512x512) under heavy synthetic rain, 1x3xHxW in [0, 1]."""
    rainy, _ = rainy_frame(512, 512, seed, photo_name="astronaut")
    return rainy.transpose(2, 0, 1)[None].copy()


def erf_profile(model: DerainNet, radius: int) -> dict[str, float]:
    size = 2 * radius + 1
    x = torch.rand(1, 3, size, size, requires_grad=True)
    y = model(x)
    y[0, :, radius, radius].sum().backward()
    g = x.grad.abs().sum(dim=(0, 1)).numpy()
    yy, xx = np.mgrid[:size, :size]
    dist = np.maximum(abs(yy - radius), abs(xx - radius))
    total = g.sum()
    return {str(r): float(g[dist > r].sum() / total) for r in (4, 8, 16, 24, 32, 48, 64, 96, 128, 160, 200)}


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def measure(weights: Path, label: str, tile: int, margins: list[int]) -> dict[str, object]:
    model = load_weights(weights)
    rf = receptive_field_radius(model.config)
    backend = open_backend("onnxruntime", weights, "cpu")  # 3x faster than eager; same outputs (fp32)
    photo = rainy_photo()
    rows = {}
    for m in margins:
        # 2 x 2 tiles of ``tile`` px whose overlap is exactly 2 m + ramp: the image is cropped to
        # 2 tile - overlap, so each contributing pixel lies at least m (not more) inside its tile
        overlap = 2 * m + 16
        size = 2 * tile - overlap
        if size > photo.shape[2] or overlap >= tile:
            continue
        img = np.ascontiguousarray(photo[:, :, :size, :size])
        whole = backend(img)
        t0 = time.perf_counter()
        tiled = tiled_call(backend, img, (tile, tile), margin=m, ramp=16)
        centre, half = size / 2, overlap / 2  # the overlap band around the seam lines
        idx = np.arange(size) + 0.5
        band = (np.abs(idx - centre) <= half)[:, None] | (np.abs(idx - centre) <= half)[None, :]
        rows[str(m)] = {
            "image": size,
            "psnr_db": round(psnr(tiled, whole), 2),
            "psnr_overlap_band_db": round(psnr(tiled[..., band], whole[..., band]), 2),
            "max_abs": float(np.abs(tiled - whole).max()),
            "seconds": round(time.perf_counter() - t0, 2),
        }
        row = rows[str(m)]
        print(f"{label}: margin {m:3d}: PSNR {row['psnr_db']} dB, max abs {row['max_abs']:.2e}", flush=True)
    erf = erf_profile(model, rf)
    print(f"{label}: share of |grad| beyond radius r: {erf}", flush=True)
    return {
        "receptive_field_radius": rf,
        "tiled": rows,
        "erf_mass_beyond": erf,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--weights", type=Path)
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "tiling_overlap.json")
    args = parser.parse_args()
    margins = [0, 4, 8, 16, 24, 32, 48, 64, 96]
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["DERAIN_DEPLOY_CACHE"] = tmp  # keep the user's ONNX cache clean
        torch.manual_seed(0)
        untrained = save_weights(DerainNet(DerainConfig()), Path(tmp) / "untrained.safetensors")
        results = {
            "machine": platform.processor() or platform.machine(),
            "torch": torch.__version__,
            "image": "skimage astronaut 512x512 + synthetic streaks",
            "tile": args.tile,
            "ramp": 16,
            "untrained": measure(untrained, "untrained", args.tile, margins),
        }
        if args.weights:
            results["trained"] = measure(args.weights, args.weights.name, args.tile, margins)
            results["weights"] = str(args.weights)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
