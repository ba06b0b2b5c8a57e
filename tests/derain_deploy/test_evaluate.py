"""derain-eval on a small generated dataset: figures equal an independent computation; bad input errors."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from skimage.metrics import structural_similarity

from derain_deploy import cli_eval
from derain_deploy.backend_spec import parse_specs
from derain_deploy.evaluate import EvalError, evaluate
from derain_deploy.model import DerainConfig, DerainNet
from derain_deploy.output_guard import OutputGuardError
from derain_deploy.pairs import LayoutError
from derain_deploy.weights import save_weights

H, W = 20, 28


def _write(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def _images(n: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        y, x = np.mgrid[0:H, 0:W] / max(H, W)
        clean = np.stack([0.2 + 0.6 * x, 0.3 + 0.5 * y, 0.5 + 0.2 * np.sin(6 * x)], -1) + rng.normal(
            0, 0.03, (H, W, 3)
        )
        rain = np.zeros((H, W, 1))
        rain[:, rng.integers(0, W, 6)] = 0.4  # vertical streaks
        rainy = np.clip(clean + rain, 0, 1)
        out.append(tuple(np.round(np.clip(a, 0, 1) * 255).astype(np.uint8) for a in (rainy, clean)))
    return out  # type: ignore[return-value]


@pytest.fixture(scope="module")
def tiny() -> DerainNet:
    torch.manual_seed(0)
    return DerainNet(DerainConfig(stages=2, channels=4)).eval()


@pytest.fixture
def dataset(tmp_path: Path) -> tuple[Path, list[tuple[np.ndarray, np.ndarray]]]:
    root = tmp_path / "data"
    images = _images(3)
    for i, (rainy, clean) in enumerate(images, start=1):
        _write(root / "rainy" / f"{i}.png", rainy)
        _write(root / "norain" / f"{i}.png", clean)
    return root, images


# ---- an independent computation: MATLAB rgb2ycbcr's Y, MSE-based PSNR, skimage SSIM on it


def _y(u8: np.ndarray) -> np.ndarray:
    a = u8.astype(np.float64) / 255
    return 16 + 65.481 * a[..., 0] + 128.553 * a[..., 1] + 24.966 * a[..., 2]


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return 10 * math.log10(255**2 / np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))


def _ssim(a: np.ndarray, b: np.ndarray, channel_axis: int | None) -> float:
    return structural_similarity(a.astype(np.float64), b.astype(np.float64), data_range=255,
                                 gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                 channel_axis=channel_axis)  # fmt: skip


def _expected(out: np.ndarray, clean: np.ndarray) -> dict[str, float]:
    return {"psnr_y": _psnr(_y(out), _y(clean)), "ssim_y": _ssim(_y(out), _y(clean), None),
            "psnr_rgb": _psnr(out, clean), "ssim_rgb": _ssim(out, clean, 2)}  # fmt: skip


def _eager_u8(model: DerainNet, rainy: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(rainy.transpose(2, 0, 1)[None].astype(np.float32) / 255)
    with torch.no_grad():
        y = model(x)[0].permute(1, 2, 0).numpy()
    return np.round(np.clip(y, 0, 1) * 255).astype(np.uint8)


def test_figures_equal_an_independent_computation(tiny: DerainNet, dataset: tuple, tmp_path: Path) -> None:
    root, images = dataset
    outdir = tmp_path / "outs"
    report = evaluate(root, parse_specs(["torch", "torch:cl"]), tiny, save_outputs=outdir, progress=False)
    assert report.layout == "folders" and report.images == 3 and not report.skipped
    assert report.labels == ["input", "torch:fp32", "torch:fp32:cl"]
    rows = {(r["image"], r["backend"]): r for r in report.rows}
    for i, (rainy, clean) in enumerate(images, start=1):
        out = _eager_u8(tiny, rainy)
        for label, image in (("input", rainy), ("torch:fp32", out), ("torch:fp32:cl", out)):
            got, want = rows[(str(i), label)], _expected(image, clean)
            for key, value in want.items():
                assert got[key] == pytest.approx(value, abs=1e-9), (i, label, key)
        saved = cv2.cvtColor(cv2.imread(str(outdir / "torch_fp32" / f"{i}.png")), cv2.COLOR_BGR2RGB)
        np.testing.assert_array_equal(saved, out)
    summary = report.summary()
    want_mean = np.mean([_expected(r, c)["psnr_y"] for r, c in images])
    assert summary["input"]["psnr_y"] == pytest.approx(want_mean, abs=1e-9)
    better = np.mean(
        [_expected(_eager_u8(tiny, r), c)["psnr_y"] > _expected(r, c)["psnr_y"] for r, c in images]
    )
    assert summary["torch:fp32"]["better_than_input"] == pytest.approx(better)
    lines = list(csv.DictReader(io.StringIO(report.to_csv())))
    assert len(lines) == 9 and set(lines[0]) == {
        "image",
        "backend",
        "psnr_y",
        "ssim_y",
        "psnr_rgb",
        "ssim_rgb",
    }
    data = json.loads(report.to_json())
    assert data["images"] == 3 and set(data["summary"]) == {"input", "torch:fp32", "torch:fp32:cl"}


def test_left_right_layout_is_split(tiny: DerainNet, tmp_path: Path) -> None:
    ((rainy, clean),) = _images(1, seed=3)
    _write(tmp_path / "lr" / "a.png", np.concatenate([rainy, clean], axis=1))
    report = evaluate(tmp_path / "lr", parse_specs(["torch"]), tiny, layout="left-right", progress=False)
    got = next(r for r in report.rows if r["backend"] == "input")
    assert got["psnr_y"] == pytest.approx(_expected(rainy, clean)["psnr_y"], abs=1e-9)


def test_unreadable_and_mismatched_pairs_are_skipped(tiny: DerainNet, dataset: tuple) -> None:
    root, _ = dataset
    (root / "rainy" / "2.png").write_bytes(b"not a png")
    _write(root / "norain" / "3.png", np.zeros((H + 1, W, 3), np.uint8))
    report = evaluate(root, parse_specs(["torch"]), tiny, progress=False)
    assert report.images == 1
    assert [n for n, _ in report.skipped] == ["2", "3"]
    assert "cannot decode 2.png" in report.skipped[0][1] and "differ" in report.skipped[1][1]


def test_library_errors(tiny: DerainNet, dataset: tuple, tmp_path: Path) -> None:
    root, _ = dataset
    with pytest.raises(OutputGuardError, match="inside the input folder"):
        evaluate(root, parse_specs(["torch"]), tiny, save_outputs=root / "out", progress=False)
    for f in (root / "rainy").iterdir():
        f.write_bytes(b"garbage")
    with pytest.raises(EvalError, match=r"none of the 3 pair\(s\) could be read"):
        evaluate(root, parse_specs(["torch"]), tiny, progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(LayoutError, match="no known paired layout"):
        evaluate(tmp_path / "empty", parse_specs(["torch"]), tiny, progress=False)


@pytest.fixture
def weights(tiny: DerainNet, tmp_path: Path) -> str:
    return str(save_weights(tiny, tmp_path / "tiny.safetensors"))


def test_cli_writes_csv_and_json(dataset: tuple, weights: str, tmp_path: Path) -> None:
    root, _ = dataset
    args = [str(root), "--weights", weights, "-b", "torch", "--csv", str(tmp_path / "e.csv"), "--json",
            str(tmp_path / "e.json"), "--no-progress"]  # fmt: skip
    result = CliRunner().invoke(cli_eval.main, args)
    assert result.exit_code == 0, result.output
    assert "input" in result.output and "torch:fp32" in result.output and "PSNR_Y" in result.output
    assert len((tmp_path / "e.csv").read_text().splitlines()) == 1 + 2 * 3
    assert json.loads((tmp_path / "e.json").read_text())["layout"] == "folders"


def test_cli_errors(dataset: tuple, weights: str, tmp_path: Path) -> None:
    root, _ = dataset
    (tmp_path / "empty").mkdir()
    (tmp_path / "junk" / "rainy").mkdir(parents=True)
    (tmp_path / "junk" / "norain").mkdir()
    for sub in ("rainy", "norain"):
        (tmp_path / "junk" / sub / "1.png").write_bytes(b"\x89PNG broken")
    cases = [
        ([str(root), "-b", "caffe"], "error: unknown backend 'caffe'"),
        ([str(tmp_path / "empty")], "error: "),
        ([str(tmp_path / "missing")], "error: dataset folder not found"),
        ([str(tmp_path / "junk")], "error: "),
    ]
    for args, message in cases:
        result = CliRunner().invoke(cli_eval.main, [*args, "--weights", weights, "--no-progress"])
        assert result.exit_code == 1, (args, result.output)
        assert result.output.startswith(message) and result.output.count("\n") == 1, result.output
    junk = CliRunner().invoke(cli_eval.main, [str(tmp_path / "junk"), "--weights", weights, "--no-progress"])
    assert "could be read" in junk.output
    empty = CliRunner().invoke(
        cli_eval.main, [str(tmp_path / "empty"), "--weights", weights, "--no-progress"]
    )
    assert "no known paired layout" in empty.output


def test_unmatched_and_oversized_images_are_named(tiny: DerainNet, dataset: tuple) -> None:
    root, images = dataset
    _write(root / "rainy" / "orphan.png", images[0][0])  # no clean partner
    big = np.zeros((2 * H, W, 3), np.uint8)
    _write(root / "rainy" / "big.png", big)
    _write(root / "norain" / "big.png", big)
    report = evaluate(root, parse_specs(["torch"]), tiny, progress=False, max_pixels=H * W)
    reasons = dict(report.skipped)
    assert report.images == 3
    assert "no clean partner" in reasons["rainy/orphan.png"]
    assert "big.png is 28x40" in reasons["big"] and "--max-pixels" in reasons["big"]
    assert "skipped rainy/orphan.png: no clean partner" in report.table()


def test_eval_reads_images_with_the_one_reader(tmp_path: Path) -> None:
    """derain-eval's pixels are streams.images.read_image's, rounded to 8 bits (16-bit PNGs too)."""
    import cv2

    from derain_deploy.evaluate import read_rgb
    from derain_deploy.streams.images import read_image

    ramp = np.linspace(0, 65535, 24 * 40 * 3).round().astype(np.uint16).reshape(24, 40, 3)
    path = tmp_path / "deep.png"
    cv2.imwrite(str(path), ramp)
    expected = np.round(read_image(path)[0] * 255).astype(np.uint8)
    assert np.array_equal(read_rgb(path), expected)
