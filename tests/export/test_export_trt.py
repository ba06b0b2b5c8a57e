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

from derain_deploy.build import trt_build
from derain_deploy.build.profiles import Profile, make_profile
from derain_deploy.build.trt_build import EngineOptions, trtexec_command

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
        "tf32",
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
    cmd = trtexec_command(
        tmp_path / "m.fp16.onnx", tmp_path / "m.fp16.engine", profile, opts, static_input=False
    )
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
        static_input=True,
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
    from derain_deploy.build.api import ExportOptions, export_model

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
    assert len(list(tmp_path.glob("tensorrt.*.sm*.trt*.timing.cache"))) == 1  # keyed by GPU and version


@pytest.fixture
def fake_trt(monkeypatch: pytest.MonkeyPatch):
    """A recording ``tensorrt`` and a pretend H200, so that build_engine runs on the CPU."""
    import sys

    import torch
    from fake_tensorrt import FakeTensorRT

    fake = FakeTensorRT()
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    monkeypatch.setattr(trt_build, "tensorrt_unavailable", lambda: None)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda _=0: (9, 0))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda _=0: "NVIDIA H200")
    return fake


def _onnx_file(tmp_path: Path, proto, name: str = "m.onnx") -> Path:  # type: ignore[no-untyped-def]
    path = tmp_path / name
    path.write_bytes(proto.SerializeToString())
    return path


def test_fp32_build_clears_tf32_and_trtexec_says_no_tf32(fake_trt, tiny_onnx, tmp_path: Path) -> None:
    onnx_path = _onnx_file(tmp_path, tiny_onnx)
    profile = make_profile(min="1x3x32x32", opt="1x3x64x64", max="2x3x128x128")
    side = trt_build.build_engine(
        onnx_path, tmp_path / "m.engine", profile, EngineOptions(), precision="fp32", onnx_sha256="x"
    )
    assert ("BuilderFlag.TF32",) in fake_trt.called("clear_flag")
    assert side["precision"] == "fp32" and side["tf32"] is False
    cmd = trtexec_command(onnx_path, tmp_path / "m.engine", profile, EngineOptions(), static_input=False)
    assert "--noTF32" in cmd

    fake_trt.calls.clear()
    side = trt_build.build_engine(
        onnx_path, tmp_path / "t.engine", profile, EngineOptions(tf32=True), precision="fp32", onnx_sha256="x"
    )
    assert not fake_trt.called("clear_flag") and side["precision"] == "tf32"
    cmd = trtexec_command(
        onnx_path, tmp_path / "t.engine", profile, EngineOptions(tf32=True), static_input=False
    )
    assert "--noTF32" not in cmd


def test_dynamic_export_with_equal_shapes_keeps_its_profile(fake_trt, tiny_onnx, tmp_path: Path) -> None:
    # --min = --opt = --max on a dynamic export: TensorRT still needs a profile, trtexec the shapes.
    onnx_path = _onnx_file(tmp_path, tiny_onnx)
    s = (1, 3, 256, 256)
    trt_build.build_engine(
        onnx_path, tmp_path / "m.engine", Profile(s, s, s), EngineOptions(), precision="fp32", onnx_sha256="x"
    )
    assert fake_trt.called("set_shape") == [("rainy", s, s, s)]
    assert trt_build.onnx_input_is_static(onnx_path.read_bytes()) is False
    cmd = trtexec_command(
        onnx_path, tmp_path / "m.engine", Profile(s, s, s), EngineOptions(), static_input=False
    )
    assert {
        "--minShapes=rainy:1x3x256x256",
        "--optShapes=rainy:1x3x256x256",
        "--maxShapes=rainy:1x3x256x256",
    } <= set(cmd)


def test_static_export_gets_no_profile(fake_trt, tiny_net, tmp_path: Path) -> None:
    from derain_deploy.build.onnx_export import export_fp32

    s = (1, 3, 32, 48)
    onnx_path = _onnx_file(tmp_path, export_fp32(tiny_net, static_shape=s))
    assert trt_build.onnx_input_is_static(onnx_path.read_bytes()) is True
    trt_build.build_engine(
        onnx_path, tmp_path / "m.engine", Profile(s, s, s), EngineOptions(), precision="fp32", onnx_sha256="x"
    )
    assert fake_trt.called("set_shape") == []


def test_timing_cache_is_keyed_by_gpu_and_tensorrt(fake_trt, tiny_onnx, tmp_path: Path) -> None:
    onnx_path = _onnx_file(tmp_path, tiny_onnx)
    profile = make_profile()
    trt_build.build_engine(
        onnx_path, tmp_path / "m.engine", profile, EngineOptions(), precision="fp32", onnx_sha256="x"
    )
    assert [p.name for p in tmp_path.glob("*.timing.cache")] == [
        "tensorrt.NVIDIA-H200.sm90.trt10.16.1.11.timing.cache"
    ]


@pytest.mark.skipif(HAVE_TENSORRT, reason="TensorRT is installed: the no-TensorRT path does not apply")
def test_printed_commands_build_correct_engines(tiny_weights: Path, tmp_path: Path) -> None:
    """--int8 --engine without TensorRT: INT8 from the TensorRT file, TF32 off, shapes kept for
    a dynamic export whose profile is one shape."""
    from derain_deploy.build.api import EngineUnavailableError, ExportOptions, export_model

    s = (1, 3, 64, 64)
    options = ExportOptions(
        int8=True, engine=True, profile=Profile(s, s, s), bench_shape=None, calibration_frames=4
    )
    with pytest.raises(EngineUnavailableError) as caught:
        export_model(tiny_weights, tmp_path, options)
    commands = {Path(c[2].removeprefix("--saveEngine=")).name: c for c in caught.value.commands}
    assert set(commands) == {"tiny.engine", "tiny.int8.engine"}
    assert f"--onnx={tmp_path / 'tiny.int8.tensorrt.onnx'}" in commands["tiny.int8.engine"]
    for cmd in commands.values():
        assert "--noTF32" in cmd and "--optShapes=rainy:1x3x64x64" in cmd
