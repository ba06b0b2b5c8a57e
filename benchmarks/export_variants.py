"""ONNX Runtime CPU speed and quality of the exported variants: concat vs split graph, FP32 vs
INT8, FP16 numerics, and early exit.

    python benchmarks/export_variants.py [--weights W] [--size 480x640] [--runs 7] [--out JSON]

Every model is exported and checked like ``derain-export`` does (FP32 parity against eager,
INT8 calibrated on synthetic rain), then timed at batch 1 with runs interleaved round-robin
across the models, so that load from other processes hits all of them alike; medians are
reported with p90 and min, the machine's load average before and after, and the floor
(FLOP per frame / the float32 matmul rate measured in the same run).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

from derain_deploy.bench import machine_info
from derain_deploy.build import verify
from derain_deploy.build.api import CALIBRATION_SEED, _versions
from derain_deploy.build.onnx_export import export_fp32, serialize
from derain_deploy.build.precision import CALIBRATION_CROP, CALIBRATION_FRAMES, quantize_int8, to_fp16
from derain_deploy.weights import default_weights_path, file_sha256, load_weights


def matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    b = a.T.copy()
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def _timed(fn) -> float:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", type=Path, default=None, help="default: the bundled weights")
    ap.add_argument("--size", default="480x640")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--early-exit", default="4,8", help="stage counts to time besides the full model")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/export_variants.json"))
    args = ap.parse_args()
    weights = args.weights or default_weights_path()
    net = load_weights(weights)
    h, w = (int(v) for v in args.size.split("x"))
    shape = (1, 3, h, w)
    load_before = os.getloadavg()
    gflops = matmul_gflops()

    calib, _ = verify.rainy_images(CALIBRATION_FRAMES, *CALIBRATION_CROP, seed=CALIBRATION_SEED)
    rainy, clean = verify.rainy_images(4, 128, 160, seed=99)
    models: dict[str, bytes] = {}
    rows: dict[str, dict[str, object]] = {}
    for graph in ("concat", "split"):
        t0 = time.perf_counter()
        proto = export_fp32(net, graph=graph)
        fp32 = serialize(proto)
        parity = verify.check_fp32_parity(net, fp32)
        int8 = serialize(quantize_int8(proto, calib))
        quality = verify.compare_quality(fp32, int8, rainy, clean)
        models[f"{graph}/fp32"], models[f"{graph}/int8"] = fp32, int8
        rows[f"{graph}/fp32"] = {"parity_max_abs": parity.max_abs}
        rows[f"{graph}/int8"] = {
            "psnr_y_fp32": quality.psnr_fp32,
            "psnr_y_int8": quality.psnr_low,
            "psnr_loss_db": quality.loss_db,
            "psnr_rgb_vs_fp32": quality.psnr_vs_fp32,
        }
        print(
            f"{graph}: exported and checked in {time.perf_counter() - t0:.0f} s; parity max abs "
            f"{parity.max_abs:.3g}; int8 loss {quality.loss_db:.3f} dB, "
            f"vs fp32 {quality.psnr_vs_fp32:.2f} dB",
            flush=True,
        )
        if graph == "concat":
            f16 = verify.check_fp16(net, serialize(to_fp16(proto)), large=(1, 3, 480, 640))
            rows["concat/fp16"] = {"fp16_check": f16.__dict__}
            print(
                f"fp16: ORT PSNR min {f16.min_psnr:.2f} dB, emulated FP16 arithmetic min "
                f"{f16.emulated_min_psnr:.2f} dB, finite {f16.hard_inputs} {f16.emulated_hard_inputs}",
                flush=True,
            )

    for n in (int(s) for s in args.early_exit.split(",") if s):
        key = f"split/fp32/s{n}"
        models[key] = serialize(export_fp32(net, graph="split", stages=n))
        early, full = verify.run_eager(net, rainy, n), verify.run_eager(net, rainy)
        rows[key] = {
            "stages": n,
            "psnr_rgb_vs_full": statistics.fmean(verify.psnr_rgb(early, full)),
            "psnr_y_clean": statistics.fmean(verify.psnr_y(early, clean)),
            "psnr_y_clean_full": statistics.fmean(verify.psnr_y(full, clean)),
            "macs_per_pixel": net.config.macs_per_pixel(n),
        }

    # Wall time with ONNX Runtime's default threads (what a user sees), and CPU time of a
    # one-thread session (the compute runs on the calling thread: far less sensitive to other
    # processes on a shared machine than wall time).
    sessions = {k: verify.cpu_session(m) for k, m in models.items()}
    single = {k: verify.cpu_session(m, threads=1) for k, m in models.items()}
    batch = verify.rainy_images(1, h, w, seed=3)[0]
    times: dict[str, list[float]] = {k: [] for k in sessions}
    cpu_times: dict[str, list[float]] = {k: [] for k in sessions}
    for k in sessions:  # warm-up
        verify.run_onnx(sessions[k], batch)
        verify.run_onnx(single[k], batch)
    for _ in range(args.runs):
        for k in sessions:
            times[k].append(_timed(lambda s=sessions[k]: verify.run_onnx(s, batch)) * 1e3)
            t0 = time.process_time()
            verify.run_onnx(single[k], batch)
            cpu_times[k].append((time.process_time() - t0) * 1e3)
    floor_ms = 2 * net.config.macs_per_pixel() * h * w / (gflops * 1e9) * 1e3
    for k, t in times.items():
        med = statistics.median(t)
        rows.setdefault(k, {}).update(
            {
                "ms_median": med,
                "ms_p90": float(np.percentile(t, 90)),
                "ms_min": min(t),
                "ms_all": t,
                "floor_ratio": med / floor_ms,
                "cpu_ms_1thread_median": statistics.median(cpu_times[k]),
                "cpu_ms_1thread_all": cpu_times[k],
            }
        )
    for k in list(rows):
        if k.endswith("/int8") and "ms_median" in rows[k]:
            ref = rows[k.replace("int8", "fp32")]
            rows[k]["speedup_vs_fp32"] = ref["ms_median"] / rows[k]["ms_median"]
            rows[k]["cpu_speedup_vs_fp32"] = ref["cpu_ms_1thread_median"] / rows[k]["cpu_ms_1thread_median"]
    result = {
        "benchmark": "export_variants",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpu": str(machine_info()["cpu"]),
            "cores": os.cpu_count(),
            "platform": platform.platform(),
            "load_before": load_before,
            "load_after": os.getloadavg(),
        },
        "versions": _versions(),
        "weights": str(weights),
        "weights_sha256": file_sha256(weights),
        "shape": list(shape),
        "runs": args.runs,
        "matmul_gflops": gflops,
        "floor_ms": floor_ms,
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2))
    os.replace(tmp, args.out)
    load_after = os.getloadavg()[0]
    print(f"floor {floor_ms:.0f} ms ({gflops:.0f} GFLOP/s); load {load_before[0]:.1f} -> {load_after:.1f}")
    print(f"{'model':22} {'median ms':>10} {'p90':>8} {'min':>8} {'floor x':>8} {'1-thread cpu ms':>16}")
    for k in times:
        r = rows[k]
        print(
            f"{k:22} {r['ms_median']:10.0f} {r['ms_p90']:8.0f} {r['ms_min']:8.0f} {r['floor_ratio']:8.2f} "
            f"{r['cpu_ms_1thread_median']:16.0f}"
        )
    for k, r in rows.items():
        extra = {
            m: v for m, v in r.items() if m not in ("ms_all", "ms_median", "ms_p90", "ms_min", "floor_ratio")
        }
        print(k, json.dumps(extra, default=float))


if __name__ == "__main__":
    main()
