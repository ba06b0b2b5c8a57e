"""Training data: synthetic rain on clean folders, paired folders, mixing, crops and flips.

Every sample is a pure function of (seed, index): its own numpy Generator picks the source, the
file, the crop, the flips and the rain, so a resumed run sees exactly the same batches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from derain_deploy.pairs import LayoutError, Pair, find_pairs, list_images, split_left_right
from derain_deploy.rain import add_rain
from derain_deploy.streams.base import StreamError
from derain_deploy.streams.images import read_image

from .negatives import scene_structure, textured_window
from .rain_layers import rain_layer, transplant

# Training-only sources a "mixed" rain_mix may name besides derain_deploy.rain's presets.
TRANSPLANT, TEXTURE = "transplant", "texture"


class DataError(ValueError):
    """A dataset that cannot be used (empty, missing folder); the message is one line."""


def read_rgb(path: Path) -> np.ndarray:
    """HxWx3 float32 RGB in [0, 1] (the runtime's one image reader); raises OSError with a reason
    when unreadable."""
    if not path.is_file():
        raise OSError("file not found")
    if path.stat().st_size == 0:
        raise OSError("empty file")
    try:
        return read_image(path, max_pixels=None)[0]
    except StreamError as e:
        raise OSError(str(e)) from None


def gather_images(entries: list[str], exclude: set[str] | None = None) -> list[Path]:
    """Image files from folders or single files, minus stems in ``exclude``."""
    out: list[Path] = []
    for e in entries:
        p = Path(e)
        if p.is_dir():
            files = list_images(p)
            if not files:
                raise DataError(f"no images in {p}")
            out.extend(files)
        elif p.is_file():
            out.append(p)
        else:
            raise DataError(f"not found: {p}")
    exclude = exclude or set()
    return [p for p in out if p.stem not in exclude]


def gather_pairs(entries: list[str], exclude: set[str] | None = None,
                 names: list[str] | None = None) -> list[Pair]:
    pairs: list[Pair] = []
    for e in entries:
        try:
            pairs.extend(find_pairs(e).pairs)
        except LayoutError as err:
            raise DataError(str(err)) from None
    exclude = exclude or set()
    pairs = [p for p in pairs if p.name not in exclude]
    if names:
        wanted = set(names)
        pairs = [p for p in pairs if p.name in wanted]
    return pairs


def read_pair(pair: Pair) -> tuple[np.ndarray, np.ndarray]:
    if pair.split == "left-right":
        return split_left_right(read_rgb(pair.rainy))
    rainy, clean = read_rgb(pair.rainy), read_rgb(pair.clean)
    if rainy.shape != clean.shape:
        raise OSError(f"rainy {rainy.shape[:2]} and clean {clean.shape[:2]} sizes differ")
    return rainy, clean


def fit_crop(images: list[np.ndarray], crop: int, rng: np.random.Generator, flip: bool,
             textured: bool = False) -> list[np.ndarray]:
    """The same random ``crop`` x ``crop`` window (and flips) from each image; images smaller than
    the crop are first scaled up (aspect kept) so the shorter side equals ``crop``. ``textured``
    takes the most detailed of four random windows."""
    h, w = images[0].shape[:2]
    if min(h, w) < crop:
        s = crop / min(h, w)
        size = (max(crop, round(w * s)), max(crop, round(h * s)))
        images = [cv2.resize(im, size, interpolation=cv2.INTER_CUBIC) for im in images]
        h, w = images[0].shape[:2]
    if textured:
        y, x = textured_window(images[0], crop, rng)
    else:
        y = int(rng.integers(0, h - crop + 1))
        x = int(rng.integers(0, w - crop + 1))
    images = [im[y : y + crop, x : x + crop] for im in images]
    if flip and rng.random() < 0.5:
        images = [im[:, ::-1] for im in images]
    return [np.clip(np.ascontiguousarray(im), 0.0, 1.0) for im in images]


def to_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))


@dataclass
class SkipLog:
    """Unreadable files met so far: path -> reason."""

    skipped: dict[str, str] = field(default_factory=dict)

    def add(self, path: Path, reason: str) -> None:
        if str(path) not in self.skipped:
            self.skipped[str(path)] = reason
            print(f"warning: skipping {path}: {reason}", flush=True)


class RainDataset(Dataset):
    """Training pairs (rainy, clean, rain) as CHW float tensors; indexable without end.

    Mixes synthetic rain on ``clean_files`` with real ``pairs`` (``paired_share`` of samples
    come from pairs when both exist). A "mixed" ``rain_mix`` may also name ``transplant`` (a
    pair's rain layer on another photo, see :mod:`trainer.rain_layers`) and ``texture`` (a
    rain-free detailed crop with drawn scene structure, see :mod:`trainer.negatives`);
    ``texture_share`` of rainy synthetic samples use detailed crops too, half of them with
    drawn structure under the rain."""

    def __init__(self, clean_files: list[Path], pairs: list[Pair], crop: int = 100, flip: bool = True,
                 rain: str = "mixed", paired_share: float = 0.15, seed: int = 0,
                 length: int = 10**12, rain_mix: dict[str, float] | None = None,
                 texture_share: float = 0.0) -> None:
        if not clean_files and not pairs:
            raise DataError("the training dataset is empty: no clean images and no pairs")
        self.clean_files, self.pairs = list(clean_files), list(pairs)
        self.crop, self.flip, self.rain, self.seed, self.length = crop, flip, rain, seed, length
        self.rain_mix = dict(rain_mix) if rain_mix else None
        self.texture_share = texture_share
        self.own_sources = bool(self.rain_mix) and bool({TRANSPLANT, TEXTURE} & set(self.rain_mix or {}))
        self.layers: list[np.ndarray] = []
        if self.own_sources and (self.rain_mix or {}).get(TRANSPLANT, 0) > 0:
            if not pairs:
                raise DataError("data.rain_mix names transplant but there are no training pairs")
            self.layers = [rain_layer(*read_pair(p)) for p in pairs]
        if not pairs:
            self.paired_share = 0.0
        elif not clean_files:
            self.paired_share = 1.0
        else:
            self.paired_share = paired_share
        self.log = SkipLog()

    def __len__(self) -> int:
        return self.length

    def summary(self) -> str:
        return (f"{len(self.clean_files)} clean images (synthetic rain '{self.rain}'), "
                f"{len(self.pairs)} real pairs (share {self.paired_share:.2f}), "
                f"{len(self.log.skipped)} unreadable skipped")

    def _sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if rng.random() < self.paired_share:
            pair = self.pairs[int(rng.integers(len(self.pairs)))]
            if str(pair.rainy) in self.log.skipped:
                raise OSError("skipped")
            try:
                rainy, clean = read_pair(pair)
            except OSError as e:
                self.log.add(pair.rainy, str(e))
                raise
            rainy, clean = fit_crop([rainy, clean], self.crop, rng, self.flip)
            return rainy, clean, rainy - clean
        path = self.clean_files[int(rng.integers(len(self.clean_files)))]
        if str(path) in self.log.skipped:
            raise OSError("skipped")
        try:
            img = read_rgb(path)
        except OSError as e:
            self.log.add(path, str(e))
            raise
        if not self.own_sources:
            (clean,) = fit_crop([img], self.crop, rng, self.flip)
            s = add_rain(clean, self.rain, rng=rng, mix=self.rain_mix)
            return s.rainy, s.clean, s.rain
        mix = self.rain_mix or {}
        names = list(mix)
        p = np.array([mix[n] for n in names], dtype=float)
        source = names[int(rng.choice(len(names), p=p / p.sum()))]
        textured = source == TEXTURE or rng.random() < self.texture_share
        (clean,) = fit_crop([img], self.crop, rng, self.flip, textured=textured)
        if source == TEXTURE or (textured and rng.random() < 0.5):
            clean = scene_structure(clean, rng)
        if source == TEXTURE:
            return clean, clean, np.zeros_like(clean)
        if source == TRANSPLANT:
            rainy, rain = transplant(clean, self.layers, rng)
            return rainy, clean, rain
        s = add_rain(clean, source, rng=rng)
        return s.rainy, s.clean, s.rain

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        total = len(self.clean_files) + len(self.pairs)
        for attempt in range(1000):
            rng = np.random.default_rng([self.seed, int(index), attempt])
            try:
                rainy, clean, rain = self._sample(rng)
            except OSError:
                if len(self.log.skipped) >= total:
                    raise DataError(
                        f"the training dataset is empty: all {total} files are unreadable"
                    ) from None
                continue
            return to_tensor(rainy), to_tensor(clean), to_tensor(rain)
        raise DataError("too many unreadable files in the training dataset")


def batch_for(dataset: RainDataset, iteration: int, batch: int) -> tuple[torch.Tensor, ...]:
    """Batch number ``iteration`` (0-based): samples iteration*batch ... +batch-1."""
    items = [dataset[iteration * batch + i] for i in range(batch)]
    return tuple(torch.stack(t) for t in zip(*items))


@dataclass
class ValItem:
    part: str  # e.g. "synthetic-light", "real", "clean"
    name: str
    rainy: np.ndarray
    clean: np.ndarray


def validation_items(clean_files: list[Path], pairs: list[Pair], presets: list[str], seed: int,
                     crop: int = 0, max_images: int = 0,
                     texture_files: list[Path] | None = None) -> list[ValItem]:
    """Fixed validation images: each preset's rain on ``clean_files`` (seeded per image), the
    real ``pairs``, the clean images themselves (rain-free, part "clean") and the detailed
    ``texture_files`` (rain-free, part "texture")."""
    items: list[ValItem] = []

    def centre(im: np.ndarray) -> np.ndarray:
        if not crop:
            return im
        h, w = im.shape[:2]
        c = min(crop, h, w)
        return im[(h - c) // 2 : (h - c) // 2 + c, (w - c) // 2 : (w - c) // 2 + c]

    files = clean_files[:max_images] if max_images else clean_files
    for k, preset in enumerate(presets):
        for i, p in enumerate(files):
            clean = centre(read_rgb(p))
            s = add_rain(np.ascontiguousarray(clean), preset, seed=seed + 1000 * k + i)
            items.append(ValItem(f"synthetic-{preset}", p.stem, s.rainy, s.clean))
    for pair in pairs[:max_images] if max_images else pairs:
        rainy, clean = read_pair(pair)
        items.append(ValItem("real", pair.name, centre(rainy), centre(clean)))
    for part, group in (("clean", files), ("texture", texture_files or [])):
        for p in group[:max_images] if max_images and part == "texture" else group:
            clean = centre(read_rgb(p))
            items.append(ValItem(part, p.stem, clean, clean))
    return items
