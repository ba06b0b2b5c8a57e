"""Helpers for the trainer tests: tiny images and tiny config overrides."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def write_images(folder: Path, n: int, h: int = 40, w: int = 48, seed: int = 0,
                 prefix: str = "img") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        img = cv2.GaussianBlur((rng.random((h, w, 3)) * 255).astype(np.uint8), (5, 5), 0)
        p = folder / f"{prefix}{i}.png"
        cv2.imwrite(str(p), img)
        paths.append(p)
    return paths


def tiny_overrides(clean_dir: Path, out: Path, **extra: object) -> list[str]:
    items = {
        "model.stages": 2, "model.channels": 4, "data.clean": f"[{clean_dir}]", "data.crop": 16,
        "data.rain": "heavy", "train.iterations": 6, "train.batch": 2, "train.out": str(out),
        "train.checkpoint_every": 2, "train.log_every": 1, "train.threads": 1, "val.every": 0,
    }
    items.update(extra)
    return [f"{k}={v}" for k, v in items.items()]


def interrupt_at(n: int, original):  # type: ignore[no-untyped-def]
    """A ``batch_for`` that stops the run (Ctrl-C) when iteration ``n`` asks for its batch."""

    def batch(dataset, iteration, size):  # type: ignore[no-untyped-def]
        if iteration == n:
            raise KeyboardInterrupt
        return original(dataset, iteration, size)

    return batch
