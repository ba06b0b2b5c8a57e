"""Shared inputs of the distributed tests (generated once per session; tests never write into it)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import av
import pytest
import torch
from helpers import noise_frames, tiny_weights, write_folder, write_video

from derain_deploy.job import JobOptions, run_inputs


def comparable(path: Path) -> bytes:
    """A file's bytes; for Matroska its packets only: FFmpeg's Matroska muxer writes a random
    segment UID and the date into every file, so two runs of ``derain-run`` differ there too."""
    if path.suffix != ".mkv":
        return path.read_bytes()
    with av.open(str(path)) as c:
        return b"".join(bytes(p) + f"{p.pts},{p.dts};".encode() for p in c.demux() if p.size)


@dataclasses.dataclass
class Data:
    root: Path
    weights: Path
    videos: list[Path]  # v0 has audio; v2 is Matroska
    folder: Path
    long_video: Path  # 11 frames of noise, keyframe every 4, audio


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


def options(data: Data, output: Path, backend: str = "torch", **changes: object) -> JobOptions:
    return JobOptions(
        output=f"{output}/", backend=backend, device="cpu", model=str(data.weights), progress=False, **changes
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


def output_files(videos: Path, images: Path | None = None) -> dict[str, bytes]:
    """Output files by name: the videos in ``videos``, the images under ``images`` by relative path."""
    files = {p.name: comparable(p) for p in videos.glob("*.derained.*")}
    images = images or videos
    files.update({p.relative_to(images).as_posix(): p.read_bytes() for p in images.rglob("*.png")})
    return files


def reference_files(reference: Path) -> dict[str, bytes]:
    return output_files(reference, reference / "folder")
