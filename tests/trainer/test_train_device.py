"""train.device and train.workers: no fallback from a missing GPU, the same batches with workers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from trainer_fixtures import tiny_overrides

from trainer.config import ConfigError, load
from trainer.loop import TrainingError, train

SAME_BATCHES = """
import sys, torch
from trainer.datasets import RainDataset, gather_images
from trainer.loop import batches
ds = RainDataset(gather_images([sys.argv[1]]), [], crop=16, seed=5)
inline, pooled = batches(ds, 3, 2, 0), batches(ds, 3, 2, 1)
same = [all(torch.equal(x, y) for x, y in zip(next(inline), next(pooled))) for _ in range(3)]
print("same" if all(same) else f"differ {same}")
"""


def test_workers_give_the_same_batches(clean_dir: Path) -> None:
    """In a fresh interpreter: DataLoader workers leave torch's SIGCHLD handler installed, and a
    child's exit later crashed the shared pytest process (segfault) once OpenVINO had loaded."""
    done = subprocess.run([sys.executable, "-c", SAME_BATCHES, str(clean_dir)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "same", done.stdout + done.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: the refusal cannot be seen")
def test_missing_gpu_stops_the_run(clean_dir: Path, tmp_path: Path) -> None:
    cfg = load(None, tiny_overrides(clean_dir, tmp_path / "g", **{"train.device": "cuda"}))
    with pytest.raises(TrainingError, match="no CUDA GPU"):
        train(cfg, progress=False)
    assert not (tmp_path / "g" / "checkpoint.pt").exists()


def test_device_and_workers_are_validated(clean_dir: Path, tmp_path: Path) -> None:
    for bad, match in (("train.device=gpu", "train.device"), ("train.workers=-1", "train.workers")):
        with pytest.raises(ConfigError, match=match):
            load(None, tiny_overrides(clean_dir, tmp_path / "v", **dict([bad.split("=")])))
