"""Paired layouts: each one detected from small fixtures; a clear error when none matches."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from derain_deploy.pairs import LayoutError, find_pairs, split_left_right


def _img(path: Path, h: int = 12, w: int = 16, value: int = 100) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((h, w, 3), value, np.uint8))


def test_rain100_flat(tmp_path: Path) -> None:
    for i in (1, 2, 10):
        _img(tmp_path / f"rain-{i:03d}.png")
        _img(tmp_path / f"norain-{i:03d}.png")
    _img(tmp_path / "rain-099.png")  # no partner: ignored
    ps = find_pairs(tmp_path)
    assert ps.layout == "rain100" and len(ps) == 3
    assert [p.name for p in ps] == ["rain-001", "rain-002", "rain-010"]
    assert all(p.rainy.name.startswith("rain-") and p.clean.name.startswith("norain-") for p in ps)


@pytest.mark.parametrize("rainy, clean", [("rainy", "norain"), ("rain", "norain"), ("input", "target")])
def test_two_folders(tmp_path: Path, rainy: str, clean: str) -> None:
    for name in ("norain-3", "norain-4"):  # JORDER-E names its rainy files norain-N too
        _img(tmp_path / rainy / f"{name}.png")
        _img(tmp_path / clean / f"{name}.png")
    ps = find_pairs(tmp_path)
    assert ps.layout == "folders" and len(ps) == 2
    assert all(p.rainy.parent.name == rainy and p.clean.parent.name == clean for p in ps)


def test_ddn(tmp_path: Path) -> None:
    for i in (1, 2):
        _img(tmp_path / "ground_truth" / f"{i}.jpg")
        for j in range(1, 15):
            _img(tmp_path / "rainy_image" / f"{i}_{j}.jpg")
    ps = find_pairs(tmp_path)
    assert ps.layout == "ddn" and len(ps) == 28
    assert {p.clean.name for p in ps if p.name.startswith("2_")} == {"2.jpg"}


def test_left_right(tmp_path: Path) -> None:
    for i in range(3):
        _img(tmp_path / f"{i}.jpg", h=32, w=64)
    ps = find_pairs(tmp_path)
    assert ps.layout == "left-right" and len(ps) == 3 and ps.pairs[0].split == "left-right"
    img = np.arange(2 * 5 * 3).reshape(2, 5, 3)
    left, right = split_left_right(img)
    assert left.shape == right.shape == (2, 2, 3) and right[0, 0, 0] == img[0, 3, 0]


def test_square_images_are_not_left_right(tmp_path: Path) -> None:
    _img(tmp_path / "a.png", h=32, w=32)
    with pytest.raises(LayoutError, match=r"found 0 folder\(s\); 1 image\(s\) \[a.png\]"):
        find_pairs(tmp_path)
    assert find_pairs(tmp_path, layout="left-right").layout == "left-right"


def test_one_level_down(tmp_path: Path) -> None:
    _img(tmp_path / "test" / "rain-1.png")
    _img(tmp_path / "test" / "norain-1.png")
    ps = find_pairs(tmp_path)
    assert ps.layout == "rain100" and ps.root == tmp_path / "test"


def test_nothing_matches_lists_what_was_found(tmp_path: Path) -> None:
    _img(tmp_path / "photos" / "x.png")
    _img(tmp_path / "other" / "y.png")
    with pytest.raises(LayoutError) as e:
        find_pairs(tmp_path)
    msg = str(e.value)
    assert "no known paired layout" in msg and "other, photos" in msg and "\n" not in msg
    with pytest.raises(LayoutError, match="not found"):
        find_pairs(tmp_path / "missing")
    with pytest.raises(LayoutError, match="unknown layout"):
        find_pairs(tmp_path, layout="zip")


def test_unmatched_images_are_listed(tmp_path: Path) -> None:
    for name in ("1", "2"):
        _img(tmp_path / "rainy" / f"{name}.png")
    _img(tmp_path / "norain" / "1.png")
    _img(tmp_path / "norain" / "3.png")
    ps = find_pairs(tmp_path)
    assert len(ps) == 1
    assert [p.relative_to(tmp_path).as_posix() for p in ps.unmatched] == ["norain/3.png", "rainy/2.png"]


def test_unreadable_folder_says_permission_denied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _img(tmp_path / "rainy" / "1.png")
    _img(tmp_path / "norain" / "1.png")
    real = Path.iterdir

    def denied(self: Path):  # type: ignore[no-untyped-def]  # chmod 000 does not stop root
        if self.name == "rainy":
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "iterdir", denied)
    with pytest.raises(LayoutError, match=r"permission denied: .*rainy$"):
        find_pairs(tmp_path)
