"""Synthetic rain: motion-blurred sparse noise composited onto a clean image.

The generator follows the Photoshop-style recipe behind Rain100L/H (sparse noise, blurred along a
direction into streaks, added to the background and clipped), with per-layer angle, length,
width, density and brightness, several layers per image and an optional veil (haze). Grey,
additive streaks near vertical (within about 15 degrees) match the 18 real training pairs in
``shared/data/rain_train``: their rain layers are achromatic, never negative, 0.1-0.3 mean
intensity, long (tens of pixels) and 1-3 px wide.

Everything works on float32 HxWx3 arrays in [0, 1] (RGB); numpy + OpenCV only (no torch).
The returned rain layer is exactly ``rainy - clean`` after clipping, so a loss target is exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import cv2
import numpy as np


@dataclass(frozen=True)
class StreakLayer:
    """One family of streaks: direction (degrees from vertical, positive leans right at the top),
    length and width (Gaussian sigma across the streak) in pixels, density (share of pixels that
    seed a streak) and brightness (peak added intensity of a single streak)."""

    angle: float = 0.0
    length: float = 30.0
    width: float = 0.6
    density: float = 0.005
    brightness: float = 0.5


@dataclass(frozen=True)
class RainParams:
    """A full rain recipe: streak layers, a veil of ``haze`` opacity (screen-blended grey of level
    ``haze_level``) and the composite mode (``add``: O = clip(B + R); ``screen``: 1-(1-B)(1-R))."""

    layers: tuple[StreakLayer, ...] = ()
    haze: float = 0.0
    haze_level: float = 0.9
    mode: str = "add"

    def __post_init__(self) -> None:
        if self.mode not in ("add", "screen"):
            raise ValueError(f"unknown composite mode {self.mode!r}; expected add or screen")


@dataclass
class RainSample:
    """``rainy = clean + rain`` exactly (all HxWx3 float32 in [0, 1], rain >= 0)."""

    rainy: np.ndarray
    clean: np.ndarray
    rain: np.ndarray
    params: RainParams


# Ranges sampled per image: (low, high) uniform unless noted.
PRESETS: dict[str, dict[str, object]] = {
    # Rain100L-like: one direction, thin, sparse, moderate brightness, no veil.
    "light": {
        "layers": (1, 2),
        "angle": 12.0,  # base angle ~ U(-a, a)
        "angle_spread": 4.0,  # extra layers within +-spread of the base
        "length": (15.0, 50.0),
        "width": (0.35, 0.75),
        "density": (0.001, 0.006),
        "brightness": (0.25, 0.7),
        "haze": (0.0, 0.0),
        "haze_prob": 0.0,
    },
    # Rain100H-like: several directions, dense, long bright streaks, often a veil.
    "heavy": {
        "layers": (2, 4),
        "angle": 25.0,
        "angle_spread": 20.0,
        "length": (25.0, 80.0),
        "width": (0.45, 1.3),
        "density": (0.003, 0.012),
        "brightness": (0.4, 0.9),
        "haze": (0.05, 0.3),
        "haze_prob": 0.6,
    },
    # Wider light rain: thin to soft streaks at any lean up to 35 degrees, short to long, faint to
    # bright, one to three directions (the oblique and faint streaks that "light" never shows).
    "light_wide": {
        "layers": (1, 3),
        "angle": 35.0,
        "angle_spread": 8.0,
        "length": (8.0, 70.0),
        "width": (0.3, 1.1),
        "density": (0.0008, 0.009),
        "brightness": (0.15, 0.8),
        "haze": (0.0, 0.08),
        "haze_prob": 0.15,
    },
    # Dense heavy rain: three to five directions, long and wide streaks, a veil most of the time.
    "heavy_dense": {
        "layers": (3, 5),
        "angle": 35.0,
        "angle_spread": 25.0,
        "length": (20.0, 100.0),
        "width": (0.5, 1.5),
        "density": (0.003, 0.011),
        "brightness": (0.3, 0.8),
        "haze": (0.05, 0.35),
        "haze_prob": 0.75,
    },
}
RAIN_NAMES = (*PRESETS, "medium", "none")
# Shares of the "mixed" training mixture; "none" is a rain-free sample (rain layer 0).
MIXED_WEIGHTS: dict[str, float] = {"light": 0.4, "medium": 0.15, "heavy": 0.38, "none": 0.07}


def _uniform(rng: np.random.Generator, bounds: tuple[float, float], log: bool = False) -> float:
    lo, hi = bounds
    if log and lo > 0:
        return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
    return float(rng.uniform(lo, hi))


def sample_params(preset: str, rng: np.random.Generator, mix: dict[str, float] | None = None) -> RainParams:
    """Random parameters for ``preset``: light, heavy, medium (between them), none or mixed
    (drawn per image with the shares ``mix``, default :data:`MIXED_WEIGHTS`)."""
    if preset == "mixed":
        mix = mix or MIXED_WEIGHTS
        names = list(mix)
        bad = [n for n in names if n not in RAIN_NAMES or mix[n] < 0]
        if bad or sum(mix.values()) <= 0:
            raise ValueError(f"bad rain mix {mix}: expected shares >= 0 of {', '.join(RAIN_NAMES)}")
        p = np.array([mix[n] for n in names], dtype=float)
        preset = names[int(rng.choice(len(names), p=p / p.sum()))]
    if preset == "none":
        return RainParams()
    if preset == "medium":
        t = float(rng.uniform(0.25, 0.75))
        spec = {
            k: (
                tuple((1 - t) * a + t * b for a, b in zip(PRESETS["light"][k], PRESETS["heavy"][k]))  # type: ignore[arg-type]
                if isinstance(PRESETS["light"][k], tuple)
                else (1 - t) * PRESETS["light"][k] + t * PRESETS["heavy"][k]  # type: ignore[operator]
            )
            for k in PRESETS["light"]
        }
        spec["layers"] = (1, 3)
    elif preset in PRESETS:
        spec = PRESETS[preset]
    else:
        raise ValueError(f"unknown rain preset {preset!r}; expected {', '.join(RAIN_NAMES)} or mixed")
    lo, hi = spec["layers"]  # type: ignore[misc]
    n_layers = int(rng.integers(round(lo), round(hi) + 1))
    base = float(rng.uniform(-spec["angle"], spec["angle"]))  # type: ignore[operator]
    layers = []
    for i in range(n_layers):
        angle = base if i == 0 else base + float(rng.uniform(-spec["angle_spread"], spec["angle_spread"]))  # type: ignore[operator]
        layers.append(
            StreakLayer(
                angle=angle,
                length=_uniform(rng, spec["length"]),  # type: ignore[arg-type]
                width=_uniform(rng, spec["width"]),  # type: ignore[arg-type]
                density=_uniform(rng, spec["density"], log=True) / n_layers,  # type: ignore[arg-type]
                brightness=_uniform(rng, spec["brightness"]),  # type: ignore[arg-type]
            )
        )
    haze = _uniform(rng, spec["haze"]) if rng.random() < spec["haze_prob"] else 0.0  # type: ignore[arg-type,operator]
    mode = "screen" if rng.random() < 0.25 else "add"
    return RainParams(
        layers=tuple(layers), haze=haze, haze_level=float(rng.uniform(0.75, 1.0)), mode=mode
    )


def streak_kernel(angle: float, length: float, width: float) -> np.ndarray:
    """A single streak of peak 1: Gaussian across (sigma ``width``), tapered ends along."""
    half = length / 2.0
    r = math.ceil(half + 3 * width) + 1
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1].astype(np.float32)
    a = math.radians(angle)
    # Unit vector along the streak (pointing down-left for positive angles: top leans right).
    ux, uy = -math.sin(a), math.cos(a)
    along = xx * ux + yy * uy
    across = xx * uy - yy * ux
    profile = np.exp(-0.5 * (across / max(width, 1e-3)) ** 2)
    # Bright core, softly fading ends (a drop's motion trail): cosine taper over the last 30 %.
    t = np.clip((half - np.abs(along)) / max(0.3 * half, 1.0), 0.0, 1.0)
    taper = 0.5 - 0.5 * np.cos(np.pi * t)
    return (profile * taper).astype(np.float32)


def streak_layer(shape: tuple[int, int], layer: StreakLayer, rng: np.random.Generator) -> np.ndarray:
    """A grey HxW streak intensity map (>= 0, not clipped) for one layer."""
    h, w = shape
    kernel = streak_kernel(layer.angle, layer.length, layer.width)
    pad = kernel.shape[0] // 2
    H, W = h + 2 * pad, w + 2 * pad  # streaks may enter from outside the frame
    seeds = (rng.random((H, W), dtype=np.float32) < layer.density).astype(np.float32)
    seeds *= rng.uniform(0.5, 1.0, size=(H, W)).astype(np.float32) * layer.brightness
    out = cv2.filter2D(seeds, -1, kernel, borderType=cv2.BORDER_CONSTANT)
    return out[pad : pad + h, pad : pad + w]


def render(clean: np.ndarray, params: RainParams, rng: np.random.Generator) -> RainSample:
    """Composite ``params``'s rain onto ``clean`` (HxWx3 float in [0, 1])."""
    clean = np.ascontiguousarray(clean, dtype=np.float32)
    if clean.ndim != 3 or clean.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 image, got shape {clean.shape}")
    h, w = clean.shape[:2]
    streaks = np.zeros((h, w), np.float32)
    for layer in params.layers:
        streaks += streak_layer((h, w), layer, rng)
    streaks = np.clip(streaks, 0.0, 1.0)[..., None]  # the DFT filter leaves -1e-8 noise
    screen = 1.0 - (1.0 - clean) * (1.0 - streaks)
    rainy = clean + streaks if params.mode == "add" else screen
    if params.haze > 0:
        veil = params.haze * params.haze_level
        rainy = 1.0 - (1.0 - rainy) * (1.0 - veil)
    rainy = np.clip(np.maximum(rainy, clean), 0.0, 1.0).astype(np.float32)  # rain only adds light
    return RainSample(rainy=rainy, clean=clean, rain=rainy - clean, params=params)


def add_rain(clean: np.ndarray, preset: str | RainParams = "mixed", seed: int | None = None,
             rng: np.random.Generator | None = None, mix: dict[str, float] | None = None) -> RainSample:
    """Rain on ``clean`` from a preset name (light, medium, heavy, none, mixed) or explicit
    params; deterministic for a given ``seed`` (or pass a ``rng``)."""
    rng = rng if rng is not None else np.random.default_rng(seed)
    params = preset if isinstance(preset, RainParams) else sample_params(preset, rng, mix)
    return render(clean, params, rng)


def scale_density(params: RainParams, factor: float) -> RainParams:
    """The same rain with every layer's density multiplied by ``factor``."""
    return replace(params, layers=tuple(replace(l, density=l.density * factor) for l in params.layers))
