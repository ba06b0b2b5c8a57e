"""Issue 18's repros through the real CLIs: no written path is an input or escapes its folder,
a named backend is what runs, NaN outputs fail, globs do not follow symlink cycles, and a failed
folder run leaves no empty folder."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from derain_deploy.model import DerainConfig, DerainNet
from derain_deploy.weights import save_weights

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cli_case import assert_one_line_error, digests, run_cli

TINY = DerainConfig(stages=2, channels=4)


def _png(path: Path, seed: int = 0, size: int = 24) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    cv2.imwrite(str(path), rng.integers(0, 255, (size, size, 3), dtype=np.uint8))
    return path


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / "W.safetensors"
    save_weights(DerainNet(TINY), path)
    return path


@pytest.fixture(scope="module")
def nan_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    net = DerainNet(TINY)
    with torch.no_grad():
        next(net.parameters()).fill_(float("nan"))
    path = tmp_path_factory.mktemp("nan") / "nan.safetensors"
    save_weights(net, path)
    return path


def test_eval_csv_over_a_dataset_image_is_refused(tmp_path: Path, weights: Path) -> None:
    ds = tmp_path / "DS"
    _png(ds / "rainy" / "a.png")
    _png(ds / "norain" / "a.png", seed=1)
    before = digests(ds)
    result = run_cli(
        "derain-eval",
        [str(ds), "--weights", str(weights), "--no-progress", "--csv", "DS/rainy/a.png"],
        tmp_path,
    )
    assert_one_line_error(result, "input")
    assert digests(ds) == before


@pytest.mark.parametrize(
    "command,args",
    [
        ("derain-export", ["W.safetensors", "-o", "out", "--no-bench", "--json", "W.safetensors"]),
        ("derain-export", ["W.safetensors", "-o", "out", "--no-bench", "--timing-cache", "W.safetensors"]),
        ("derain-bench", ["--weights", "W.safetensors", "-b", "torch", "--json", "W.safetensors"]),
    ],
)
def test_report_over_the_weights_is_refused(
    tmp_path: Path, weights: Path, command: str, args: list[str]
) -> None:
    local = tmp_path / "W.safetensors"
    local.write_bytes(weights.read_bytes())
    before = digests(local)
    assert_one_line_error(run_cli(command, args, tmp_path), "input")
    assert digests(local) == before
    assert not (tmp_path / "out").exists()


def test_export_name_outside_the_out_dir_is_refused(tmp_path: Path, weights: Path) -> None:
    result = run_cli("derain-export", [str(weights), "-o", "out", "--no-bench", "--name", "../x"], tmp_path)
    assert_one_line_error(result, "outside")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_train_final_weights_over_init_is_refused(tmp_path: Path, weights: Path) -> None:
    clean = tmp_path / "clean"
    for i in range(2):
        _png(clean / f"c{i}.png", seed=i, size=40)
    run = tmp_path / "run"
    run.mkdir()
    init = run / "derain.safetensors"
    init.write_bytes(weights.read_bytes())
    before = digests(init)
    sets = [
        "model.stages=2", "model.channels=4", f"data.clean=[{clean}]", "data.crop=16", "train.iterations=2",
        "train.batch=2", f"train.out={run}", f"train.init={init}", "val.every=0", "train.threads=1",
    ]  # fmt: skip
    result = run_cli(
        "derain-train", [arg for s in sets for arg in ("--set", s)] + ["--no-progress"], tmp_path
    )
    assert_one_line_error(result, "input")
    assert digests(init) == before


def test_named_backend_is_what_runs(tmp_path: Path, weights: Path) -> None:
    image = _png(tmp_path / "img.png")
    result = run_cli(
        "derain-run", ["--backend", "onnxruntime", "--model", str(weights), str(image)], tmp_path
    )
    assert result.code == 0, result.stderr
    backend_lines = [line for line in result.stderr.splitlines() if line.startswith("backend:")]
    assert len(backend_lines) == 1 and backend_lines[0].startswith("backend: onnxruntime"), result.stderr


def test_nan_weights_fail_and_write_nothing(tmp_path: Path, nan_weights: Path) -> None:
    image = _png(tmp_path / "img.png")
    result = run_cli("derain-run", ["--backend", "torch", "--model", str(nan_weights), str(image)], tmp_path)
    line = assert_one_line_error(result, "nan")
    assert "nan.safetensors" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img.png"]


def test_glob_does_not_follow_a_symlink_cycle(tmp_path: Path, weights: Path) -> None:
    imgs = tmp_path / "imgs"
    _png(imgs / "a.png")
    (imgs / "up").symlink_to("..")
    result = run_cli("derain-run", ["--model", str(weights), "-q", "-o", "out", "imgs/**/*.png"], tmp_path)
    assert result.code == 0, result.stderr
    written = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.png"))
    assert written == ["a.png"]


def test_failed_folder_run_leaves_no_output_folder(tmp_path: Path, weights: Path) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"not a png")
    result = run_cli("derain-run", ["--model", str(weights), "-q", "-o", "out", "bad"], tmp_path)
    assert_one_line_error(result, "decode")
    assert not (tmp_path / "out").exists()
