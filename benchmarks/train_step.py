"""One training step at the paper's batch (10 x 3 x 100 x 100) on this CPU; target <= 0.9 s.

Times forward + loss + backward + Adam step of the full model (12 stages, 16 channels) with the
paper's loss (perceptual term off): NCHW, channels_last, and channels_last with bfloat16 autocast
(train.bf16 in the trainer; uses AMX / AVX512-BF16 where the CPU has them; left out where
torch would emulate bf16, unless ``--emulated-bf16``). Writes
benchmarks/results/train_step_<machine>.json with the machine, versions and load average
(the machine may be shared: the load average says how much; the process CPU time per step
is what an idle machine would need with one thread).

It also states this CPU's FP32 floor for a step: the step's convolution FLOP (forward, plus the
gradients of the inputs and of the weights: about 3x the forward; counted by torch's
FlopCounterMode) over the FP32 matmul probe's GFLOP/s. A target below the floor cannot be met in
FP32 on that machine.

    python benchmarks/train_step.py [--steps 10] [--threads 0] [--emulated-bf16]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from derain_deploy.bench import BenchSpec, machine_info, matmul_probe
from derain_deploy.cpu import native_bf16, no_bf16_reason
from derain_deploy.model import DerainConfig, DerainNet
from trainer.losses import DerainLoss

TARGET_S = 0.9
BATCH = (10, 3, 100, 100)


def step_gflop(batch: tuple[int, int, int, int] = BATCH) -> float:
    """GFLOP of the convolutions in one training step (forward and backward), counted by torch's
    FlopCounterMode; about 3x the forward's 2 x ``macs_per_pixel()`` per pixel."""
    model = DerainNet(DerainConfig()).train()
    clean = torch.rand(*batch)
    rain = torch.rand_like(clean) * 0.1
    with FlopCounterMode(display=False) as counter:
        out, stages = model(clean + rain, return_stages=True)
        DerainLoss()(clean + rain, clean, rain, out, stages).total.backward()
    return counter.get_total_flops() / 1e9


def time_steps(channels_last: bool, bf16: bool, steps: int, warmup: int) -> tuple[list[float], list[float]]:
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = DerainNet(DerainConfig()).to(memory_format=fmt).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = DerainLoss()
    clean = torch.rand(*BATCH).contiguous(memory_format=fmt)
    rain = (torch.rand_like(clean) < 0.05).float() * 0.5
    rainy = (clean + rain).clamp(0, 1)
    rain = rainy - clean
    times, cpu = [], []
    for i in range(warmup + steps):
        t, c = time.perf_counter(), time.process_time()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):  # as trainer/loop.py does
            out, stages = model(rainy, return_stages=True)
        terms = loss_fn(rainy, clean, rain, out.float(), [s.float() for s in stages])
        opt.zero_grad(set_to_none=True)
        terms.total.backward()
        opt.step()
        if i >= warmup:
            times.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
    return times, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--machine", default=socket.gethostname())
    ap.add_argument("--emulated-bf16", action="store_true",
                    help="time the bf16 variant also where the CPU has no native bf16 (about 10x slower)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    probe = matmul_probe("cpu", repeats=BenchSpec.probe_repeats)  # as derain-bench probes
    gflop = step_gflop()
    floor_s = gflop / probe["gflops"]
    below = floor_s > TARGET_S
    print(f"FP32 floor: {gflop:.1f} GFLOP per step at the probe's {probe['gflops']:.0f} GFLOP/s "
          f"= {floor_s:.3f} s (target {TARGET_S} s{' is below it' if below else ''})")
    results: dict[str, dict[str, object]] = {}
    variants = {"nchw": (False, False), "channels_last": (True, False), "channels_last_bf16": (True, True)}
    for name, (cl, bf16) in variants.items():
        if bf16 and not native_bf16() and not args.emulated_bf16:
            skipped = f"{no_bf16_reason()}; torch would emulate it (--emulated-bf16 times it)"
            results[name] = {"skipped": skipped}
            print(f"{name}: skipped, {results[name]['skipped']}")
            continue
        t, cpu = time_steps(cl, bf16, args.steps, args.warmup)
        results[name] = {
            "median_s": statistics.median(t),
            "min_s": min(t),
            "p90_s": float(np.percentile(t, 90)),
            "cpu_s_median": statistics.median(cpu),  # process CPU time (all threads) per step
            "steps": len(t),
            "meets_target": statistics.median(t) <= TARGET_S,
            "x_fp32_floor": statistics.median(t) / floor_s,
        }
        print(
            f"{name}: median {statistics.median(t):.3f} s, min {min(t):.3f} s per step "
            f"({statistics.median(t) / floor_s:.2f}x the FP32 floor), "
            f"CPU time {statistics.median(cpu):.3f} s (target <= {TARGET_S} s)"
        )
    report = {
        "benchmark": "train_step",
        "batch": list(BATCH),
        "model": DerainConfig().to_dict(),
        "target_s": TARGET_S,
        "step_gflop": gflop,
        "probe": probe,
        "fp32_floor_s": floor_s,
        "target_below_fp32_floor": below,
        "results": results,
        "machine": {
            "name": args.machine,
            "cpu": str(machine_info()["cpu"]),
            "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
        },
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "numpy": np.__version__,
        },
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    out = Path(__file__).parent / "results" / f"train_step_{args.machine}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    os.replace(tmp, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
