"""benchmarks/gpu_bench.py without a GPU: its plan, a CPU run at a tiny size (eager rows timed,
CUDA-only rows skipped with the reason, parity against fp32 eager), the deadline, bad input."""

from __future__ import annotations

import importlib.util
import itertools
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from derain_deploy.model import DerainConfig, DerainNet
from derain_deploy.weights import save_weights

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("bench_gpu_bench", ROOT / "benchmarks" / "gpu_bench.py")
gpu_bench = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
sys.modules[spec.name] = gpu_bench  # type: ignore[union-attr]  # its dataclass looks itself up
spec.loader.exec_module(gpu_bench)  # type: ignore[union-attr]

TINY = ["--device", "cpu", "--sizes", "32x48", "--batches", "1,2", "--row-budget", "0.05", "--warmup", "1",
        "--min-reps", "2", "--max-reps", "3", "--video-size", "32x48"]  # fmt: skip


@pytest.fixture(autouse=True)
def one_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """One torch thread here and in derain-run: two threads on two shared cores wait at every
    parallel region's barrier (a 32x48 frame took 1.5 s instead of 14 ms)."""
    threads = torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_dry_run_lists_every_row_in_order_and_runs_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "plan.json"
    assert gpu_bench.main(["--dry-run", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [line.split(": ", 1)[1] for line in lines if line.startswith("row ")]
    expected = [
        f"{p} {m} channels_last {s} b{b}"
        for m, s, b, p in itertools.product(
            ("eager", "graphs", "compile"),
            ("720x1280", "1080x1920"),
            (1, 4, 8),
            ("fp32", "tf32", "fp16", "bf16"),
        )
    ]
    assert rows == expected  # 72 rows: every precision x mode x size x batch, compile last
    assert lines[0] == "gpu bench: 72 rows on cuda within 540 s, in this order"
    assert lines[-1].startswith("video: derain-run --backend torch --device cuda on 48 frames 720x1280")
    assert not out.exists() and not out.with_suffix(".md").exists()


def test_cpu_run_times_eager_rows_and_skips_cuda_only_rows(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    args = [*TINY, "--modes", "graphs,eager", "--video-frames", "2", "--out", str(out)]
    assert gpu_bench.main(args) == 0
    result = json.loads(out.read_text())
    rows = {(r["precision"], r["mode"], r["batch"]): r for r in result["rows"]}
    assert len(result["rows"]) == 16  # 4 precisions x 2 modes x 1 size x 2 batches, eager first
    assert [r["mode"] for r in result["rows"]] == ["eager"] * 8 + ["graphs"] * 8
    for batch in (1, 2):
        ref, bf16 = rows["fp32", "eager", batch], rows["bf16", "eager", batch]
        for row in (ref, bf16):
            assert row["status"] == "ok" and row["timer"] == "perf_counter" and row["reps"] >= 2
            assert 0 < row["p50_ms"] <= row["p90_ms"]
            assert row["frames_per_s"] == pytest.approx(batch * 1000 / row["p50_ms"], rel=0.01)
        assert ref["parity"] == "reference"
        assert bf16["parity"]["passed"] and bf16["parity"]["psnr_db"] >= 45  # bf16's rule, vs fp32 eager
        assert bf16["parity"]["rule"] == "psnr >= 45"
        assert rows["tf32", "eager", batch]["status"] == "skipped: needs CUDA (TF32 is a CUDA switch)"
        assert rows["fp16", "eager", batch]["status"].startswith("skipped: needs CUDA")
        for p in ("fp32", "tf32", "fp16", "bf16"):
            assert rows[p, "graphs", batch]["status"] == "skipped: needs CUDA (CUDA graphs)"
            assert "p50_ms" not in rows[p, "graphs", batch]
    video = result["video"]
    assert video["status"] == "ok", video
    assert video["derain_run_frames"] == 2 and video["derain_run_fps"] > 0
    assert video["model_only_fps"] > 0 and video["pipeline_fps"] > 0
    assert "--backend torch --device cpu" in video["command"]
    assert result["device"] == "cpu" and result["machine"]["cpu"] and result["versions"]["torch"]
    table = out.with_suffix(".md").read_text()
    assert "| fp32 | eager | channels_last | 32x48 | 1 |" in table and "| reference |" in table
    assert "skipped: needs CUDA (CUDA graphs)" in table and "derain-run" in table


def test_a_spent_deadline_skips_every_row_and_the_video(tmp_path: Path) -> None:
    out = tmp_path / "late.json"
    args = [*TINY, "--modes", "eager,compile", "--precisions", "fp32,bf16", "--video-frames", "2"]
    assert gpu_bench.main([*args, "--deadline", "0", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert len(result["rows"]) == 8
    assert all(r["status"].startswith("skipped: deadline") for r in result["rows"]), result["rows"]
    assert result["video"]["status"].startswith("skipped: deadline")
    assert result["elapsed_s"] < 30


@pytest.mark.slow  # Inductor on the CPU: 18 s cold, 6 s with its cache warm
def test_a_compile_row_on_the_cpu_records_its_compile_time(tmp_path: Path) -> None:
    torch.manual_seed(0)  # a small model: Inductor compiles the bundled one in about a minute here
    small = save_weights(DerainNet(DerainConfig(stages=2, channels=4)), tmp_path / "small.safetensors")
    out = tmp_path / "compiled.json"
    args = ["--device", "cpu", "--weights", str(small), "--sizes", "16x16", "--batches", "1", "--modes",
            "compile", "--precisions", "fp32", "--warmup", "1", "--min-reps", "2", "--row-budget", "0",
            "--video-frames", "0", "--out", str(out)]  # fmt: skip
    assert gpu_bench.main(args) == 0
    (row,) = json.loads(out.read_text())["rows"]
    assert row["status"] == "ok", row
    assert row["compile_s"] > 0 and row["compile_mode"] == "reduce-overhead" and row["reps"] == 2
    assert row["parity"]["passed"], row["parity"]  # vs eager fp32, computed untimed


def test_bad_arguments_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cases = [
        (["--sizes", "720"], "error: bad size '720'; expected HxW"),
        (["--modes", "eager,jit"], "error: unknown mode(s) jit; known: eager, graphs, compile"),
        (["--batches", "0"], "error: bad batches '0'"),
        (["--weights", str(tmp_path / "none.safetensors")], "error: no weights file at"),
        (["--deadline", "-1"], "error: --deadline, --row-budget, --warmup and --video-frames must be >= 0"),
    ]
    if not torch.cuda.is_available():
        cases.append(([], "error: device cuda was asked for but torch sees no CUDA GPU here"))
    for argv, message in cases:
        assert gpu_bench.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith(message) and len(err.strip().splitlines()) == 1, err


def test_an_out_that_names_the_weights_is_refused_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"not read: the guard comes first")
    before = weights.read_bytes()
    argv = [*TINY, "--deadline", "0", "--weights", str(weights), "--out", str(weights)]
    assert gpu_bench.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --out") and "input" in err and len(err.strip().splitlines()) == 1, err
    assert weights.read_bytes() == before
