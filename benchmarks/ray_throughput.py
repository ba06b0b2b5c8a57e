"""Throughput of a job over N small videos: a plain local loop vs Ray with 1 and 2 workers.

On this machine (2 cores, shared) with a local Ray (started once, ``num_cpus=2``) and the CPU
backend (ONNX Runtime, FP32). The model is the full-size DerainNet with random weights (timing
only: the bundled weights are not needed). Each configuration writes into a fresh folder, so no
journal skips work. Reported per configuration and repeat: wall seconds (for Ray: actor start,
backend open and the job, not ``ray.init``), frames/s, and the overhead against the plain loop
(``1 - fps / fps_loop``).

- ``loop``: the plain local loop: one backend, :func:`process_input` per video (what ``derain-run
  a.mp4 b.mp4 ...`` does per input), ONNX Runtime on 2 threads;
- ``loop_1t``: the same with 1 ONNX Runtime thread (as each of the two Ray workers has: on a
  loaded machine two threads can lose more to waiting on each other than they gain);
- ``run_local``: the same loop with the job machinery (planning, journal, summary);
- ``ray_1``: :func:`run_many` with 1 worker (2 ONNX Runtime threads);
- ``ray_2``: :func:`run_many` with 2 workers (1 thread each).

Usage: python benchmarks/ray_throughput.py [--videos 8] [--frames 16] [--size 120x160] [--repeats 2]
Writes benchmarks/results/ray_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

from derain_deploy.bench import machine_info, versions
from derain_deploy.distributed import JobSettings, process_input, run_local, run_many
from derain_deploy.job import JobOptions, prepare_backend
from derain_deploy.model import DerainNet
from derain_deploy.streams import write_test_video
from derain_deploy.weights import save_weights


def make_inputs(folder: Path, videos: int, frames: int, h: int, w: int) -> list[str]:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(videos):
        images = [(rng.random((h, w, 3)) * 255).astype(np.uint8) for _ in range(frames)]
        paths.append(str(write_test_video(folder / f"clip{i:03d}.mp4", images, fps=25)))
    return paths


def plain_loop(inputs: list[str], options: JobOptions) -> float:
    start = time.perf_counter()
    backend = prepare_backend(options)
    try:
        for spec in inputs:
            process_input(spec, options, backend)
    finally:
        backend.close()
    return time.perf_counter() - start


def timed(fn: object) -> float:
    start = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", default="120x160", help="HxW")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "ray_throughput.json"))
    args = parser.parse_args()
    h, w = (int(v) for v in args.size.split("x"))

    import ray

    work = Path(tempfile.mkdtemp(prefix="ray-bench-"))
    os.environ["DERAIN_DEPLOY_CACHE"] = str(work / "cache")  # the workers inherit it
    torch.manual_seed(0)
    weights = save_weights(DerainNet().eval(), work / "random.safetensors")
    inputs = make_inputs(work / "in", args.videos, args.frames, h, w)
    total = args.videos * args.frames

    def options(name: str, **backend_options: object) -> JobOptions:
        return JobOptions(
            output=f"{work / name}/",
            backend="onnxruntime",
            device="cpu",
            model=str(weights),
            progress=False,
            backend_options=backend_options,
        )

    quiet = JobSettings(progress=False)
    prepare_backend(options("warm")).close()  # export the ONNX into the cache once
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray_init = time.perf_counter() - t0
    rows: list[dict[str, object]] = []
    try:
        for r in range(args.repeats):
            configs = {
                "loop": lambda r=r: plain_loop(inputs, options(f"loop{r}")),
                "loop_1t": lambda r=r: plain_loop(inputs, options(f"loop1t{r}", threads=1)),
                "run_local": lambda r=r: timed(
                    lambda: run_local(inputs, options(f"local{r}"), quiet, log=lambda _: None)
                ),
                "ray_1": lambda r=r: timed(
                    lambda: run_many(
                        inputs, options(f"ray1_{r}"), None, 1, 0, settings=quiet, log=lambda _: None
                    )
                ),
                "ray_2": lambda r=r: timed(
                    lambda: run_many(
                        inputs, options(f"ray2_{r}"), None, 2, 0, settings=quiet, log=lambda _: None
                    )
                ),
            }
            for name, run in configs.items():
                seconds = run()
                rows.append(
                    {
                        "config": name,
                        "repeat": r,
                        "seconds": round(seconds, 3),
                        "fps": round(total / seconds, 3),
                    }
                )
                print(f"{name:10s} repeat {r}: {seconds:7.2f} s  {total / seconds:6.2f} frames/s", flush=True)
    finally:
        ray.shutdown()
    load_after = os.getloadavg()
    medians = {
        c: statistics.median(row["fps"] for row in rows if row["config"] == c)
        for c in dict.fromkeys(r["config"] for r in rows)
    }
    result = {
        "benchmark": "ray_throughput",
        "machine": machine_info(),
        "versions": {**versions(), "ray": metadata.version("ray"), "av": metadata.version("av")},
        "settings": {
            "videos": args.videos,
            "frames_per_video": args.frames,
            "size": [h, w],
            "backend": "onnxruntime cpu fp32",
            "model": "DerainNet() full size, random weights",
            "ray_num_cpus": 2,
        },
        "ray_init_seconds": round(ray_init, 2),
        "load_average_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
        "rows": rows,
        "median_fps": {k: round(v, 3) for k, v in medians.items()},
        "overhead_vs_loop": {k: round(1 - v / medians["loop"], 3) for k, v in medians.items() if k != "loop"},
        "overhead_vs_loop_1t": {
            k: round(1 - v / medians["loop_1t"], 3) for k, v in medians.items() if k != "loop_1t"
        },
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(
        json.dumps(
            {
                "median_fps": result["median_fps"],
                "overhead_vs_loop": result["overhead_vs_loop"],
                "ray_init_s": ray_init,
            }
        )
    )


if __name__ == "__main__":
    main()
