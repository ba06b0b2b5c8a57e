"""Quality of backends on a paired dataset: PSNR/SSIM (Y-channel convention and RGB) per image.

Every backend's output is clipped to [0, 1] and rounded to 8 bits, as a saved PNG would be, before
the metrics (derain_deploy.metrics) compare it with the clean image; the rainy input's own
figures against the clean image come first, as ``input``. Each image runs alone (batch 1) at its
own size. Images that cannot be read, or whose rainy and clean sizes differ, are skipped and
listed with the reason.
"""

from __future__ import annotations

import csv
import io
import json
import math
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .atomic import write_atomic
from .backend_spec import BackendSpec, Opener, open_spec
from .backends.base import Backend
from .image_size import DEFAULT_MAX_PIXELS, too_large
from .infer import on_image
from .metrics import SSIM_WINDOW, psnr_ssim
from .model import DerainNet
from .output_guard import check_writes
from .pairs import Pair, find_pairs, split_left_right
from .streams.base import StreamError
from .streams.images import read_image

INPUT_LABEL = "input"
METRICS = ("psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb")


class EvalError(ValueError):
    """A dataset that cannot be evaluated (empty, nothing readable); one-line message."""


@dataclass
class EvalReport:
    dataset: str
    layout: str
    labels: list[str]  # "input" first, then one per backend spec
    backends: dict[str, str]  # label -> what actually ran (BackendInfo.describe())
    rows: list[dict[str, object]] = field(default_factory=list)  # image, backend, the four metrics
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (image, reason)
    weights: str = ""

    @property
    def images(self) -> int:
        return len({r["image"] for r in self.rows})

    def summary(self) -> dict[str, dict[str, float]]:
        """Per label: the mean of each metric, and (backends) the share of images whose PSNR_Y
        beats the rainy input's."""
        out: dict[str, dict[str, float]] = {}
        inputs = {r["image"]: r["psnr_y"] for r in self.rows if r["backend"] == INPUT_LABEL}
        for label in self.labels:
            rows = [r for r in self.rows if r["backend"] == label]
            if not rows:
                continue
            s = {m: float(np.mean([r[m] for r in rows])) for m in METRICS}
            if label != INPUT_LABEL:
                s["better_than_input"] = float(np.mean([r["psnr_y"] > inputs[r["image"]] for r in rows]))
            out[label] = s
        return out

    def table(self) -> str:
        lines = [
            f"{self.dataset} ({self.layout} layout): {self.images} image(s)"
            + (f", {len(self.skipped)} skipped" if self.skipped else "")
            + (f"; weights: {self.weights}" if self.weights else ""),
            f"{'':24s} {'PSNR_Y':>8s} {'SSIM_Y':>8s} {'PSNR_RGB':>9s} {'SSIM_RGB':>9s} {'better':>7s}",
        ]
        for label, s in self.summary().items():
            better = f"{100 * s['better_than_input']:.0f}%" if "better_than_input" in s else "-"
            lines.append(
                f"{label:24s} {s['psnr_y']:8.2f} {s['ssim_y']:8.4f} {s['psnr_rgb']:9.2f} "
                f"{s['ssim_rgb']:9.4f} {better:>7s}"
            )
        lines.append(
            "PSNR/SSIM_Y: Y of YCbCr (MATLAB rgb2ycbcr), peak 255, SSIM 11x11 Gaussian sigma 1.5; "
            "RGB: all channels. 'better': share of images whose PSNR_Y beats the rainy input's."
        )
        lines.extend(f"skipped {name}: {reason}" for name, reason in self.skipped)
        return "\n".join(lines)

    def to_dict(self) -> dict[str, object]:
        return {
            "dataset": self.dataset,
            "layout": self.layout,
            "images": self.images,
            "weights": self.weights,
            "convention": "Y: MATLAB rgb2ycbcr, peak 255; SSIM 11x11 Gaussian sigma 1.5, no border crop",
            "backends": self.backends,
            "summary": _finite(self.summary()),
            "skipped": [{"image": n, "reason": r} for n, r in self.skipped],
            "per_image": [_finite(r) for r in self.rows],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_csv(self) -> str:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=["image", "backend", *METRICS], lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        return buf.getvalue()


def _finite(obj: object) -> object:
    """JSON has no inf (PSNR of identical images): null stands for it."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def read_rgb(path: Path, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray | None:
    """An 8-bit RGB HxWx3 image (:func:`~.streams.images.read_image`'s, rounded), or None when
    the file cannot be decoded; ValueError when it is larger than ``max_pixels`` (read from the
    header, before decoding)."""
    if refusal := too_large(path, max_pixels, name=path.name):
        raise ValueError(refusal)
    try:
        rgb, _ = read_image(path, max_pixels=None)
    except StreamError:
        return None
    return np.round(rgb * 255.0).astype(np.uint8)


def load_pair(pair: Pair, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> tuple[np.ndarray, np.ndarray]:
    """(rainy, clean) as uint8 RGB; raises ValueError with the reason when unusable."""
    rainy = read_rgb(pair.rainy, max_pixels)
    if rainy is None:
        raise ValueError(f"cannot decode {pair.rainy.name}")
    if pair.split == "left-right":
        rainy, clean = split_left_right(rainy)
    else:
        clean = read_rgb(pair.clean, max_pixels)
        if clean is None:
            raise ValueError(f"cannot decode {pair.clean.name}")
    if rainy.shape != clean.shape:
        raise ValueError(
            f"rainy {rainy.shape[1]}x{rainy.shape[0]} and clean {clean.shape[1]}x{clean.shape[0]} differ"
        )
    if min(rainy.shape[:2]) < SSIM_WINDOW:
        raise ValueError(f"smaller than the {SSIM_WINDOW}x{SSIM_WINDOW} SSIM window")
    return np.ascontiguousarray(rainy), np.ascontiguousarray(clean)


def run_image(backend: Backend, rainy: np.ndarray) -> np.ndarray:
    """The backend's output for one uint8 RGB image, as uint8 RGB (clipped, rounded)."""
    return np.round(on_image(backend, rainy.astype(np.float32) / 255.0) * 255.0).astype(np.uint8)


def _safe(label: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in label)


def evaluate(
    dataset: str | Path,
    specs: list[BackendSpec],
    model: DerainNet,
    *,
    layout: str = "auto",
    save_outputs: str | Path | None = None,
    limit: int | None = None,
    progress: bool = True,
    opener: Opener = open_spec,
    weights: str = "",
    log: Callable[[str], None] | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    writes: Mapping[str, str | Path | None] | None = None,
    inputs: Sequence[str | Path] = (),
) -> EvalReport:
    """PSNR/SSIM of the rainy input and of each backend in ``specs`` on the pairs under ``dataset``;
    images without a partner and images over ``max_pixels`` are skipped and named in the report.

    ``writes`` (label to path: the reports the caller writes afterwards) and ``save_outputs`` are
    refused before any work when they would overwrite an input: a dataset image, a spec's file or
    one of ``inputs`` (the weights file); ``save_outputs`` may not lie inside the dataset either."""
    from tqdm import tqdm

    pairs = find_pairs(dataset, layout)  # LayoutError: not found / no known layout
    items = pairs.pairs[:limit] if limit else pairs.pairs
    if not items:
        raise EvalError(f"{dataset}: the dataset is empty")
    out_root = Path(save_outputs) if save_outputs else None
    read = [p for pair in pairs.pairs for p in (pair.rainy, pair.clean)]
    read += [*(s.file for s in specs), *inputs]
    check_writes(dict(writes or {}), read)  # before any work: no report over an input
    check_writes({"--save-outputs": out_root}, read, [pairs.root])
    report = EvalReport(
        str(dataset), pairs.layout, [INPUT_LABEL] + [s.label for s in specs], {}, weights=weights
    )
    backends: dict[str, Backend] = {}
    with tempfile.TemporaryDirectory(prefix="derain-eval-") as tmp:
        try:
            for spec in specs:
                if log:
                    log(f"opening {spec.label}")
                backends[spec.label] = opener(spec, model, Path(tmp))
                report.backends[spec.label] = backends[spec.label].info.describe()
            for pair in tqdm(items, desc="derain-eval", unit="img", disable=not progress):
                try:
                    rainy, clean = load_pair(pair, max_pixels)
                except (ValueError, OSError) as e:
                    report.skipped.append((pair.name, str(e)))
                    continue
                report.rows.append({"image": pair.name, "backend": INPUT_LABEL, **psnr_ssim(rainy, clean)})
                for label, backend in backends.items():
                    out = run_image(backend, rainy)
                    report.rows.append({"image": pair.name, "backend": label, **psnr_ssim(out, clean)})
                    if out_root is not None:
                        _save(out_root / _safe(label) / f"{pair.name}.png", out)
        finally:
            for backend in backends.values():
                backend.close()
    if not report.rows:
        raise EvalError(
            f"{dataset}: none of the {len(items)} pair(s) could be read "
            f"(first: {report.skipped[0][0]}: {report.skipped[0][1]})"
        )
    report.skipped.extend(
        (p.relative_to(pairs.root).as_posix(), pairs.missing_partner(p)) for p in pairs.unmatched
    )
    return report


def _save(path: Path, rgb: np.ndarray) -> None:
    ok, data = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"cannot encode {path.name}")
    write_atomic(path, data.tobytes())
