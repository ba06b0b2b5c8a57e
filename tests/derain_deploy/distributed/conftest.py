"""Shared inputs of the distributed tests (generated once per session; tests never write into it)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from distributed_helpers import Data, noise_frames, options, tiny_weights, write_folder, write_video

from derain_deploy.job import run_inputs


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """One intra-op thread, as each Ray worker of these tests has: on a loaded 2-core machine two
    OpenMP threads make these tiny frames 100x slower (the outputs are the same)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def data(tmp_path_factory: pytest.TempPathFactory) -> Data:
    root = tmp_path_factory.mktemp("inputs")
    videos = [
        write_video(root / "v0.mp4", noise_frames(6, seed=0), audio=True),
        write_video(root / "v1.mp4", noise_frames(8, seed=1)),
        write_video(root / "v2.mkv", noise_frames(6, seed=2)),
    ]
    return Data(
        root=root,
        weights=tiny_weights(root / "tiny.safetensors"),
        videos=videos,
        folder=write_folder(root / "imgs", 5),
        long_video=write_video(root / "long.mp4", noise_frames(11, seed=3), audio=True),
    )


@pytest.fixture(scope="session")
def reference(data: Data, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``derain-run`` (the library call behind it) on each input alone, torch backend, into one folder."""
    out = tmp_path_factory.mktemp("reference")
    for spec in [*data.videos, data.folder]:
        run_inputs(
            [str(spec)], options(data, out / "folder" if spec == data.folder else out), log=lambda _: None
        )
    return out
