"""Recursive globs do not follow links to folders (``imgs/up -> ..`` is no cycle)."""

from __future__ import annotations

import glob
from pathlib import Path

import pytest

from derain_deploy.streams.files import glob_paths
from derain_deploy.streams.images import list_images


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("imgs/a.png", "imgs/sub/b.png", "imgs/sub/deep/c.png", "imgs/.hidden/d.png", "imgs/.e.png"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "imgs" / "up").symlink_to("..")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    "pattern", ["imgs/**/*.png", "**/*.png", "imgs/*/*.png", "imgs/**/sub", "imgs/s*/**/*.png"]
)
def test_like_glob_without_entering_links(tree: Path, pattern: str) -> None:
    expected = sorted(p for p in glob.glob(pattern, recursive=True) if "up" not in Path(p).parts)
    assert glob_paths(pattern) == expected
    assert glob_paths(str(tree / pattern)) == [str(tree / p) for p in expected]


def test_list_images_of_a_glob_with_a_link_cycle(tree: Path) -> None:
    root, files = list_images("imgs/**/*.png")
    assert [f.relative_to(root).as_posix() for f in files] == ["a.png", "sub/b.png", "sub/deep/c.png"]
