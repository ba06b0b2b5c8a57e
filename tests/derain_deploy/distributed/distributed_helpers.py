"""Small generated inputs for the distributed tests: tiny weights, short videos, image folders."""

from __future__ import annotations

import dataclasses
import os
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import torch

from derain_deploy.job import JobOptions
from derain_deploy.model import DerainConfig, DerainNet
from derain_deploy.streams import write_image
from derain_deploy.streams.synthetic import _write_tone
from derain_deploy.weights import save_weights

STEP = 20  # frame i is a flat grey of 16 + STEP * i: survives H.264 and tells the order


def tiny_weights(path: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    save_weights(DerainNet(DerainConfig(stages=2, channels=4)).eval(), path)
    return path


def grey_frames(n: int, h: int = 32, w: int = 48) -> list[np.ndarray]:
    return [np.full((h, w, 3), 16 + STEP * i, np.uint8) for i in range(n)]


def noise_frames(n: int, seed: int, h: int = 32, w: int = 48) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(rng.random((h, w, 3)) * 255).astype(np.uint8) for _ in range(n)]


def frame_number(image: np.ndarray) -> int:
    return round((float(np.mean(image)) - 16) / STEP)


def write_video(
    path: Path, frames: list[np.ndarray], *, fps: int = 4, gop: int = 4, audio: bool = False
) -> Path:
    """H.264, a keyframe every ``gop`` frames (B-frames on), optionally an AAC tone as long as the video."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "18", "g": str(gop), "keyint_min": str(gop), "sc_threshold": "0", "bf": "2"}
        a_stream = container.add_stream("aac", rate=48000) if audio else None
        if a_stream is not None:
            a_stream.layout = "stereo"
        for i, image in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(image, format="rgb24")
            vf.pts, vf.time_base = i, Fraction(1, fps)
            container.mux(stream.encode(vf))
        container.mux(stream.encode(None))
        if a_stream is not None:
            _write_tone(container, a_stream, seconds=Fraction(len(frames), fps), rate=48000, hz=440.0)
    return path


def write_folder(folder: Path, n: int, seed: int = 1) -> Path:
    rng = np.random.default_rng(seed)
    for i in range(n):
        sub = folder / ("sub" if i % 2 else "")
        sub.mkdir(parents=True, exist_ok=True)
        write_image(sub / f"im{i}.png", rng.random((24, 32, 3)).astype(np.float32))
    return folder


def decoded(path: Path) -> tuple[list[np.ndarray], list[int], float | None]:
    """Frames (rgb24), their pts in seconds * 1000, and the audio duration in seconds."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        frames, times = [], []
        for f in c.decode(video=0):
            frames.append(f.to_ndarray(format="rgb24"))
            times.append(round(float(f.pts * v.time_base) * 1000))
    audio = None
    with av.open(str(path)) as c:
        if c.streams.audio:
            a = c.streams.audio[0]
            audio = sum(f.samples for f in c.decode(audio=0)) / a.rate
    return frames, times, audio


def leftovers(folder: Path) -> list[str]:
    """Temporary or half-written files left anywhere under ``folder``."""
    return sorted(
        str(Path(d) / n)
        for d, dirs, names in os.walk(folder)
        for n in names + dirs
        if ".part-" in n or n.endswith(".segments")
    )


class Output:
    """An output file, equal to another when their bytes match or, failing that, when they decode
    to the same frames (count, timestamps, audio) within ``TOLERANCE`` levels at most and
    ``MEAN_TOLERANCE`` on average. CPU convolution kernels (oneDNN) may round a rare pixel
    differently from one call to the next (their vector paths depend on buffer alignment), and
    x264 spreads one such pixel over the noise frames of these tests (seen: max 6, mean 0.8
    levels). A wrong, dropped, duplicated or reordered frame differs by tens of levels on average.
    Matroska files always differ in bytes (FFmpeg writes a random segment UID and the date)."""

    TOLERANCE = 16  # 8-bit levels
    MEAN_TOLERANCE = 2.0

    def __init__(self, path: Path) -> None:
        self.path, self.data = path, path.read_bytes()

    def _decoded(self) -> tuple[list[np.ndarray], list[int], float | None]:
        if self.path.suffix == ".png":
            return [cv2.imread(str(self.path), cv2.IMREAD_UNCHANGED)], [0], None
        return decoded(self.path)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Output):
            return NotImplemented
        if self.data == other.data:
            return True
        (fa, ta, aa), (fb, tb, ab) = self._decoded(), other._decoded()
        return (
            ta == tb
            and aa == ab
            and len(fa) == len(fb)
            and all(a.shape == b.shape for a, b in zip(fa, fb))
            and all(np.abs(a.astype(int) - b).max() <= self.TOLERANCE for a, b in zip(fa, fb))
            and all(np.abs(a.astype(int) - b).mean() < self.MEAN_TOLERANCE for a, b in zip(fa, fb))
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Output({self.path.name}, {len(self.data)} bytes)"


@dataclasses.dataclass
class Data:
    root: Path
    weights: Path
    videos: list[Path]  # v0 has audio; v2 is Matroska
    folder: Path
    long_video: Path  # 11 frames of noise, keyframe every 4, audio


def options(data: Data, output: Path, backend: str = "torch", **changes: object) -> JobOptions:
    return JobOptions(
        output=f"{output}/", backend=backend, device="cpu", model=str(data.weights), progress=False, **changes
    )


def output_files(videos: Path, images: Path | None = None) -> dict[str, Output]:
    """Output files by name: the videos in ``videos``, the images under ``images`` by relative path."""
    files = {p.name: Output(p) for p in videos.glob("*.derained.*")}
    images = images or videos
    files.update({p.relative_to(images).as_posix(): Output(p) for p in images.rglob("*.png")})
    return files


def reference_files(reference: Path) -> dict[str, Output]:
    return output_files(reference, reference / "folder")
