"""The one atomic writer: bytes, text or a writer that needs a path (torch.save)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from derain_deploy.atomic import write_atomic, write_atomic_with


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_writer_gets_a_temp_path_and_the_result_lands_whole(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "ckpt.pt"
    seen: list[Path] = []

    def save(tmp: Path) -> None:
        seen.append(tmp)
        assert tmp.parent == target.parent and tmp != target and not target.exists()
        torch.save({"step": 3}, tmp)

    assert write_atomic_with(target, save) == target
    assert torch.load(target)["step"] == 3 and not seen[0].exists()
    mask = os.umask(0)
    os.umask(mask)
    assert _mode(target) == 0o666 & ~mask  # not mkstemp's 0600
    assert _mode(write_atomic(tmp_path / "a.txt", "x")) == _mode(target)


def test_a_failing_writer_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = write_atomic(tmp_path / "ckpt.pt", b"old")

    def broken(tmp: Path) -> None:
        tmp.write_bytes(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_atomic_with(target, broken)
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt"]
