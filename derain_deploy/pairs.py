"""Paired deraining datasets in the published layouts: detection and listing (no torch here).

Layouts (``find_pairs(root)`` tries them in this order):

- ``folders``: two sub-folders with equal file names: ``rainy/``+``norain/``, ``rain/``+``norain/``,
  ``input/``+``target/`` (and similar names, see ``RAINY_DIRS``/``CLEAN_DIRS``); also any two
  sub-folders whose names match, when their names say which one is rainy;
- ``ddn`` (Rain1400 / Rain12600): ``rainy_image/{i}_{j}.jpg`` with ``ground_truth/{i}.jpg``;
- ``rain100`` (Rain100H/L): ``rain-NNN.png`` + ``norain-NNN.png`` in one folder;
- ``left-right`` (Rain1200 / DID-MDN): one image per pair, left half rainy, right half clean.
  Detected when every image in a flat folder is about twice as wide as high; or ask for it.

``root`` may also be the parent of a dataset's ``train``/``test`` split (detection looks one level
into a single sub-folder).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from .image_size import header_size
from .streams.images import IMAGE_EXTS

RAINY_DIRS = ("rainy", "rain", "input", "inputs", "rainy_image", "rain_image", "data", "lq", "degraded", "o")
CLEAN_DIRS = ("norain", "target", "targets", "gt", "ground_truth", "clean", "label", "labels", "hq", "b")
LAYOUTS = ("auto", "folders", "ddn", "rain100", "left-right")


class LayoutError(ValueError):
    """No known paired layout under a folder; the message lists what was found."""


@dataclass(frozen=True)
class Pair:
    """One training/evaluation pair. With ``split == "left-right"`` both paths are the same file
    (left half rainy, right half clean)."""

    rainy: Path
    clean: Path
    split: str | None
    name: str


@dataclass
class PairSet:
    root: Path
    layout: str
    pairs: list[Pair] = field(default_factory=list)
    unmatched: list[Path] = field(default_factory=list)  # images beside the pairs without a partner

    def missing_partner(self, image: Path) -> str:
        """Why an ``unmatched`` image is not used, in words."""
        rainy = {p.rainy.parent for p in self.pairs}
        clean = {p.clean.parent for p in self.pairs}
        if image.parent in rainy and image.parent not in clean:
            return "no clean partner"
        if image.parent in clean and image.parent not in rainy:
            return "no rainy partner"
        return "no partner"

    def __len__(self) -> int:
        return len(self.pairs)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.pairs)


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder`` (sorted naturally: 2 before 10)."""
    if not folder.is_dir():
        return []
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS]
    return sorted(files, key=natural_key)


def natural_key(p: Path | str) -> list[object]:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", Path(p).name)]


def _match_folders(rainy_dir: Path, clean_dir: Path) -> list[Pair]:
    clean = {p.stem: p for p in list_images(clean_dir)}
    return [Pair(p, clean[p.stem], None, p.stem) for p in list_images(rainy_dir) if p.stem in clean]


def _folders(root: Path) -> list[Pair]:
    subdirs = {d.name.lower(): d for d in root.iterdir() if d.is_dir()}
    for r in RAINY_DIRS:
        for c in CLEAN_DIRS:
            if r in subdirs and c in subdirs and r != c:
                pairs = _match_folders(subdirs[r], subdirs[c])
                if pairs:
                    return pairs
    return []


_DDN = re.compile(r"^(\d+)_(\d+)$")


def _ddn(root: Path) -> list[Pair]:
    rainy_dir, gt_dir = root / "rainy_image", root / "ground_truth"
    if not (rainy_dir.is_dir() and gt_dir.is_dir()):
        return []
    gt = {p.stem: p for p in list_images(gt_dir)}
    pairs = []
    for p in list_images(rainy_dir):
        m = _DDN.match(p.stem)
        if m and m.group(1) in gt:
            pairs.append(Pair(p, gt[m.group(1)], None, p.stem))
    return pairs


_RAIN100 = re.compile(r"^(no)?rain[-_]?(\w+)$", re.IGNORECASE)


def _rain100(root: Path) -> list[Pair]:
    rainy, clean = {}, {}
    for p in list_images(root):
        m = _RAIN100.match(p.stem)
        if m:
            (clean if m.group(1) else rainy)[m.group(2)] = p
    return [Pair(rainy[k], clean[k], None, f"rain-{k}") for k in sorted(rainy, key=natural_key) if k in clean]


def _left_right(root: Path, check: bool) -> list[Pair]:
    files = list_images(root)
    if not files:
        return []
    if check:
        for p in files[:5]:
            size = header_size(p)  # the header only: a huge image is not decoded to look at it
            if size is None or not 1.8 <= size[0] / size[1] <= 2.2:
                return []
    return [Pair(p, p, "left-right", p.stem) for p in files]


def _detect(root: Path, layout: str) -> tuple[str, list[Pair]]:
    finders = {
        "folders": lambda: _folders(root),
        "ddn": lambda: _ddn(root),
        "rain100": lambda: _rain100(root),
        "left-right": lambda: _left_right(root, check=layout == "auto"),
    }
    names = list(finders) if layout == "auto" else [layout]
    for name in names:
        pairs = finders[name]()
        if pairs:
            return name, pairs
    return layout, []


def _describe(root: Path) -> str:
    subdirs = sorted(d.name for d in root.iterdir() if d.is_dir())
    files = list_images(root)
    parts = [f"{len(subdirs)} folder(s)" + (f" [{', '.join(subdirs[:8])}]" if subdirs else "")]
    examples = ", ".join(p.name for p in files[:4])
    more = ", ..." if len(files) > 4 else ""
    parts.append(f"{len(files)} image(s)" + (f" [{examples}{more}]" if files else ""))
    for d in subdirs[:4]:
        n = len(list_images(root / d))
        parts.append(f"{d}/: {n} image(s)")
    return "; ".join(parts)


def find_pairs(root: str | Path, layout: str = "auto") -> PairSet:
    """Detect the paired layout under ``root`` and list its (rainy, clean) pairs.

    Raises :class:`LayoutError` (one line, with what was found) when nothing matches."""
    root = Path(root)
    if layout not in LAYOUTS:
        raise LayoutError(f"unknown layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
    if not root.is_dir():
        raise LayoutError(f"dataset folder not found: {root}")
    try:
        return _find(root, layout)
    except PermissionError as e:  # never "no pairs" for a folder that could not be listed
        raise LayoutError(f"permission denied: {e.filename}") from None


def _find(root: Path, layout: str) -> PairSet:
    name, pairs = _detect(root, layout)
    if not pairs and layout == "auto":
        subdirs = [d for d in root.iterdir() if d.is_dir()]
        if len(subdirs) == 1:  # e.g. Rain100H/ holding only test/
            name, pairs = _detect(subdirs[0], layout)
            root = subdirs[0] if pairs else root
    if not pairs:
        expected = (
            "rainy/+norain/ (or rain/, input/+target/) folders with equal names, "
            "rainy_image/{i}_{j} + ground_truth/{i}, rain-N + norain-N files, or left|right images"
        )
        what = "no known paired layout" if layout == "auto" else f"no pairs in layout {layout!r}"
        raise LayoutError(f"{root}: {what} (expected {expected}); found {_describe(root)}")
    return PairSet(root=root, layout=name, pairs=pairs, unmatched=_unmatched(pairs))


def _unmatched(pairs: list[Pair]) -> list[Path]:
    """The images in the pairs' folders that no pair uses (sorted by path)."""
    used = {p.rainy for p in pairs} | {p.clean for p in pairs}
    folders = {p.rainy.parent for p in pairs} | {p.clean.parent for p in pairs}
    return sorted(f for d in folders for f in list_images(d) if f not in used)


def split_left_right(image):  # type: ignore[no-untyped-def]
    """(rainy, clean) halves of a left-right image array (HxWxC); an odd middle column is dropped."""
    w = image.shape[1] // 2
    return image[:, :w], image[:, image.shape[1] - w :]
