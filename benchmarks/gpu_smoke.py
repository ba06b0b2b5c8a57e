"""The first run on a GPU machine, as one script: what is installed, the gpu/tensorrt tests, FP32
parity with TF32 off and on, FP16 and INT8 engine builds at 1x3x256x256, the CUDA bench rows at
480x640 and a short video through derain-run with each GPU backend. Every step writes
``<step>.json`` into one folder (``--out``, default ``$OUT``) and ``summary.json`` lists them all.

    bash benchmarks/gpu_smoke.sh [--out DIR] [--install] [--steps a,b] [--dry-run]

Each step runs in its own process with a time limit (a CUDA crash ends that step, not the run),
inside an overall budget (``--budget``, default 540 s: under 10 minutes with start-up). Nothing
is downloaded unless ``--install`` is given (``pip install -e '.[gpu,trt]'``; a GPU machine
without internet keeps what it has). A step whose packages or GPU are missing is skipped and
its JSON says why. Exit status: 0 when no step failed (skips are not failures), else 1.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHAPE = (1, 3, 256, 256)  # engine builds, parity and the video (a 256x256 clip fits the engines)
BENCH_SIZE = "480x640"
VIDEO_FRAMES = 12
PROJECT_MODULES = ("torch", "numpy", "safetensors", "click", "onnx", "cv2", "skimage", "av", "yaml", "tqdm")


def _atomic():  # type: ignore[no-untyped-def]
    """derain_deploy.atomic.write_atomic, loaded from its file (importing the package needs torch)."""
    spec = importlib.util.spec_from_file_location("_derain_atomic", ROOT / "derain_deploy" / "atomic.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module.write_atomic


def write_json(path: Path, data: object) -> None:
    _atomic()(path, json.dumps(data, indent=2, default=str) + "\n")


def missing(*modules: str) -> list[str]:
    return [m for m in modules if importlib.util.find_spec(m) is None]


class SkipError(Exception):
    """A step that cannot run here; the message says why."""


def need(*modules: str, cuda: bool = True) -> None:
    """SkipError unless the project's modules, ``modules`` and (``cuda``) a CUDA GPU are present."""
    absent = missing(*PROJECT_MODULES, *modules)
    if absent:
        raise SkipError(f"not installed: {', '.join(absent)}")
    if cuda:
        import torch

        if not torch.cuda.is_available():
            raise SkipError("no CUDA GPU (torch.cuda.is_available() is False)")


def ort_providers() -> list[str]:
    if missing("onnxruntime"):
        return []
    import onnxruntime

    return list(onnxruntime.get_available_providers())


# ---------------------------------------------------------------- the steps (run in a child process)


def step_versions(out: Path) -> dict[str, object]:
    import importlib.metadata as md
    import platform

    info: dict[str, object] = {"python": platform.python_version(), "platform": platform.platform()}
    for dist in (
        "torch",
        "onnxruntime",
        "onnxruntime-gpu",
        "onnx",
        "tensorrt",
        "tensorrt-cu12",
        "tensorrt-cu13",
        "cuda-python",
        "ray",
        "openvino",
        "pytest",
    ):
        try:
            info[dist] = md.version(dist)
        except md.PackageNotFoundError:
            info[dist] = None
    info["missing_project_modules"] = missing(*PROJECT_MODULES)
    info["onnxruntime_providers"] = ort_providers()
    if not missing("torch"):
        import torch

        info["torch_cuda"] = torch.version.cuda
        info["cudnn"] = torch.backends.cudnn.version() if torch.cuda.is_available() else None
        info["gpus"] = [
            {
                "name": torch.cuda.get_device_name(i),
                "capability": ".".join(map(str, torch.cuda.get_device_capability(i))),
                "memory_gib": round(torch.cuda.get_device_properties(i).total_memory / 2**30, 1),
            }
            for i in range(torch.cuda.device_count())
        ]
    try:
        smi = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
        info["nvidia_smi"] = smi.stdout.strip() or smi.stderr.strip()
    except (OSError, subprocess.TimeoutExpired) as e:
        info["nvidia_smi"] = f"unavailable: {e}"
    return info


def _reference(x):  # type: ignore[no-untyped-def]
    """The bundled model and its eager FP32 CPU output on ``x``."""
    from derain_deploy.backends.torch_backend import TorchBackend
    from derain_deploy.weights import load_default

    net = load_default().float().eval()
    return net, TorchBackend(net, device="cpu", channels_last=False)(x)


def _rainy():  # type: ignore[no-untyped-def]
    from derain_deploy.bench import rainy_batch

    return rainy_batch(SHAPE[2], SHAPE[3], SHAPE[0], seed=1)[0]


def step_parity(out: Path) -> dict[str, object]:
    """FP32 on the GPU (TF32 off) against eager FP32 on the CPU, and TF32 on: both tolerances."""
    need()
    from derain_deploy.backends.ort_backend import OrtBackend
    from derain_deploy.backends.torch_backend import TorchBackend
    from derain_deploy.parity import compare

    x = _rainy()
    net, ref = _reference(x)
    results = []
    for precision in ("fp32", "tf32"):
        y = TorchBackend(net, device="cuda", precision=precision)(x)
        results.append(compare(y, ref, precision, f"torch:{precision}@cuda").to_dict())
        results.append(
            {
                **compare(y, ref, "fp32", f"torch:{precision}@cuda vs the fp32 rule").to_dict(),
                "informational": True,
            }
        )
    notes = []
    if "CUDAExecutionProvider" in ort_providers():
        from derain_deploy.artifacts import cached_onnx
        from derain_deploy.weights import default_weights_path

        onnx_path, _ = cached_onnx(default_weights_path())
        for precision in ("fp32", "tf32"):
            y = OrtBackend(onnx_path, device="cuda", precision=precision)(x)
            results.append(compare(y, ref, precision, f"ort:{precision}@cuda").to_dict())
    else:
        notes.append("onnxruntime has no CUDAExecutionProvider: ort rows skipped")
    failed = [r["label"] for r in results if not r["passed"] and not r.get("informational")]
    return {"results": results, "notes": notes, "failed": failed}


def step_engines(out: Path) -> dict[str, object]:
    """FP32, FP16 and INT8 (TensorRT file) engines from a dynamic export with a 1x3x256x256
    profile, each run once against eager FP32 with its precision's tolerance."""
    need("tensorrt", "onnxruntime")
    from derain_deploy.backends.trt_backend import TrtBackend
    from derain_deploy.build.api import ExportOptions, export_model
    from derain_deploy.build.profiles import Profile
    from derain_deploy.parity import compare
    from derain_deploy.weights import default_weights_path

    folder = out / "engines"
    options = ExportOptions(
        fp16=True,
        int8=True,
        engine=True,
        profile=Profile(SHAPE, SHAPE, SHAPE),
        name="derain",
        bench_shape=None,
        fp16_large_shape=(1, 3, 256, 256),
    )
    start = time.perf_counter()
    report = export_model(default_weights_path(), folder, options)
    x = _rainy()
    _, ref = _reference(x)
    engines = [a for a in report.artifacts if a.kind == "engine"]
    parity = []
    for a in engines:
        backend = TrtBackend(a.path, precision=a.precision)
        parity.append(compare(backend(x), ref, a.precision, f"trt:{a.precision}").to_dict())
        backend.close()
    return {
        "seconds": round(time.perf_counter() - start, 1),
        "artifacts": [{**vars(a), "path": str(a.path)} for a in report.artifacts],
        "sidecars": {
            a.path.name: json.loads(a.path.with_name(a.path.name + ".json").read_text()) for a in engines
        },
        "checks": report.checks,
        "parity": parity,
        "failed": [p["label"] for p in parity if not p["passed"]],
    }


def bench_specs() -> list[str]:
    specs = ["torch@cuda", "torch:tf32@cuda", "torch:fp16@cuda", "torch:bf16@cuda"]
    if "CUDAExecutionProvider" in ort_providers():
        specs += ["ort@cuda", "ort:tf32@cuda", "ort:fp16@cuda"]
    if not missing("tensorrt"):
        specs += ["trt:fp32@cuda", "trt:fp16@cuda", "trt:fp16:graphs@cuda", "trt:int8@cuda"]
    return specs


def bench_command(out: Path, specs: list[str]) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "derain_deploy.cli_bench",
        "--device",
        "cuda",
        "-r",
        BENCH_SIZE,
        "--check-parity",
        "--budget",
        "3",
        "--max-reps",
        "50",
        "--json",
        str(out / "bench-report.json"),
    ]
    for spec in specs:
        cmd += ["-b", spec]
    return cmd


def step_bench(out: Path) -> dict[str, object]:
    need()
    cmd = bench_command(out, bench_specs())
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=_remaining())
    result = {
        "command": shlex.join(cmd),
        "exit_code": done.returncode,
        "table": done.stdout[-6000:],
        "stderr_tail": done.stderr[-4000:],
    }
    if done.returncode != 0:
        result["failed"] = [f"derain-bench exited {done.returncode}"]
    return result


def video_runs(out: Path) -> list[tuple[str, list[str]]]:
    """(label, derain-run arguments) per GPU backend that is installed."""
    clip, folder = out / "video" / "rainy.mp4", out / "video"
    runs = [("torch-cuda", ["--backend", "torch", "--device", "cuda"])]
    providers = ort_providers()
    if "CUDAExecutionProvider" in providers:
        runs.append(("ort-cuda", ["--backend", "onnxruntime", "--device", "cuda"]))
    if "TensorrtExecutionProvider" in providers and not missing("tensorrt"):
        runs.append(("ort-tensorrt", ["--backend", "onnxruntime", "--device", "tensorrt"]))
    engine = out / "engines" / "derain.fp16.engine"
    if not missing("tensorrt"):
        runs.append(("tensorrt-fp16", ["--backend", "tensorrt", "--model", str(engine)]))
    return [(label, [str(clip), "-o", str(folder / f"{label}.mp4"), "-q", *args]) for label, args in runs]


def step_video(out: Path) -> dict[str, object]:
    need()
    from derain_deploy.streams.synthetic import rainy_clip, write_test_video

    (out / "video").mkdir(parents=True, exist_ok=True)
    rainy, _ = rainy_clip(frames=VIDEO_FRAMES, size=(SHAPE[2], SHAPE[3]), preset="heavy")
    write_test_video(out / "video" / "rainy.mp4", rainy)
    runs, failed = {}, []
    for label, args in video_runs(out):
        start = time.perf_counter()
        cmd = [sys.executable, "-m", "derain_deploy.cli_run", *args]
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=_remaining())
        target = Path(args[2])
        runs[label] = {
            "command": shlex.join(cmd),
            "exit_code": done.returncode,
            "seconds": round(time.perf_counter() - start, 1),
            "stderr_tail": done.stderr[-2000:],
            "output_bytes": target.stat().st_size if target.is_file() else None,
        }
        if done.returncode != 0:
            failed.append(label)
    return {"runs": runs, "failed": failed}


def pytest_command(out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-m",
        "gpu or tensorrt",
        "-o",
        "addopts=-ra",
        f"--junitxml={out / 'pytest.xml'}",
        "tests",
    ]


def step_pytest(out: Path) -> dict[str, object]:
    need("pytest", cuda=False)
    cmd = pytest_command(out)
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=_remaining())
    # pytest: 0 passed, 1 failures, 5 nothing collected
    result = {"command": shlex.join(cmd), "exit_code": done.returncode, "tail": done.stdout[-6000:]}
    if done.returncode not in (0, 5):
        result["failed"] = [f"pytest exited {done.returncode}"]
    return result


def install_command() -> list[str]:
    return [sys.executable, "-m", "pip", "install", "--no-input", "-e", ".[gpu,trt]"]


def step_install(out: Path) -> dict[str, object]:
    cmd = install_command()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=min(240, _remaining()))
    if done.returncode != 0:  # no network, or no wheel for this machine: keep what is installed
        raise SkipError(
            f"pip install failed (exit {done.returncode}): {(done.stderr.strip().splitlines() or [''])[-1]}"
        )
    return {"command": shlex.join(cmd), "tail": done.stdout[-2000:]}


@dataclass(frozen=True)
class Step:
    name: str
    run: Callable[[Path], dict[str, object]]
    plan: Callable[[Path], str]  # what --dry-run prints
    limit_s: int


STEPS = (
    Step("install", step_install, lambda o: f"only with --install: {shlex.join(install_command())}", 240),
    Step(
        "versions",
        step_versions,
        lambda o: "torch/CUDA/cuDNN, onnxruntime and its providers, TensorRT, nvidia-smi",
        60,
    ),
    Step("pytest", step_pytest, lambda o: f"the gpu/tensorrt tests: {shlex.join(pytest_command(o))}", 240),
    Step(
        "parity",
        step_parity,
        lambda o: (
            "FP32 parity with TF32 off (max abs <= 1e-4) and tf32 (PSNR >= 60 dB) "
            f"at {'x'.join(map(str, SHAPE))}: torch@cuda, ort@cuda (if its CUDA provider is present)"
        ),
        120,
    ),
    Step(
        "engines",
        step_engines,
        lambda o: (
            "FP32, FP16 and INT8 (TensorRT INT8 file) engine builds, profile "
            f"{'x'.join(map(str, SHAPE))}, each checked against eager FP32 (skipped without TensorRT)"
        ),
        240,
    ),
    Step(
        "bench",
        step_bench,
        lambda o: (
            f"CUDA bench rows at {BENCH_SIZE}: {shlex.join(bench_command(o, ['<the GPU specs installed>']))}"
        ),
        240,
    ),
    Step(
        "video",
        step_video,
        lambda o: (
            f"a {VIDEO_FRAMES}-frame {SHAPE[2]}x{SHAPE[3]} clip through derain-run with "
            "each GPU backend: torch cuda, onnxruntime cuda, onnxruntime tensorrt, tensorrt engine "
            "(each only where installed)"
        ),
        180,
    ),
)
_DEADLINE = [time.monotonic() + 540.0]


def _remaining() -> float:
    return max(_DEADLINE[0] - time.monotonic(), 1.0)


def run_step(name: str, out: Path) -> int:
    """The child process: one step, its JSON written whatever happens."""
    step = next(s for s in STEPS if s.name == name)
    start = time.perf_counter()
    record: dict[str, object] = {"step": name}
    try:
        record.update(step.run(out))
        record["status"] = "failed" if record.get("failed") else "ok"
    except SkipError as e:
        record.update(status="skipped", reason=str(e))
    except Exception as e:  # the step's own error, one line, plus where
        import traceback

        record.update(
            status="failed",
            reason=f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0]}",
            traceback=traceback.format_exc()[-4000:],
        )
    record["seconds"] = round(time.perf_counter() - start, 1)
    write_json(out / f"{name}.json", record)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=Path(os.environ["OUT"]) if os.environ.get("OUT") else None
    )
    parser.add_argument("--dry-run", action="store_true", help="Print what would run and exit 0.")
    parser.add_argument(
        "--install", action="store_true", help="pip install -e '.[gpu,trt]' first (needs PyPI)."
    )
    parser.add_argument("--steps", help=f"Comma-separated subset of: {', '.join(s.name for s in STEPS)}.")
    parser.add_argument("--budget", type=float, default=540.0, help="Seconds for all steps together.")
    parser.add_argument("--step", help=argparse.SUPPRESS)  # internal: run one step in this process
    args = parser.parse_args(argv)
    if args.out is None:
        print("error: give --out DIR (or set $OUT)", file=sys.stderr)
        return 2
    _DEADLINE[0] = time.monotonic() + args.budget
    if args.step:
        return run_step(args.step, args.out)
    names = [s.name for s in STEPS if s.name != "install" or args.install]
    if args.steps:
        wanted = [n.strip() for n in args.steps.split(",") if n.strip()]
        unknown = sorted(set(wanted) - {s.name for s in STEPS})
        if unknown:
            print(
                f"error: unknown step(s) {', '.join(unknown)}; known: {', '.join(s.name for s in STEPS)}",
                file=sys.stderr,
            )
            return 2
        names = [n for n in names if n in wanted]
    if args.dry_run:
        print(
            f"gpu smoke: would write <step>.json and summary.json to {args.out} (budget {args.budget:.0f} s)"
        )
        for step in STEPS:
            state = "" if step.name in names else " [not selected]"
            print(f"step {step.name} (limit {step.limit_s} s){state}: {step.plan(args.out)}")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    summary = []
    for name in names:
        step = next(s for s in STEPS if s.name == name)
        left = _DEADLINE[0] - time.monotonic()
        record: dict[str, object]
        if left < 10:
            record = {"step": name, "status": "skipped", "reason": "the overall budget is spent"}
            write_json(args.out / f"{name}.json", record)
        else:
            limit = min(step.limit_s, left)
            env = {
                **os.environ,
                "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            }
            cmd = [
                sys.executable,
                str(Path(__file__).resolve()),
                "--step",
                name,
                "--out",
                str(args.out),
                "--budget",
                str(limit),
            ]
            print(f"gpu smoke: {name} (limit {limit:.0f} s)", flush=True)
            try:
                done = subprocess.run(
                    cmd, env=env, cwd=ROOT, timeout=limit + 15, capture_output=True, text=True
                )
                crashed = done.returncode != 0
                detail = f"exit {done.returncode}: {done.stderr.strip()[-1500:]}"
            except subprocess.TimeoutExpired:
                crashed, detail = True, f"ran past its {limit:.0f} s limit"
            path = args.out / f"{name}.json"
            if crashed or not path.is_file():
                write_json(
                    path, {"step": name, "status": "failed", "reason": f"the step's process died ({detail})"}
                )
            record = json.loads(path.read_text())
        line = f"gpu smoke: {name}: {record['status']}"
        if record.get("reason") or record.get("failed"):
            line += f" ({record.get('reason') or ', '.join(map(str, record['failed']))})"
        print(line, flush=True)
        summary.append({k: record.get(k) for k in ("step", "status", "reason", "failed", "seconds")})
    write_json(args.out / "summary.json", {"steps": summary})
    return 1 if any(s["status"] == "failed" for s in summary) else 0


if __name__ == "__main__":
    sys.exit(main())
