"""Datasets: determinism, mixing, small images, unreadable files, empty datasets."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from trainer_fixtures import write_images

from derain_deploy.pairs import find_pairs
from trainer.datasets import DataError, RainDataset, batch_for, gather_images, gather_pairs, validation_items


def test_samples_are_deterministic_and_exact(clean_dir: Path) -> None:
    ds = RainDataset(gather_images([str(clean_dir)]), [], crop=16, seed=3)
    a, b = ds[5], ds[5]
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(ds[6][0], a[0])
    rainy, clean, rain = a
    assert rainy.shape == (3, 16, 16) and torch.equal(rainy - clean, rain)
    other = RainDataset(gather_images([str(clean_dir)]), [], crop=16, seed=4)
    assert not torch.equal(other[5][0], a[0])
    batch = batch_for(ds, 2, 3)
    assert batch[0].shape == (3, 3, 16, 16) and torch.equal(batch[0][0], ds[6][0])


def test_small_images_are_scaled_up(tmp_path: Path) -> None:
    files = write_images(tmp_path / "small", 1, h=10, w=20)
    rainy, clean, _ = RainDataset(files, [], crop=16, rain="none")[0]
    assert rainy.shape == (3, 16, 16) and torch.equal(rainy, clean)


def test_mixing_real_pairs(tmp_path: Path, clean_dir: Path) -> None:
    write_images(tmp_path / "pairs" / "rain", 2, seed=1)
    write_images(tmp_path / "pairs" / "norain", 2, seed=2)
    pairs = gather_pairs([str(tmp_path / "pairs")])
    assert len(pairs) == 2
    only_pairs = RainDataset([], pairs, crop=16)
    assert only_pairs.paired_share == 1.0
    rainy, clean, rain = only_pairs[0]
    assert torch.equal(rainy - clean, rain) and (rain < 0).any()  # real pairs: whatever the files hold
    mixed = RainDataset(gather_images([str(clean_dir)]), pairs, crop=16, paired_share=0.5)
    assert "3 clean images" in mixed.summary() and "2 real pairs" in mixed.summary()


def test_exclude_and_names(tmp_path: Path) -> None:
    write_images(tmp_path / "p" / "rainy", 3)
    write_images(tmp_path / "p" / "norain", 3)
    assert [p.name for p in gather_pairs([str(tmp_path / "p")], exclude={"img1"})] == ["img0", "img2"]
    assert [p.name for p in gather_pairs([str(tmp_path / "p")], names=["img2"])] == ["img2"]
    stems = [p.stem for p in gather_images([str(tmp_path / "p" / "norain")], exclude={"img0"})]
    assert stems == ["img1", "img2"]


def test_unreadable_files_are_skipped_and_counted(clean_dir: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    (clean_dir / "broken.png").write_bytes(b"not an image")
    (clean_dir / "empty.png").write_bytes(b"")
    ds = RainDataset(gather_images([str(clean_dir)]), [], crop=16)
    for i in range(40):
        ds[i]
    assert set(Path(p).name for p in ds.log.skipped) == {"broken.png", "empty.png"}
    assert ds.log.skipped[str(clean_dir / "empty.png")] == "empty file"
    assert "2 unreadable skipped" in ds.summary()
    assert "skipping" in capsys.readouterr().out


def test_empty_datasets_are_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="empty"):
        RainDataset([], [])
    (tmp_path / "e").mkdir()
    with pytest.raises(DataError, match="no images in"):
        gather_images([str(tmp_path / "e")])
    with pytest.raises(DataError, match="not found"):
        gather_images([str(tmp_path / "missing")])
    with pytest.raises(DataError, match="no known paired layout"):
        gather_pairs([str(tmp_path / "e")])
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.png").write_bytes(b"junk")
    ds = RainDataset(gather_images([str(tmp_path / "bad")]), [], crop=16)
    with pytest.raises(DataError, match="all 1 files are unreadable"):
        ds[0]


def test_validation_items(tmp_path: Path, clean_dir: Path) -> None:
    write_images(tmp_path / "v" / "rain", 2, seed=1)
    write_images(tmp_path / "v" / "norain", 2, seed=2)
    pairs = find_pairs(tmp_path / "v").pairs
    items = validation_items(gather_images([str(clean_dir)]), pairs, ["light", "heavy"], seed=1, crop=24)
    parts = [i.part for i in items]
    assert parts.count("synthetic-light") == 3 and parts.count("real") == 2 and parts.count("clean") == 3
    assert all(i.rainy.shape == (24, 24, 3) for i in items)
    again = validation_items(gather_images([str(clean_dir)]), pairs, ["light", "heavy"], seed=1, crop=24)
    assert all((a.rainy == b.rainy).all() for a, b in zip(items, again))
