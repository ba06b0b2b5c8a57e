"""The bad-input suite: each case runs a real command in a fresh interpreter and must fail with a
non-zero exit and one ``error:`` line, no traceback, its inputs byte-identical afterwards and
nothing new in its folder (no output, no temporary file, no empty folder).

The cases run a few at a time in parallel (interpreter starts dominate), once per session, for the
cases selected; each test then checks its own result."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from bad_files import foreign_onnx, huge_png
from cli_batch import Job, run_cli_batch
from cli_case import CliResult, assert_one_line_error, digests
from safetensors.torch import save_file

from derain_deploy.model import DerainConfig, DerainNet
from derain_deploy.streams import write_image, write_test_video
from derain_deploy.weights import save_weights

Setup = Callable[[Path, Path], None]  # (case folder, shared assets)


@dataclass(frozen=True)
class Case:
    id: str
    command: str
    args: list[str]  # "{assets}" stands for the shared assets folder
    setup: Setup | None = None
    contains: str | None = None  # in the error line


def _nothing(case: Path, assets: Path) -> None:
    pass


def _write(name: str, data: bytes) -> Setup:
    def setup(case: Path, assets: Path) -> None:
        (case / name).write_bytes(data)

    return setup


def _copy(name: str, target: str | None = None) -> Setup:
    def setup(case: Path, assets: Path) -> None:
        shutil.copy(assets / name, case / (target or name))

    return setup


def _weights_claiming(**config: object) -> Setup:
    def setup(case: Path, assets: Path) -> None:
        tiny = DerainNet(DerainConfig(stages=2, channels=4))
        claimed = json.dumps({**tiny.config.to_dict(), **config})
        save_weights(tiny, case / "w.safetensors", extra={"config": claimed})
        shutil.copy(assets / "img.png", case / "img.png")

    return setup


def _truncated_video(case: Path, assets: Path) -> None:
    data = (assets / "clip.mkv").read_bytes()
    cut = int((assets / "cut_at").read_text())
    (case / "clip.mkv").write_bytes(data[:cut])


def _foreign_safetensors(case: Path, assets: Path) -> None:
    save_file({"w": torch.zeros(3)}, str(case / "w.safetensors"), metadata={"format": "pt"})
    shutil.copy(assets / "img.png", case / "img.png")


def _pickle_weights(case: Path, assets: Path) -> None:
    (case / "w.safetensors").write_bytes(pickle.dumps({"model": [1, 2, 3]}))
    shutil.copy(assets / "img.png", case / "img.png")


def _huge_png(case: Path, assets: Path) -> None:
    huge_png(case / "huge.png")


def _onnx(in_shape: list, out_shape: list, **kwargs: object) -> Setup:
    def setup(case: Path, assets: Path) -> None:
        foreign_onnx(case / "m.onnx", in_shape, out_shape, **kwargs)  # type: ignore[arg-type]
        shutil.copy(assets / "img.png", case / "img.png")

    return setup


def _empty_folder(case: Path, assets: Path) -> None:
    (case / "empty").mkdir()


def _broken_link(case: Path, assets: Path) -> None:
    (case / "a.png").symlink_to("b.png")
    (case / "b.png").symlink_to("a.png")


def _file_as_out(case: Path, assets: Path) -> None:
    (case / "out.txt").write_text("a file, not a run folder")


def _checkpoint_garbage(case: Path, assets: Path) -> None:
    (case / "run").mkdir()
    (case / "run" / "checkpoint.pt").write_bytes(PICKLE)


def _unmatched_dataset(case: Path, assets: Path) -> None:
    for folder, name in (("rainy", "a.png"), ("norain", "b.png")):
        (case / folder).mkdir()
        shutil.copy(assets / "img.png", case / folder / name)


RUN = ["--backend", "torch", "--model", "{assets}/tiny.safetensors", "-q"]
MODEL = ["img.png", "--model", "w.safetensors", "--backend", "torch"]
ONNX = ["img.png", "--model", "m.onnx", "--backend"]
TRAIN = ["--set", "data.clean=[{assets}]", "--no-progress"]
TINY_RUN = ["--set", "train.iterations=1", "--set", "data.crop=16", "--set", "model.stages=2",
            "--set", "model.channels=4", "--out", "run"]
EXPORT = ["{assets}/tiny.safetensors", "-o", "out", "--no-bench"]
IMG = _copy("img.png")
GREY = ["N", 1, "H", "W"]
R, X, T, E, B = "derain-run", "derain-export", "derain-train", "derain-eval", "derain-bench"
PICKLE = pickle.dumps(os.system, protocol=4)  # a pickle that would call os.system if unpickled

CASES = [
    # derain-run: inputs
    Case("run-missing-file", R, ["missing.png", *RUN], None, "no such file"),
    Case("run-corrupt-png", R, ["bad.png", *RUN], _write("bad.png", b"\x89PNG junk"), "cannot decode"),
    Case("run-truncated-video", R, ["clip.mkv", *RUN], _truncated_video, "frames announced"),
    Case("run-not-a-video", R, ["v.mp4", *RUN], _write("v.mp4", b"not a video" * 50), "cannot open"),
    Case("run-huge-png", R, ["huge.png", *RUN], _huge_png, "--max-pixels"),
    Case("run-max-pixels", R, ["img.png", *RUN, "--max-pixels", "10"], IMG,
         "32x24 (768 pixels), over the limit of 10 pixels"),
    Case("run-empty-folder", R, ["empty", *RUN], _empty_folder, "no images"),
    Case("run-symlink-loop", R, ["a.png", *RUN], _broken_link, "symbolic link"),
    Case("run-onto-input", R, ["img.png", "-o", "img.png", *RUN], IMG, "overwrite"),
    # derain-run: models
    Case("run-foreign-safetensors", R, MODEL, _foreign_safetensors, "expected a derain-deploy-weights file"),
    Case("run-pickle-as-weights", R, MODEL, _pickle_weights, "not a safetensors file"),
    Case("run-weights-channels", R, MODEL, _weights_claiming(channels=10**7), "channels 10000000 is out of"),
    Case("run-weights-stages", R, MODEL, _weights_claiming(stages=300000), "stages 300000 is out of range"),
    Case("run-onnx-grey", R, [*ONNX, "onnxruntime"], _onnx(GREY, GREY), "1 channels"),
    Case("run-onnx-other-output", R, [*ONNX, "openvino"],
         _onnx(["N", 3, "H", "W"], ["N", 1, "H", "W"], op="ReduceMean"), "Nx1xHxW"),
    Case("run-onnx-static", R, [*ONNX, "onnxruntime"], _onnx([1, 3, 32, 32], [1, 3, 32, 32]),
         "takes only 1x3x32x32"),
    # derain-run: flags
    Case("run-unknown-backend", R, ["img.png", "--backend", "tpu"], IMG, "--backend"),
    Case("run-batch-zero", R, ["img.png", *RUN, "--batch", "0"], IMG, "--batch"),
    Case("run-unknown-flag", R, ["img.png", "--frobnicate"], IMG, "--frobnicate"),
    Case("run-tile-too-small", R, ["img.png", *RUN, "--tile", "30"], IMG, "too small"),
    # derain-export
    Case("export-huge-shape", X, [*EXPORT, "--shape", "1x3x100000x100000"], None, "16384"),
    Case("export-impossible-shape", X, [*EXPORT, "--shape", "1x3x64"], None, "3 dimensions"),
    Case("export-opset", X, [*EXPORT, "--opset", "5"], None, "opset 5 is not supported"),
    Case("export-name", X, [*EXPORT, "--name", "a/b"], None, "plain file name"),
    Case("export-missing-weights", X, ["nope.safetensors", "-o", "out"], None, "not found"),
    # derain-train
    Case("train-negative-lr", T, [*TRAIN, "--set", "optim.lr=-1e-3"], None, "optim.lr must be > 0"),
    Case("train-nan-lr", T, [*TRAIN, "--set", "optim.lr=.nan"], None, "finite"),
    Case("train-gamma", T, [*TRAIN, "--set", "optim.gamma=-5"], None, "optim.gamma"),
    Case("train-threads", T, [*TRAIN, "--threads", "-4"], None, "train.threads"),
    Case("train-preset", T, [*TRAIN, "--set", "data.rain=drizzle"], None, "unknown rain preset"),
    Case("train-out-file", T, [*TRAIN, "--out", "out.txt"], _file_as_out, "is a file"),
    Case("train-init-pickle", T, [*TRAIN, *TINY_RUN, "--set", "train.init=w.pt"], _write("w.pt", PICKLE),
         "not a trainer checkpoint"),
    Case("train-resume-garbage", T, [*TRAIN, *TINY_RUN, "--resume"], _checkpoint_garbage, "not a trainer"),
    # derain-eval and derain-bench
    Case("eval-no-pairs", E, [".", "--no-progress"], _unmatched_dataset, "no known paired layout"),
    Case("eval-missing", E, ["nothing", "--no-progress"], None, "not found"),
    Case("bench-missing-weights", B, ["--weights", "nope.safetensors", "-q"], None, "not found"),
]
IDS = [c.id for c in CASES]
assert len(set(IDS)) == len(IDS)


def tree(root: Path) -> set[str]:
    """Every file, folder and link under ``root`` (relative names), temporary files included."""
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bad-input-assets")
    torch.manual_seed(0)
    save_weights(DerainNet(DerainConfig(stages=2, channels=4)), root / "tiny.safetensors")
    rng = np.random.default_rng(0)
    write_image(root / "img.png", rng.random((24, 32, 3), dtype=np.float32))
    frames = [np.full((32, 48, 3), 16 + 18 * i, np.uint8) for i in range(12)]
    clip = write_test_video(root / "clip.mkv", frames, fps=25)
    import av

    with av.open(str(clip)) as c:
        starts = [p.pos for p in c.demux(video=0) if p.size]
    (root / "cut_at").write_text(str(starts[5]))  # 5 of the 12 announced frames demux
    return root


@dataclass
class Outcome:
    result: CliResult
    before: dict[str, str]  # digests
    tree_before: set[str]
    after: dict[str, str]
    tree_after: set[str]


def _snapshot(folder: Path) -> tuple[dict[str, str], set[str]]:
    return (digests(folder) if any(folder.iterdir()) else {}), tree(folder)


@pytest.fixture(scope="module")
def outcomes(request: pytest.FixtureRequest, assets: Path, tmp_path_factory: pytest.TempPathFactory
             ) -> dict[str, Outcome]:
    """Run every selected case (one interpreter, a forked child per case, two at a time)."""
    selected = {item.callspec.params["case"].id for item in request.session.items
                if item.module is request.module and hasattr(item, "callspec")}
    root = tmp_path_factory.mktemp("bad-input-cases")
    cases = [c for c in CASES if c.id in selected]
    jobs, snapshots = [], []
    for case in cases:
        folder = root / case.id
        folder.mkdir()
        if case.setup is not None:
            case.setup(folder, assets)
        snapshots.append(_snapshot(folder))
        args = [a.replace("{assets}", str(assets)) for a in case.args]
        jobs.append(Job(case.command, args, folder, {"DERAIN_DEPLOY_CACHE": str(root / "cache")}))
    before_assets = digests(assets)
    results = run_cli_batch(jobs, workers=2)
    assert digests(assets) == before_assets, "a command changed a shared input"
    return {
        case.id: Outcome(result, *before, *_snapshot(root / case.id))
        for case, result, before in zip(cases, results, snapshots)
    }


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_bad_input(case: Case, outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes[case.id]
    assert_one_line_error(outcome.result, case.contains)
    assert outcome.after == outcome.before, "an input changed"
    left = outcome.tree_after - outcome.tree_before
    assert outcome.tree_after == outcome.tree_before, f"left behind: {left}"
