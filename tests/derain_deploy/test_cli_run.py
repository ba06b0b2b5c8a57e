"""``derain-run`` through click's test runner: outputs, and one-line errors for bad input."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from derain_deploy import cli_run
from derain_deploy.cli_run import main
from derain_deploy.streams import write_image, write_test_video
from derain_deploy.weights import file_sha256


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, tiny_weights: Path) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cli")
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    frames = [rng.random((24, 32, 3), dtype=np.float32) for _ in range(5)]
    return {
        "weights": tiny_weights,
        "image": write_image(root / "rainy.png", frames[0]),
        "video": write_test_video(root / "clip.mp4", frames, fps=25),
    }


pytestmark = pytest.mark.usefixtures("use_shared_onnx_cache")  # the tiny model is exported once


def invoke(*args: object) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def assert_one_line_error(code: int, stderr: str, match: str) -> None:
    assert code != 0
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert match in lines[0]
    assert "Traceback" not in stderr


def count_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_image(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out.png"
    code, stdout, stderr = invoke(
        files["image"], "-o", out, "--backend", "torch", "--model", files["weights"]
    )
    assert code == 0, stderr
    assert out.is_file() and stdout.strip() == str(out)
    assert "backend: torch on cpu (fp32)" in stderr and "summary: 1 frames in" in stderr


def test_video_batch_compare_quiet(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    code, _, stderr = invoke(
        files["video"],
        "-o",
        out,
        "--backend",
        "torch",
        "--model",
        files["weights"],
        "--batch",
        "2",
        "--compare",
        "--quiet",
        "--quality",
        "30",
    )
    assert code == 0, stderr
    (line,) = stderr.strip().splitlines()  # --quiet: no progress bar, no backend line, one summary
    assert line.startswith("summary: 5 frames in ") and line.endswith(f"with torch on cpu (fp32) -> {out}")
    assert count_frames(out) == 5
    assert count_frames(tmp_path / "out.compare.mp4") == 5


def test_auto_backend_uses_the_onnx_cache(
    files: dict[str, Path],
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cache = tmp_path_factory.getbasetemp() / "shared-onnx-cache"  # shared with test_backends_ort.py
    monkeypatch.setenv("DERAIN_DEPLOY_CACHE", str(cache))
    out = tmp_path / "o.png"
    code, _, stderr = invoke(files["image"], "-o", out, "--model", files["weights"])
    assert code == 0, stderr
    runtime = "openvino" if importlib.util.find_spec("openvino") else "onnxruntime"  # auto's CPU choice
    assert f"backend: {runtime} on cpu" in stderr and "auto: no TensorRT engine given" in stderr
    sha = file_sha256(files["weights"])[:12]
    graph = "split" if runtime == "openvino" else "concat"  # each runtime's faster graph form
    name = "tiny.split.onnx" if graph == "split" else "tiny.onnx"  # derain_deploy/artifacts.py's layout
    assert len(list((cache / "onnx").glob(f"tiny-{sha}-*/{name}"))) == 1
    assert out.is_file()


def test_stages_preview(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "x.derained.png"
    code, _, stderr = invoke(
        files["image"], "-o", out, "--backend", "torch", "--model", files["weights"], "--stages-preview"
    )
    assert code == 0, stderr
    assert (tmp_path / "x.stages.png").is_file()


def test_interrupt_leaves_no_output(
    files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_run, "run_inputs", interrupted)
    code, _, stderr = invoke(files["video"], "-o", tmp_path / "o.mp4")
    assert code == 130 and "interrupted" in stderr
    assert not (tmp_path / "o.mp4").exists()


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["missing.mp4"], "no such file"),
        (["{bad}", "--backend", "torch"], "cannot open video"),
        (["{image}", "--camera", "0"], "either INPUTS or --camera"),
        ([], "no input given"),
        (["--camera", "7", "--backend", "torch"], "camera"),
        (["{image}", "--backend", "torch", "--device", "cuda"], "cuda"),
        (["{image}", "--backend", "onnxruntime", "--device", "cuda"], "CUDAExecutionProvider"),
        (["{image}", "--backend", "torch", "--precision", "fp16", "--device", "cpu"], "fp16"),
        (["{image}", "--model", "nothere.safetensors"], "model file not found"),
        (["{image}", "--model", "{image}"], "unsupported model file"),
        (["{image}", "--backend", "torch", "--model", "{bad}"], "unsupported model file"),
        (["{video}", "--backend", "torch", "--stages-preview"], "--stages-preview works on images"),
        (["{image}", "{video}", "-o", "{tmp}/one.png"], "need -o to be a folder"),
        (["{image}", "--backend", "torch", "--tile", "30"], "too small"),
        (["{image}", "-o", "{image}", "--backend", "torch"], "refusing to overwrite"),
    ],
)
def test_bad_input_one_line_error(
    files: dict[str, Path], tmp_path: Path, args: list[str], match: str
) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all")
    values = {"image": files["image"], "video": files["video"], "bad": bad, "tmp": tmp_path}
    argv = [a.format(**values) for a in args]
    if "--model" not in argv:
        argv += ["--model", str(files["weights"])]
    code, _, stderr = invoke(*argv)
    assert_one_line_error(code, stderr, match)
    assert files["image"].is_file()
