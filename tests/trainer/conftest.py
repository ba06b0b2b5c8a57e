"""Fixtures for the trainer tests: a few tiny images and a tiny config."""

from __future__ import annotations

from pathlib import Path

import pytest
from trainer_fixtures import tiny_overrides, write_images

from trainer.config import Config, load


@pytest.fixture()
def clean_dir(tmp_path: Path) -> Path:
    write_images(tmp_path / "clean", 3)
    return tmp_path / "clean"


@pytest.fixture()
def tiny_config(clean_dir: Path, tmp_path: Path) -> Config:
    return load(None, tiny_overrides(clean_dir, tmp_path / "run"))
