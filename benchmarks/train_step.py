"""One training step at the paper's batch (10 x 3 x 100 x 100) on this CPU; target <= 0.9 s.

Times forward + loss + backward + Adam step of the full model (12 stages, 16 channels) with the
paper's loss (perceptual term off): NCHW, channels_last, and channels_last with bfloat16 autocast
(train.bf16 in the trainer; uses AMX / AVX512-BF16 where the CPU has them). Writes
benchmarks/results/train_step_<machine>.json with the machine, versions and load average
(the machine may be shared: the load average says how much; the process CPU time per step
is what an idle machine would need with one thread).

    python benchmarks/train_step.py [--steps 10] [--threads 0]
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

from derain_deploy.bench import machine_info
from derain_deploy.model import DerainConfig, DerainNet
from trainer.losses import DerainLoss

TARGET_S = 0.9


def time_steps(channels_last: bool, bf16: bool, steps: int, warmup: int) -> tuple[list[float], list[float]]:
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = DerainNet(DerainConfig()).to(memory_format=fmt).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = DerainLoss()
    clean = torch.rand(10, 3, 100, 100).contiguous(memory_format=fmt)
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
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    results = {}
    variants = {"nchw": (False, False), "channels_last": (True, False), "channels_last_bf16": (True, True)}
    for name, (cl, bf16) in variants.items():
        t, cpu = time_steps(cl, bf16, args.steps, args.warmup)
        results[name] = {
            "median_s": statistics.median(t),
            "min_s": min(t),
            "p90_s": float(np.percentile(t, 90)),
            "cpu_s_median": statistics.median(cpu),  # process CPU time (all threads) per step
            "steps": len(t),
            "meets_target": statistics.median(t) <= TARGET_S,
        }
        print(
            f"{name}: median {results[name]['median_s']:.3f} s, min {results[name]['min_s']:.3f} s "
            f"per step, CPU time {results[name]['cpu_s_median']:.3f} s (target <= {TARGET_S} s)"
        )
    report = {
        "benchmark": "train_step",
        "batch": [10, 3, 100, 100],
        "model": DerainConfig().to_dict(),
        "target_s": TARGET_S,
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
