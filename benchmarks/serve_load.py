"""Load test of derain-serve on loopback: N concurrent clients for a fixed time per image size.

For each size (default 256x256 and 480x640): ``--clients`` threads POST PNG rainy photos
(:func:`derain_deploy.bench.rainy_frame`) to /v1/derain for ``--seconds``; reported: requests/s,
latency p50/p99 (client side), the batch sizes the server reports (X-Derain-Batch-Size), and
the status counts (5xx must be zero), once per ``--max-batch`` setting (a fresh service each:
1 is no batching). Then a burst of bad requests (not an image, corrupt,
over --max-pixels by its header, wrong method) between good ones: every bad one must get its
4xx, every good one 200, and /healthz must answer after. For comparison, derain-run's own loop
(:func:`derain_deploy.job.process_input` per file, the backend opened once and not timed) on
the same images written as files, with the same backend.

Usage: python benchmarks/serve_load.py [--backend auto] [--clients 4] [--seconds 25]
       [--max-batch 1,4] [--batch-wait-ms 20] [--sizes 256x256,480x640] [--machine NAME]
Writes benchmarks/results/serve_load_<machine>.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import struct
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import zlib
from collections import Counter
from importlib import metadata
from pathlib import Path

import cv2
import numpy as np

from derain_deploy.bench import machine_info, rainy_frame, versions
from derain_deploy.job import JobOptions, prepare_backend, process_input
from derain_deploy.serve.options import ServeOptions
from derain_deploy.serve.server import RayOptions, free_port, start

sys.path.insert(0, str(Path(__file__).parent))
from run_bench import machine_slug

IMAGES_PER_SIZE = 4


def png(rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", cv2.cvtColor((rgb * 255 + 0.5).astype(np.uint8), cv2.COLOR_RGB2BGR))
    assert ok
    return buf.tobytes()


def post(url: str, data: bytes | None, method: str = "POST") -> tuple[int, dict[str, str]]:
    request = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=300) as r:
            r.read()
            return r.status, dict(r.headers)
    except urllib.error.HTTPError as e:
        e.read()
        return e.code, dict(e.headers)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def load(url: str, images: list[bytes], clients: int, seconds: float) -> dict[str, object]:
    """``clients`` threads, each POSTing ``images`` in turn until ``seconds`` have passed."""
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    batches: Counter[int] = Counter()
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def client(k: int) -> None:
        i = k
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            status, headers = post(f"{url}/v1/derain", images[i % len(images)])
            ms = (time.perf_counter() - t0) * 1000
            with lock:
                statuses[status] += 1
                if status == 200:
                    latencies.append(ms)
                    batches[int(headers.get("x-derain-batch-size", 0))] += 1
            i += 1

    start_t = time.perf_counter()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start_t
    ok = statuses.get(200, 0)
    return {
        "clients": clients,
        "seconds": round(wall, 2),
        "requests": sum(statuses.values()),
        "requests_per_s": round(ok / wall, 3),
        "latency_ms_p50": round(percentile(latencies, 50), 1),
        "latency_ms_p99": round(percentile(latencies, 99), 1),
        "latency_ms_mean": round(statistics.fmean(latencies), 1) if latencies else None,
        "batch_sizes_seen": {str(k): v for k, v in sorted(batches.items())},
        "status_counts": {str(k): v for k, v in sorted(statuses.items())},
        "errors_5xx": sum(v for k, v in statuses.items() if k >= 500),
    }


def bad_burst(url: str, good: bytes, max_pixels: int, rounds: int = 10) -> dict[str, object]:
    """Bad requests between good ones; each must get its expected status."""
    huge = bytearray(png(np.zeros((1, 1, 3), np.float32)))
    side = int(max_pixels**0.5) + 100
    huge[16:24] = struct.pack(">II", side, side)
    huge[29:33] = struct.pack(">I", zlib.crc32(bytes(huge[12:29])))
    bad = [
        ("not an image", b"just some text", "POST", 415),
        ("corrupt png", good[: len(good) // 3], "POST", 400),
        ("over --max-pixels (header)", bytes(huge), "POST", 413),
        ("wrong method", None, "GET", 405),
    ]
    wrong, good_fail = [], 0
    for r in range(rounds):
        what, data, method, expected = bad[r % len(bad)]
        status, _ = post(f"{url}/v1/derain", data, method)
        if status != expected:
            wrong.append(f"{what}: {status} (expected {expected})")
        if post(f"{url}/v1/derain", good)[0] != 200:
            good_fail += 1
    healthy = post(f"{url}/healthz", None, "GET")[0] == 200 and post(f"{url}/readyz", None, "GET")[0] == 200
    return {
        "bad_requests": rounds,
        "good_between": rounds,
        "bad_with_wrong_status": wrong,
        "good_failed": good_fail,
        "healthy_after": healthy,
    }


def derain_run_loop(files: list[Path], options: JobOptions, seconds: float) -> dict[str, object]:
    """derain-run's per-input path over ``files`` in turn for ``seconds`` (the backend is opened
    once, untimed, as derain-run opens it once for all its inputs)."""
    backend = prepare_backend(options)
    n = 0
    try:
        process_input(str(files[0]), options, backend)  # warm-up (the default output, beside it)
        start_t = time.perf_counter()
        while time.perf_counter() - start_t < seconds:
            f = files[n % len(files)]
            out = f.with_name(f"{f.stem}.out{n}.png")
            process_input(str(f), dataclasses.replace(options, output=str(out)), backend)
            out.unlink()
            n += 1
        wall = time.perf_counter() - start_t
    finally:
        backend.close()
    return {"images": n, "seconds": round(wall, 2), "images_per_s": round(n / wall, 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--precision", default=None)
    ap.add_argument("--model", default=None, help="default: the bundled weights")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=25)
    ap.add_argument("--max-batch", default="1,4", help="one service per setting, comma-separated")
    ap.add_argument("--batch-wait-ms", type=float, default=20)
    ap.add_argument("--sizes", default="256x256,480x640")
    ap.add_argument("--num-cpus", type=int, default=None, help="local Ray's CPUs (default: all)")
    ap.add_argument("--machine", default=None)
    ap.add_argument("--note", default="")
    args = ap.parse_args()
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    info = machine_info()
    name = args.machine or machine_slug(info)
    batch_settings = [int(b) for b in str(args.max_batch).split(",")]
    images = {s: [png(rainy_frame(s[0], s[1], seed=i)[0]) for i in range(IMAGES_PER_SIZE)] for s in sizes}
    run_opts = JobOptions(
        backend=args.backend, device=args.device, precision=args.precision, model=args.model, progress=False
    )
    load_before = os.getloadavg()
    results: dict[str, dict[str, object]] = {}
    baseline: dict[str, dict[str, object]] = {}
    startup: dict[str, float] = {}
    opened: dict[str, object] = {}
    burst: dict[str, object] = {}
    # per --max-batch setting a fresh service; after each size under the first setting (the
    # service idle), derain-run's loop on the same images for as long, so that both see about
    # the same load from the machine's other jobs
    with tempfile.TemporaryDirectory(prefix="serve-load-") as tmp:
        for b in batch_settings:
            options = ServeOptions(
                backend=args.backend,
                device=args.device,
                precision=args.precision,
                model=args.model,
                max_batch=b,
                batch_wait_ms=args.batch_wait_ms,
                max_pixels=4_000_000,
            )
            t0 = time.perf_counter()
            server = start(
                options, port=free_port(), ray_options=RayOptions(num_cpus=args.num_cpus, log_to_driver=False)
            )
            startup[f"max_batch_{b}"] = round(time.perf_counter() - t0, 1)
            opened = {**server.info, "replicas": server.replicas}
            try:
                for s in sizes:
                    key = f"{s[0]}x{s[1]}"
                    post(f"{server.url}/v1/derain", images[s][0])  # warm-up (first call at this size)
                    row = load(server.url, images[s], args.clients, args.seconds)
                    results.setdefault(key, {})[f"max_batch_{b}"] = row
                    print(f"serve {key} max_batch {b}: {json.dumps(row)}", flush=True)
                    if b != batch_settings[0]:
                        continue
                    files = []
                    for i, data in enumerate(images[s]):
                        files.append(Path(tmp) / f"{key}_{i}.png")
                        files[-1].write_bytes(data)
                    baseline[key] = derain_run_loop(files, run_opts, args.seconds)
                    print(f"derain-run {key}: {json.dumps(baseline[key])}", flush=True)
                if not burst:
                    burst = bad_burst(server.url, images[sizes[0]][0], options.max_pixels or 0)
                    print(f"bad burst: {json.dumps(burst)}", flush=True)
            finally:
                server.stop()
    for key, rows in results.items():
        for row in rows.values():
            row["vs_derain_run"] = round(
                float(row["requests_per_s"]) / float(baseline[key]["images_per_s"]), 3
            )
    out = {
        "machine": info,
        "machine_name": name,
        "versions": {**versions(), "ray": metadata.version("ray")},
        "note": args.note
        or "shared, busy machine (other jobs and a training run on the same cores): figures are indicative",
        "settings": {
            **{k: v for k, v in vars(args).items() if k not in ("machine", "note")},
            "backend_opened": opened,
            "images_per_size": IMAGES_PER_SIZE,
            "format": "PNG, 8-bit RGB rainy photos",
        },
        "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "startup_seconds": startup,
        "serve": results,
        "bad_burst": burst,
        "derain_run_loop": baseline,
    }
    path = Path(__file__).parent / "results" / f"serve_load_{name}.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
