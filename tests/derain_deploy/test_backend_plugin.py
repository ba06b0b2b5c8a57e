"""Adding a backend is adding one file: a toy backend registered from a temporary module runs
through derain-run, derain-bench and derain-eval with no other edit; unregistered, it is an
error everywhere."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from cli_case import run_cli

from derain_deploy.backend_spec import BackendSpec, SpecError, open_spec, parse_spec
from derain_deploy.backends import open_backend, registry
from derain_deploy.backends.base import BackendError
from derain_deploy.model import DerainConfig, DerainNet

# The whole plug-in: one file, outside the package, naming itself in $DERAIN_DEPLOY_BACKENDS.
PLUGIN = '''
from derain_deploy.backends.registry import BackendDescriptor
from derain_deploy.toy_backend import ToyBackend


def open_file(path, device, precision, **options):
    return ToyBackend()


def open_spec(spec, model, workdir):
    return ToyBackend()


DESCRIPTOR = BackendDescriptor(
    name="toy",
    short="toy",
    precisions=("fp32",),
    devices=("cpu",),
    suffixes=(".safetensors",),
    open_file=open_file,
    open_spec=open_spec,
    available=lambda: (True, ""),
    bench_defaults={"cpu": ("toy",)},
)
'''


@pytest.fixture
def plugin_env(tmp_path: Path) -> dict[str, str]:
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "toy_plugin.py").write_text(PLUGIN)
    path = os.pathsep.join(p for p in (str(folder), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path, registry.PLUGINS_ENV: "toy_plugin"}


def _image(path: Path, seed: int = 0, h: int = 24, w: int = 32) -> np.ndarray:
    rng = np.random.default_rng(seed)
    bgr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), bgr)
    return bgr


def test_a_plugin_backend_runs_through_run_bench_and_eval(
    plugin_env: dict[str, str], tiny_weights: Path, tmp_path: Path
) -> None:
    bgr = _image(tmp_path / "in.png")
    out = tmp_path / "out.png"
    run = run_cli("derain-run", [str(tmp_path / "in.png"), "-o", str(out), "--backend", "toy",
                                 "--model", str(tiny_weights)], tmp_path, env=plugin_env)  # fmt: skip
    assert run.code == 0, run.stderr
    assert "backend: toy on cpu (fp32)" in run.stderr
    assert np.array_equal(cv2.imread(str(out)), bgr)  # the toy backend is the identity

    report = tmp_path / "bench.json"
    bench = run_cli("derain-bench", ["-b", "toy", "--random-weights", "-r", "32x32", "--budget", "0",
                                     "--min-reps", "1", "--max-reps", "1", "--probe-size", "64",
                                     "--json", str(report), "-q"], tmp_path, env=plugin_env)  # fmt: skip
    assert bench.code == 0, bench.stderr
    rows = json.loads(report.read_text())["rows"]
    assert [r["label"] for r in rows] == ["torch:fp32", "toy:fp32"]  # the eager reference first
    assert rows[1]["backend"] == "toy" and rows[1]["graph"] is None

    data = tmp_path / "data"
    _image(data / "rainy" / "1.png")
    _image(data / "norain" / "1.png", seed=1)
    result = run_cli("derain-eval", [str(data), "-b", "toy", "--weights", str(tiny_weights),
                                     "--no-progress"], tmp_path, env=plugin_env)  # fmt: skip
    assert result.code == 0, result.stderr
    assert "toy:fp32" in result.stdout


def test_an_unregistered_backend_is_an_error_everywhere(tiny_weights: Path, tmp_path: Path) -> None:
    assert registry.find("toy") is None
    with pytest.raises(SpecError, match="unknown backend 'toy'"):
        parse_spec("toy")
    with pytest.raises(BackendError, match="unknown backend 'toy'"):
        open_backend("toy", tiny_weights)
    with pytest.raises(BackendError, match="unknown backend 'toy'"):
        open_spec(BackendSpec("toy"), DerainNet(DerainConfig(stages=2, channels=4)), tmp_path)
    with pytest.raises(BackendError, match="unknown backend 'toy'"):
        registry.get("toy")
    run = run_cli("derain-run", [str(tmp_path / "x.png"), "--backend", "toy"], tmp_path)
    assert run.code != 0 and "'toy' is not one of" in run.stderr


def test_every_builtin_backend_describes_itself() -> None:
    assert registry.names() == ["torch", "onnxruntime", "openvino", "tensorrt"]
    for d in registry.descriptors():
        ok, reason = d.available()
        assert isinstance(ok, bool) and (ok or reason)
        assert d.precisions and d.devices and d.suffixes
        assert registry.get(d.short) is d and registry.get(d.name.upper()) is d
