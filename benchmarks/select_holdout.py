"""Pick the held-out validation images added for issue 13, reproducibly, from ../shared/data/clean.

- ``texture``: the 20 most texture-rich photos (mean Sobel gradient magnitude of the grey image
  at a fixed 256-px short side) of CBSD432, ImageNet_sample, Sun_Hays80 and McMaster: stripes,
  fences, foliage, text. A rain-free part: the model must leave them as they are.
- ``extra``: 20 more photos for the synthetic light/heavy parts (every 28th ImageNet_sample and
  every 8th Sun_Hays80 file in sorted order, skipping texture picks).

Both lists go into the recipe's ``data.exclude`` and ``val`` sections; this script prints them.

    python benchmarks/select_holdout.py [--root ../shared/data/clean]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from derain_deploy.pairs import list_images

# BSD backgrounds of the 18 paired images (../shared/data/SOURCES.md): already seen through the pairs.
PAIR_BACKGROUNDS = {"100080", "100098", "101085", "101087", "102061", "103041", "103070", "104022", "105025",
                    "105053", "106020", "106024", "106025", "108005", "108041", "108070", "108073", "108082"}


def texture_score(path: Path) -> float:
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if img is None:
        return -1.0
    s = 256 / min(img.shape)
    img = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    gx, gy = cv2.Sobel(img, cv2.CV_32F, 1, 0), cv2.Sobel(img, cv2.CV_32F, 0, 1)
    return float(np.sqrt(gx * gx + gy * gy).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=Path("../shared/data/clean"))
    args = ap.parse_args()
    folders = ("CBSD432", "ImageNet_sample", "Sun_Hays80", "McMaster")
    pool = [p for d in folders for p in list_images(args.root / d) if p.stem not in PAIR_BACKGROUNDS]
    ranked = sorted(pool, key=texture_score, reverse=True)
    texture = [str(p) for p in ranked[:20]]
    taken = set(texture)
    extra = [str(p) for p in list_images(args.root / "ImageNet_sample")[::28] if str(p) not in taken][:12]
    scenes = [str(p) for p in list_images(args.root / "Sun_Hays80")[::8] if str(p) not in taken]
    extra += scenes[: 20 - len(extra)]
    print(json.dumps({"texture": texture, "extra": extra}, indent=1))


if __name__ == "__main__":
    main()
