"""The runtime race: one exported FP32 ONNX graph on several runtimes, side by side in one run.

The graph is derain-export's FP32 file of the bundled weights at a static 1x3x480x640 shape
(``derain-export --shape 1x3x480x640``, in the form each runtime runs best: ``--form``), and every
runtime gets the same rainy frame (derain_deploy.bench.inputs) and 2 threads. Repetitions are
interleaved (round-robin over the runtimes), so machine noise hits all alike. Each row: p50 and
min ms/frame, and parity (max abs difference and RGB PSNR) against eager FP32 PyTorch.

Runtimes: OpenVINO, ONNX Runtime, IREE (iree-import-onnx, llvm-cpu, --iree-llvmcpu-target-cpu=host),
ncnn (pnnx: ONNX -> param/bin), Apache TVM (Relax ONNX frontend, meta-schedule tuning for this CPU
with ``--tvm-trials`` trials in all; 0: untuned default schedules) and ExecuTorch (XNNPACK; it
exports the eager module, since it has no ONNX frontend). A runtime that is missing, fails to
convert or fails to run gets a row with the one-line reason.

    /work/racevenv/bin/python benchmarks/race.py --reps 10 --out benchmarks/results/race_intel-xeon-2c.json
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

SHAPE = (1, 3, 480, 640)
THREADS = 2
TVM_TRIALS_PER_TASK = 32  # below this many trials per task meta-schedule leaves kernels untuned
RUNTIMES = ("openvino", "onnxruntime", "iree", "ncnn", "tvm", "executorch")
FORMS = {"openvino": "split", "onnxruntime": "concat", "iree": "split", "ncnn": "concat", "tvm": "concat"}
PACKAGES = {
    "openvino": "openvino",
    "onnxruntime": "onnxruntime",
    "iree": "iree-base-runtime",
    "ncnn": "ncnn",
    "tvm": "apache-tvm",
    "executorch": "executorch",
}

Runner = Callable[[np.ndarray], np.ndarray]


class SkipError(Exception):
    """A runtime that cannot take part; the message is its row's reason."""


def version(package: str) -> str | None:
    try:
        return md.version(package)
    except md.PackageNotFoundError:
        return None


def _tool(name: str) -> str:
    found = shutil.which(name) or str(Path(sys.executable).with_name(name))
    if not Path(found).exists():
        raise SkipError(f"{name} not found")
    return found


def _run(cmd: list[str], what: str, cwd: Path | None = None) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd)
    if done.returncode != 0:
        last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise SkipError(f"{what} failed (exit {done.returncode}): {last[0][:200]}")


# ---------------------------------------------------------------- one preparer per runtime


def prep_openvino(onnx_file: Path, work: Path, args: argparse.Namespace) -> Runner:
    import openvino as ov

    config = {
        "INFERENCE_PRECISION_HINT": "f32",
        "INFERENCE_NUM_THREADS": THREADS,
        "PERFORMANCE_HINT": "LATENCY",
    }
    compiled = ov.Core().compile_model(str(onnx_file), "CPU", config)
    request = compiled.create_infer_request()
    return lambda x: request.infer({0: x})[0].copy()


def prep_onnxruntime(onnx_file: Path, work: Path, args: argparse.Namespace) -> Runner:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = THREADS, 1
    opts.log_severity_level = 3
    session = ort.InferenceSession(str(onnx_file), opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]


def prep_iree(onnx_file: Path, work: Path, args: argparse.Namespace) -> Runner:
    import iree.runtime as rt

    mlir, vmfb = work / "model.mlir", work / "model.vmfb"
    _run([_tool("iree-import-onnx"), str(onnx_file), "-o", str(mlir)], "iree-import-onnx")
    compile_cmd = [
        _tool("iree-compile"),
        str(mlir),
        "--iree-hal-target-device=local",
        "--iree-hal-local-target-device-backends=llvm-cpu",
        "--iree-llvmcpu-target-cpu=host",
        "-o",
        str(vmfb),
    ]
    _run(compile_cmd, "iree-compile")
    rt.flags.parse_flags(f"--task_topology_max_group_count={THREADS}")
    ctx = rt.SystemContext(config=rt.Config("local-task"))
    ctx.add_vm_module(rt.VmModule.copy_buffer(ctx.instance, vmfb.read_bytes()))
    module = ctx.modules.module
    return lambda x: np.asarray(module.main_graph(x).to_host())


def prep_ncnn(onnx_file: Path, work: Path, args: argparse.Namespace) -> Runner:
    import ncnn

    local = work / "model.onnx"
    shutil.copyfile(onnx_file, local)
    _run([_tool("pnnx"), local.name, f"inputshape=[{','.join(map(str, SHAPE))}]"], "pnnx", cwd=work)
    net = ncnn.Net()
    net.opt.num_threads = THREADS
    # FP32 storage and arithmetic (ncnn defaults to fp16/bf16 storage where the CPU has it).
    net.opt.use_fp16_packed = net.opt.use_fp16_storage = net.opt.use_fp16_arithmetic = False
    net.opt.use_bf16_storage = False
    if net.load_param(str(work / "model.ncnn.param")) or net.load_model(str(work / "model.ncnn.bin")):
        raise SkipError("ncnn could not load the converted param/bin")
    src, dst = net.input_names()[0], net.output_names()[0]

    def run(x: np.ndarray) -> np.ndarray:
        ex = net.create_extractor()
        ex.input(src, ncnn.Mat(np.ascontiguousarray(x[0])))
        ret, out = ex.extract(dst)
        if ret:
            raise RuntimeError(f"ncnn extract returned {ret}")
        return np.array(out)[None]

    return run


def prep_tvm(onnx_file: Path, work: Path, args: argparse.Namespace) -> Runner:
    import onnx
    import tvm
    from tvm import relax
    from tvm.relax.frontend.onnx import from_onnx

    model = onnx.load(str(onnx_file))
    mod = from_onnx(model, shape_dict={model.graph.input[0].name: list(SHAPE)}, keep_params_in_input=False)
    mcpu = tvm.target.codegen.llvm_get_system_cpu() if args.tvm_mcpu == "host" else args.tvm_mcpu
    target = tvm.target.Target({"kind": "llvm", "mcpu": mcpu, "num-cores": THREADS})
    mod = relax.get_pipeline("zero")(mod)
    from tvm.s_tir import meta_schedule as ms

    tasks = len(ms.relax_integration.extract_tasks(mod, target))
    if args.tvm_trials < TVM_TRIALS_PER_TASK * tasks:
        # Untuned kernels are plain loops: 6 to 9 s for a 64x96 frame on this machine.
        raise SkipError(
            f"not tuned: {tasks} meta-schedule tasks need about {TVM_TRIALS_PER_TASK * tasks} trials "
            f"(--tvm-trials {args.tvm_trials}); a task without a record runs untuned loops"
        )
    db_dir = work / "tvm-tuning"
    with target:
        ms.relax_integration.tune_relax(
            mod=mod,
            params={},
            target=target,
            work_dir=str(db_dir),
            max_trials_global=args.tvm_trials,
            num_trials_per_iter=min(16, args.tvm_trials),
        )
        db = ms.database.JSONDatabase(
            str(db_dir / "database_workload.json"), str(db_dir / "database_tuning_record.json")
        )
        with db, tvm.transform.PassContext(opt_level=3):
            mod = relax.transform.MetaScheduleApplyDatabase(enable_warning=False)(mod)
    ex = tvm.compile(mod, target)
    vm = relax.VirtualMachine(ex, tvm.cpu())
    return lambda x: vm["main"](tvm.runtime.tensor(x)).numpy()


def prep_executorch(onnx_file: Path, work: Path, args: argparse.Namespace) -> Runner:
    import torch
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower
    from executorch.runtime import Runtime

    net = args.net.split_dense() if FORMS.get("executorch") == "split" else args.net
    example = (torch.zeros(SHAPE),)
    exported = torch.export.export(net.eval(), example)
    program = to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner()]).to_executorch()
    pte = work / "model.pte"
    pte.write_bytes(program.buffer)
    torch.set_num_threads(THREADS)
    method = Runtime.get().load_program(str(pte)).load_method("forward")
    return lambda x: method.execute([torch.from_numpy(x)])[0].numpy()


PREPARERS = {
    "openvino": prep_openvino,
    "onnxruntime": prep_onnxruntime,
    "iree": prep_iree,
    "ncnn": prep_ncnn,
    "tvm": prep_tvm,
    "executorch": prep_executorch,
}


# ---------------------------------------------------------------- the race


def export_graphs(net, forms: set[str], out: Path) -> dict[str, Path]:  # type: ignore[no-untyped-def]
    """derain-export's FP32 graph in each form, static 1x3x480x640."""
    from derain_deploy.build import onnx_export

    files = {}
    for form in sorted(forms):
        path = out / f"derain.{form}.{'x'.join(map(str, SHAPE))}.onnx"
        proto = onnx_export.export_fp32(net, graph=form, static_shape=SHAPE)
        path.write_bytes(onnx_export.serialize(proto))
        files[form] = path
    return files


def parity(out: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    from derain_deploy.build.verify import psnr_rgb

    return {"max_abs": float(np.abs(out - ref).max()), "psnr_db": round(psnr_rgb(out, ref)[0], 2)}


def markdown(result: dict) -> str:
    lines = [
        f"Runtime race, {result['machine']['cpu']} ({result['machine']['cores_usable']} cores), "
        f"{'x'.join(map(str, SHAPE))}, {THREADS} threads, FP32, {result['reps']} interleaved repetitions; "
        f"load average {result['load_before'][0]:.1f} before, {result['load_after'][0]:.1f} after.",
        "",
        "| runtime | version | graph | ms/frame p50 | min | vs OpenVINO | max abs vs eager | PSNR vs eager "
        "| note |",
        "|---|---|---|---:|---:|---:|---:|---:|---|",
    ]
    ov = next((r["p50_ms"] for r in result["rows"] if r["runtime"] == "openvino" and "p50_ms" in r), None)
    for r in result["rows"]:
        if "p50_ms" in r:
            speed = f"{ov / r['p50_ms']:.2f}x" if ov else "n/a"
            lines.append(
                f"| {r['runtime']} | {r['version']} | {r['graph']} | {r['p50_ms']:,.0f} "
                f"| {r['min_ms']:,.0f} | "
                f"{speed} | {r['max_abs']:.1e} | {r['psnr_db']:.1f} dB | {r.get('note', '')} |"
            )
        else:
            lines.append(
                f"| {r['runtime']} | {r['version']} | {r.get('graph', '')} | | | | | | {r['reason']} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="JSON file (the Markdown table goes next to it)")
    ap.add_argument("--reps", type=int, default=10, help="interleaved timed repetitions per runtime")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--runtimes", nargs="*", default=list(RUNTIMES), choices=RUNTIMES)
    ap.add_argument(
        "--form", action="append", default=[], metavar="RUNTIME=FORM", help="graph form per runtime"
    )
    ap.add_argument("--tvm-trials", type=int, default=0, help="meta-schedule trials in all (too few: a row)")
    ap.add_argument("--tvm-mcpu", default="host", help="LLVM -mcpu for TVM (host: LLVM's name for this CPU)")
    ap.add_argument("--weights", type=Path, default=None, help="default: the bundled weights")
    args = ap.parse_args()
    for item in args.form:
        rt_name, _, form = item.partition("=")
        if rt_name not in FORMS or form not in ("split", "concat"):
            raise SystemExit(f"error: --form {item!r}: expected RUNTIME=split|concat for {', '.join(FORMS)}")
        FORMS[rt_name] = form
    if args.reps < 1:
        raise SystemExit("error: --reps must be >= 1")

    import torch

    from derain_deploy.atomic import write_atomic
    from derain_deploy.bench.inputs import rainy_frame
    from derain_deploy.bench.machine import machine_info
    from derain_deploy.build.verify import run_eager
    from derain_deploy.output_guard import OutputGuardError, check_writes
    from derain_deploy.weights import default_weights_path, load_weights

    try:
        check_writes({"--out": args.out, "--out (Markdown)": args.out.with_suffix(".md")}, [args.weights])
    except OutputGuardError as e:
        sys.exit(f"error: {e}")

    torch.set_num_threads(THREADS)
    load_before = os.getloadavg()
    args.net = load_weights(args.weights or default_weights_path()).float().eval()
    rainy, _ = rainy_frame(SHAPE[2], SHAPE[3], seed=0)
    x = np.ascontiguousarray(rainy.transpose(2, 0, 1)[None], dtype=np.float32)
    t0 = time.perf_counter()
    ref = run_eager(args.net, x)
    eager_ms = (time.perf_counter() - t0) * 1e3

    rows: dict[str, dict] = {}
    runners: dict[str, Runner] = {}
    with tempfile.TemporaryDirectory(prefix="derain-race-") as tmp_name:
        tmp = Path(tmp_name)
        wanted = {FORMS[r] for r in args.runtimes if r in FORMS}
        graphs = export_graphs(args.net, wanted, tmp)
        for name in args.runtimes:
            row = {
                "runtime": name,
                "version": version(PACKAGES[name]),
                "graph": FORMS.get(name, "eager module"),
            }
            rows[name] = row
            if row["version"] is None:
                row["reason"] = f"not installed ({PACKAGES[name]})"
                print(f"{name}: {row['reason']}", flush=True)
                continue
            work = tmp / name
            work.mkdir()
            t1 = time.perf_counter()
            try:
                runner = PREPARERS[name](graphs.get(FORMS.get(name, "")), work, args)
                out = runner(x)  # also the warm-up and the parity output
                for _ in range(args.warmup - 1):
                    runner(x)
            except Exception as e:  # a failed conversion or run is a row, not a crash
                text = str(e).strip().splitlines()
                row["reason"] = f"{type(e).__name__}: {text[0][:200] if text else ''}"
                print(f"{name}: {row['reason']}", flush=True)
                continue
            row["prepare_s"] = round(time.perf_counter() - t1, 1)
            row.update(parity(out, ref))
            row["times_ms"] = []
            runners[name] = runner
            print(f"{name}: ready in {row['prepare_s']} s, parity {row['psnr_db']} dB", flush=True)
        if "tvm" in runners:
            rows["tvm"]["note"] = f"meta-schedule, {args.tvm_trials} trials"
        for rep in range(args.reps):  # round-robin
            for name, runner in runners.items():
                t1 = time.perf_counter()
                runner(x)
                rows[name]["times_ms"].append(round((time.perf_counter() - t1) * 1e3, 1))
            print(
                f"rep {rep + 1}/{args.reps}: "
                + ", ".join(f"{n} {rows[n]['times_ms'][-1]:.0f}" for n in runners)
            )
    for name in runners:
        times = rows[name]["times_ms"]
        rows[name]["p50_ms"] = statistics.median(times)
        rows[name]["min_ms"] = min(times)
    result = {
        "what": "runtime race: the same FP32 graph, same frame, same threads, interleaved repetitions",
        "shape": list(SHAPE),
        "threads": THREADS,
        "reps": args.reps,
        "machine": machine_info(),
        "load_before": list(load_before),
        "load_after": list(os.getloadavg()),
        "eager_fp32_ms_once": round(eager_ms),
        "versions": {
            "torch": torch.__version__,
            "onnx": version("onnx"),
            "derain-deploy": version("derain-deploy"),
        },
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "rows": list(rows.values()),
    }
    write_atomic(args.out, json.dumps(result, indent=1) + "\n")
    md_path = args.out.with_suffix(".md")
    write_atomic(md_path, markdown(result))
    print(markdown(result))
    print(f"wrote {args.out} and {md_path}")


if __name__ == "__main__":
    main()
