"""TensorRT: command synthesis, the no-TensorRT path, and the attribute names the builder uses
checked against the names in TensorRT 10.16 and 11.4's Python bindings (see data/)."""

from __future__ import annotations

import ast
import importlib.util
import inspect
import json
import textwrap
from pathlib import Path

import pytest

from export import trt_build
from export.profiles import Profile, make_profile
from export.trt_build import EngineOptions, trtexec_command

DATA = Path(__file__).parent / "data"
VERSIONS = ("10.16.1.11", "11.4.0.106")
HAVE_TENSORRT = importlib.util.find_spec("tensorrt") is not None


def _names(version: str) -> list[str]:
    return (DATA / f"tensorrt_{version}_names.txt").read_text().split()


def in_bindings(name: str, names: list[str]) -> bool:
    # Exact, or the tail of a longer string: the linker merges "Builder" into "IExprBuilder".
    return any(n == name or n.endswith(name) for n in names)


def used_tensorrt_names() -> set[str]:
    """Every attribute and keyword name in trt_build._build, the only code touching TensorRT."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(trt_build._build)))
    names = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    names |= {
        kw.arg for node in ast.walk(tree) if isinstance(node, ast.Call) for kw in node.keywords if kw.arg
    }
    # Attributes of our own objects (options, profile) and of Python strings, not TensorRT's.
    ours = {
        "workspace_mib",
        "optimization_level",
        "hardware_compatible",
        "version_compatible",
        "min",
        "opt",
        "max",
    }
    return names - ours - set(dir(str))


def test_name_lists_are_discriminating() -> None:
    ten, eleven = _names(VERSIONS[0]), _names(VERSIONS[1])
    assert in_bindings("FP16", ten) and not in_bindings("FP16", eleven)
    assert in_bindings("EXPLICIT_BATCH", ten) and not in_bindings("EXPLICIT_BATCH", eleven)
    assert in_bindings("STRONGLY_TYPED", ten) and in_bindings("STRONGLY_TYPED", eleven)
    assert not in_bindings("no_such_tensorrt_method", ten)


def test_builder_uses_only_names_in_tensorrt_10_and_11() -> None:
    used = used_tensorrt_names()
    assert {"STRONGLY_TYPED", "set_memory_pool_limit", "build_serialized_network", "set_timing_cache"} <= used
    assert "FP16" not in used  # strongly typed: precision comes from the ONNX file
    for version in VERSIONS:
        names = _names(version)
        missing = sorted(n for n in used - trt_build.FEATURE_TESTED if not in_bindings(n, names))
        assert not missing, f"TensorRT {version} bindings lack {missing}"
    for name in trt_build.FEATURE_TESTED:
        assert any(in_bindings(name, _names(v)) for v in VERSIONS)


def test_trtexec_command_dynamic(tmp_path: Path) -> None:
    profile = make_profile(min="1x3x64x64", opt="1x3x480x640", max="2x3x1080x1920")
    opts = EngineOptions(
        workspace_mib=2048, optimization_level=4, hardware_compatible=True, version_compatible=True
    )
    cmd = trtexec_command(tmp_path / "m.fp16.onnx", tmp_path / "m.fp16.engine", profile, opts)
    assert cmd[0] == "trtexec"
    assert f"--onnx={tmp_path / 'm.fp16.onnx'}" in cmd and f"--saveEngine={tmp_path / 'm.fp16.engine'}" in cmd
    for flag in [
        "--stronglyTyped",
        "--memPoolSize=workspace:2048M",
        "--builderOptimizationLevel=4",
        "--minShapes=rainy:1x3x64x64",
        "--optShapes=rainy:1x3x480x640",
        "--maxShapes=rainy:2x3x1080x1920",
        "--hardwareCompatibilityLevel=ampere+",
        "--versionCompatible",
        f"--timingCacheFile={tmp_path / 'tensorrt.timing.cache'}",
    ]:
        assert flag in cmd
    assert not any(c in ("--fp16", "--int8") for c in cmd)  # precision comes from the file


def test_trtexec_command_static(tmp_path: Path) -> None:
    s = (1, 3, 480, 640)
    cmd = trtexec_command(
        tmp_path / "a.onnx",
        tmp_path / "a.engine",
        Profile(s, s, s),
        EngineOptions(timing_cache=tmp_path / "c.cache"),
    )
    assert not any(c.startswith(("--minShapes", "--optShapes", "--maxShapes")) for c in cmd)
    assert f"--timingCacheFile={tmp_path / 'c.cache'}" in cmd
    assert "--hardwareCompatibilityLevel=ampere+" not in cmd and "--versionCompatible" not in cmd


def test_engine_options_validation() -> None:
    with pytest.raises(ValueError, match="optimization level"):
        EngineOptions(optimization_level=6)
    with pytest.raises(ValueError, match="workspace"):
        EngineOptions(workspace_mib=0)


@pytest.mark.skipif(HAVE_TENSORRT, reason="TensorRT is installed: the no-TensorRT path does not apply")
def test_no_tensorrt_path(tiny_weights: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from export.cli import EXIT_NO_TENSORRT, main

    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        [
            str(tiny_weights),
            "-o",
            str(out),
            "--engine",
            "--no-bench",
            "--min",
            "1x3x32x32",
            "--opt",
            "1x3x64x64",
            "--max",
            "2x3x128x128",
        ],
    )
    assert result.exit_code == EXIT_NO_TENSORRT
    assert "TensorRT is not installed" in result.stderr
    assert "trtexec --onnx=" in result.stderr and "--optShapes=rainy:1x3x64x64" in result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["tiny.onnx"]  # the ONNX file is still written
    assert "wrote" in result.stdout


@pytest.mark.tensorrt
def test_build_engine_and_sidecar(tiny_weights: Path, tmp_path: Path) -> None:
    from export.api import ExportOptions, export_model

    profile = make_profile(min="1x3x32x32", opt="1x3x64x64", max="2x3x128x128")
    report = export_model(
        tiny_weights, tmp_path, ExportOptions(fp16=True, engine=True, profile=profile, bench_shape=None)
    )
    engines = [a for a in report.artifacts if a.kind == "engine"]
    assert {a.precision for a in engines} == {"fp32", "fp16"}
    for engine in engines:
        sidecar = json.loads(engine.path.with_name(engine.path.name + ".json").read_text())
        assert sidecar["precision"] == engine.precision and sidecar["profiles"] == [profile.to_dict()]
        assert engine.path.read_bytes()[:4] != b"{"  # plain engine, no header
    assert (tmp_path / "tensorrt.timing.cache").is_file()
