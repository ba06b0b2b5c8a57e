"""A grid of training samples per rain source beside crops of the real pairs, for the README.

Rows: the real pairs' rainy crops, then one row per synthetic preset (light, light_wide, medium,
heavy, heavy_dense), transplanted real rain, and the rain-free texture negatives. Every tile is
a 128x128 crop of a held-in clean photo (fixed seeds).

    python benchmarks/rain_samples.py [--config trainer/configs/default_v2.toml]
        [--out benchmarks/results/rain_samples.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from derain_deploy.atomic import write_atomic
from derain_deploy.rain import add_rain
from trainer.config import load
from trainer.datasets import fit_crop, gather_images, gather_pairs, read_pair, read_rgb
from trainer.negatives import scene_structure
from trainer.rain_layers import rain_layer, transplant

TILE, COLS = 128, 6
ROWS = ("real pairs", "light", "light_wide", "medium", "heavy", "heavy_dense", "transplant", "texture")


def _label(tile: np.ndarray, text: str) -> np.ndarray:
    img = np.ascontiguousarray((tile * 255).astype(np.uint8))
    cv2.putText(img, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(img, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1, cv2.LINE_AA)
    return img


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="trainer/configs/default_v2.toml")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/rain_samples.png"))
    args = ap.parse_args()
    cfg = load(args.config)
    files = gather_images(cfg.data.clean, set(cfg.data.exclude))
    pairs = gather_pairs(cfg.data.paired, set(cfg.data.exclude))
    layers = [rain_layer(*read_pair(p)) for p in pairs]
    rows = []
    for r, name in enumerate(ROWS):
        tiles = []
        for c in range(COLS):
            rng = np.random.default_rng([r, c])
            if name == "real pairs":
                rainy, _ = fit_crop(list(read_pair(pairs[c % len(pairs)])), TILE, rng, False)
            else:
                (clean,) = fit_crop([read_rgb(files[int(rng.integers(len(files)))])], TILE, rng, False,
                                    textured=name == "texture")
                if name == "texture":
                    rainy = scene_structure(clean, rng)
                elif name == "transplant":
                    rainy, _ = transplant(clean, layers, rng)
                else:
                    rainy = add_rain(clean, name, rng=rng).rainy
            tiles.append(_label(rainy, name) if c == 0 else (rainy * 255).astype(np.uint8))
        rows.append(np.concatenate(tiles, axis=1))
    grid = np.concatenate(rows, axis=0)
    ok, png = cv2.imencode(".png", cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    if not ok:
        raise SystemExit("error: could not encode the grid")
    write_atomic(args.out, png.tobytes())
    print(f"wrote {args.out} ({grid.shape[1]}x{grid.shape[0]})")


if __name__ == "__main__":
    main()
