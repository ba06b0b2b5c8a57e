"""--precision fastest: candidates from faked CPU flags (the project's three CPU kinds), the
quality budget that rejects a degrading precision, the cache, and the CLIs' choice line."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from derain_deploy import fastest
from derain_deploy.backend_spec import BackendSpec, open_spec
from derain_deploy.backends.base import BackendInfo
from derain_deploy.model import DerainConfig, DerainNet

XEON_AMX = ["avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8"]
EPYC_AVX2 = ["avx", "avx2", "fma"]
EPYC_ZEN4 = ["avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16"]
# fake per-call times and output noise per precision: bf16 ~60 dB (kept), int8 ~40 dB (rejected)
DELAY = {"fp32": 0.03, "bf16": 0.01, "int8": 0.005}
NOISE = {"fp32": 0.0, "bf16": 1e-3, "int8": 1e-2}


@pytest.fixture(scope="module")
def tiny() -> DerainNet:
    torch.manual_seed(0)
    return DerainNet(DerainConfig(stages=2, channels=4)).eval()


@pytest.fixture(autouse=True)
def small_check(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(fastest, "CHECK_SIZE", (24, 32))
    monkeypatch.setattr(fastest, "CHECK_FRAMES", 1)
    monkeypatch.setattr(fastest, "TIME_BUDGET_S", 0.0)
    monkeypatch.setenv("DERAIN_DEPLOY_CACHE", str(tmp_path / "cache"))


class Faked:
    """Eager FP32 underneath, with the precision's noise and delay: timing and quality on cue."""

    def __init__(self, model: DerainNet, spec: BackendSpec) -> None:
        self.inner = open_spec(BackendSpec("torch"), model, Path("."))
        self.precision = spec.precision
        self.info = BackendInfo(spec.backend, "cpu", spec.precision, {})

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        time.sleep(DELAY[self.precision])
        out = self.inner(batch)
        noise = np.random.default_rng(0).normal(0, NOISE[self.precision], out.shape)
        return (out + noise).astype(np.float32)

    def close(self) -> None:
        self.inner.close()


def test_candidates_follow_the_cpu_flags() -> None:
    assert fastest.native_precisions("cpu", XEON_AMX) == ("fp32", "bf16", "int8")
    assert fastest.native_precisions("cpu", EPYC_ZEN4) == ("fp32", "bf16", "int8")
    assert fastest.native_precisions("cpu", EPYC_AVX2) == ("fp32",)  # bf16 emulated, int8 saturates
    labels = [s.label for s in fastest.candidates("cpu", XEON_AMX, backends=["torch"])]
    assert labels == ["torch:fp32:cl", "torch:bf16:cl"]  # one form per precision: the faster one
    assert [s.label for s in fastest.candidates("cpu", EPYC_AVX2, backends=["torch"])] == labels[:1]
    for spec in fastest.candidates("cpu", EPYC_AVX2):
        assert spec.precision == "fp32", spec.label  # nothing emulated is even tried


@pytest.mark.parametrize(("flags", "picked"), [(XEON_AMX, "bf16"), (EPYC_ZEN4, "bf16"), (EPYC_AVX2, "fp32")])
def test_picks_bf16_where_native_else_fp32(tiny: DerainNet, flags: list[str], picked: str) -> None:
    specs = [BackendSpec("torch", p) for p in fastest.native_precisions("cpu", flags)]
    tried: list[str] = []

    def opener(spec: BackendSpec) -> Faked:
        tried.append(spec.precision)
        return Faked(tiny, spec)

    choice = fastest.choose(tiny, specs, opener)
    assert choice.chosen.spec.precision == picked
    assert tried == list(fastest.native_precisions("cpu", flags))
    line = choice.line()
    assert line.startswith(f"fastest: torch:{picked}"), line
    if "int8" in tried:  # the int8 stand-in sits at 40 dB: below the 45 dB budget
        (int8,) = [v for v in choice.verdicts if v.spec.precision == "int8"]
        assert int8.rejected and int8.rejected.endswith("dB < 45") and int8.ms is None
        assert "rejected: torch:int8" in line
    if picked == "bf16":
        assert "x torch:fp32" in line and choice.chosen.parity_db > 45


def test_budget_is_enforced_and_cached(
    tiny: DerainNet, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    specs = [BackendSpec("torch"), BackendSpec("torch", "bf16")]
    cache = tmp_path / "choice.json"
    first = fastest.choose(tiny, specs, lambda s: Faked(tiny, s), cache=cache)
    assert not first.cached and cache.is_file()
    again = fastest.choose(tiny, specs, lambda s: pytest.fail("a cached choice opens nothing"), cache=cache)
    assert again.cached and again.chosen.spec == first.chosen.spec and again.line().endswith("[cached]")
    monkeypatch.setattr(fastest, "PSNR_Y_LOSS_MAX_DB", -1.0)  # nothing can gain 1 dB: all rejected
    with pytest.raises(fastest.FastestError, match="no candidate stays within the budget"):
        fastest.choose(tiny, specs, lambda s: Faked(tiny, s), cache=cache)  # a new budget: not the cache


def test_cli_run_and_bench_print_the_choice(tmp_path: Path) -> None:
    from derain_deploy import cli_bench, cli_eval, cli_run

    img = tmp_path / "img.png"
    cv2.imwrite(str(img), np.random.default_rng(0).integers(0, 255, (20, 24, 3), dtype=np.uint8))
    out = tmp_path / "out.png"
    result = CliRunner().invoke(cli_run.main, [str(img), "-o", str(out), "--backend", "torch",
                                               "--precision", "fastest", "-q"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "fastest: torch " in result.output and "dB from FP32" in result.output and out.is_file()
    args = ["--random-weights", "-b", "torch", "--precision", "fastest", "-r", "16x16", "--budget", "0",
            "--max-reps", "1", "-q", "--probe-size", "64"]  # fmt: skip
    result = CliRunner().invoke(cli_bench.main, args)
    assert result.exit_code == 0, result.output
    assert "fastest: " in result.output and "wrote no files" in result.output
    for sub in ("rainy", "norain"):
        (tmp_path / "data" / sub).mkdir(parents=True)
        cv2.imwrite(str(tmp_path / "data" / sub / "1.png"), cv2.imread(str(img)))
    result = CliRunner().invoke(cli_eval.main, [str(tmp_path / "data"), "-b", "torch", "--precision",
                                                "fastest", "--no-progress"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "fastest: torch:" in result.output and result.output.count("torch:") >= 2
    onnx = CliRunner().invoke(cli_run.main, [str(img), "--model", str(tmp_path / "m.onnx"), "--precision",
                                             "fastest"])  # fmt: skip
    assert onnx.exit_code == 1 and "error: " in onnx.output


def test_cuda_bf16_only_where_the_gpu_has_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch's is_bf16_supported() counts emulation by default: a pre-Ampere GPU must not get bf16."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation)
    assert "bf16" not in fastest.native_precisions("cuda")
    assert fastest.native_precisions("cuda") == ("fp32", "tf32", "fp16", "int8")


def test_default_bench_is_quick(monkeypatch: pytest.MonkeyPatch) -> None:
    """No -b, no --full: one resolution, eager FP32 + the fastest FP32 + the fastest precision,
    each row printed before the table; --full keeps the matrix's settings."""
    import json

    from derain_deploy import cli_bench
    from derain_deploy.bench import quick

    real = fastest.candidates
    torch_only = lambda kind, flags=None, backends=None: real(kind, flags, ["torch"])  # noqa: E731
    monkeypatch.setattr(fastest, "candidates", torch_only)
    monkeypatch.setattr(quick, "QUICK_RESOLUTION", (16, 24))
    with CliRunner().isolated_filesystem():
        args = ["--random-weights", "--budget", "0", "--probe-size", "64", "--threads", "1",
                "--json", "r.json"]  # fmt: skip
        result = CliRunner().invoke(cli_bench.main, args)
        assert result.exit_code == 0, result.output
        data = json.loads(Path("r.json").read_text())
    labels = [r["label"] for r in data["rows"]]
    assert labels[0] == "torch:fp32" and len(labels) in (2, 3) and len(set(labels)) == len(labels)
    assert data["settings"]["resolutions"] == [[16, 24]] and data["settings"]["min_reps"] == 1
    out = result.output
    assert out.index("torch:fp32 16x24 b1:") < out.index("p50 ms") < out.index("wrote json r.json")
    # the eager row prints before the fastest choice starts (the choice exports files the first time)
    assert out.index("torch:fp32 16x24 b1:") < out.index("fastest: ")
    full = quick.mode(True)
    assert (full.resolutions, full.budget_s, full.min_reps) == (None, 8.0, 3)


def test_quick_bench_leaves_unbuilt_int8_out_and_says_so(tiny: DerainNet, tmp_path: Path) -> None:
    """Calibrating INT8 and OpenVINO's first INT8 compile cost more than the quick bench's
    minute: it checks an INT8 candidate once its file is built, and says what it left out."""
    from derain_deploy.backend_spec import parse_spec, work_cache

    specs = [parse_spec(t, "cpu") for t in ("ort:concat", "ort:int8:split", "ov:int8:split", "torch:bf16")]
    lines: list[str] = []
    kept = fastest._without_unbuilt_int8(specs, tiny, tmp_path, lines.append)
    assert [s.label for s in kept] == ["ort:fp32:concat", "torch:bf16"]
    assert lines == ["fastest: ort:int8:split, ov:int8:split not checked: the INT8 file is not built yet "
                     "(derain-bench --precision fastest builds and checks it once)"]  # fmt: skip
    cache, weights = work_cache(tiny, tmp_path)
    built = cache.onnx_path(weights, "int8", "split")
    built.parent.mkdir(parents=True)
    built.write_bytes(b"an INT8 file")  # only its presence counts here
    lines.clear()
    assert fastest._without_unbuilt_int8(specs, tiny, tmp_path, lines.append) == specs and not lines


@pytest.mark.parametrize(("args", "builds"), [([], False), (["--precision", "fastest"], True)])
def test_only_precision_fastest_builds_int8_in_the_bench(
    monkeypatch: pytest.MonkeyPatch, args: list[str], builds: bool
) -> None:
    from derain_deploy import cli_bench
    from derain_deploy.bench import quick

    seen: list[bool] = []
    real = fastest.choose_spec

    def recording(*a: object, build_int8: bool = True, **k: object) -> fastest.Choice:
        seen.append(build_int8)
        return real(*a, build_int8=build_int8, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(fastest, "choose_spec", recording)
    real_candidates = fastest.candidates
    monkeypatch.setattr(fastest, "candidates", lambda kind, flags=None, backends=None: real_candidates(
        kind, flags, ["torch"]))  # fmt: skip
    monkeypatch.setattr(quick, "QUICK_RESOLUTION", (16, 24))
    base = ["--random-weights", "--budget", "0", "--probe-size", "64", "--threads", "1"]
    result = CliRunner().invoke(cli_bench.main, base + args)
    assert result.exit_code == 0, result.output
    assert seen == [builds]


def test_cli_run_says_fastest_chose_the_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``derain-run --precision fastest`` with the default ``--backend auto``: the backend line
    says the choice made it, not that the user named that backend."""
    from derain_deploy import cli_run

    real = fastest.candidates
    monkeypatch.setattr(
        fastest, "candidates", lambda kind, flags=None, backends=None: real(kind, flags, ["torch"])
    )
    img = tmp_path / "img.png"
    cv2.imwrite(str(img), np.random.default_rng(0).integers(0, 255, (20, 24, 3), dtype=np.uint8))
    result = CliRunner().invoke(
        cli_run.main, [str(img), "-o", str(tmp_path / "out.png"), "--precision", "fastest"]
    )
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if x.startswith("backend: "))
    assert "was asked for" not in line and "--precision fastest chose it" in line, line


def test_a_failed_export_ahead_leaves_the_choice_to_the_checks(
    tiny: DerainNet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One candidate that cannot be built (say INT8 over its loss budget) must not stop the
    choice: the exports ahead stop, said so, and each candidate is built and judged as it is checked."""
    from derain_deploy.backends.base import BackendError

    def failing(*_a: object, **_k: object) -> None:
        raise BackendError("cannot export model.safetensors to int8 ONNX: PSNR loss 0.4 dB > 0.3 dB (fake)")

    monkeypatch.setattr(fastest, "export_specs", failing)
    real = fastest.candidates
    monkeypatch.setattr(fastest, "candidates",
                        lambda kind, flags=None, backends=None: real(kind, flags, ["torch"]))  # fmt: skip
    lines: list[str] = []
    choice = fastest.choose_spec(tiny, "cpu", lines.append)
    assert choice.chosen.spec.backend == "torch"
    said = "fastest: exporting ahead stopped (cannot export model.safetensors"
    assert any(x.startswith(said) for x in lines)


def test_a_later_row_needs_its_devices_reference(tiny: DerainNet) -> None:
    from derain_deploy.bench import BenchError, BenchSpec, run_bench

    spec = BenchSpec(backends=[BackendSpec("torch")], resolutions=[(16, 16)], budget_s=0, min_reps=1,
                     max_reps=1, probe_size=64, probe_repeats=1)  # fmt: skip
    with pytest.raises(BenchError, match=r"torch:fp32@cuda runs on cuda, which has no eager reference"):
        run_bench(spec, tiny, later=lambda: [BackendSpec("torch", device="cuda")])
