"""Live latency on loopback: a 25 fps 480x640 MPEG-TS stream over UDP into derain-run's live runner.

    python benchmarks/live_latency.py [--seconds 75] [--cases cpu,toy] [--machine NAME]

For each case a sender process (derain_deploy/streams/loopback.py) streams ``--seconds`` of a
generated clip in real time; the runner (real-time mode: newest frame, drops counted) derains it
into an HLS playlist in a temporary folder. Cases: ``cpu`` = the CPU backend ``derain-run``
picks (OpenVINO, else ONNX Runtime; FP32, bundled weights), ``toy`` = an identity backend (the
cost of decoding, queuing and encoding alone). Records end-to-end latency (frame decoded ->
output frame encoded) p50/p99, drop rate, frames/s in and out, and peak RSS at start and end.
Writes benchmarks/results/live_latency_<machine>.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from derain_deploy.atomic import write_atomic
from derain_deploy.bench import machine_info, versions
from derain_deploy.job import JobOptions, prepare_backend
from derain_deploy.live import LiveOptions, open_streams, run_streams
from derain_deploy.streams import loopback
from derain_deploy.toy_backend import ToyBackend

RESULTS = Path(__file__).resolve().parent / "results"
NOTE = (
    "Shared, busy machine (other jobs and a training run on the same cores): figures are upper "
    "bounds for latency, lower bounds for throughput. Latency is measured from the moment a frame "
    "leaves the decoder to the moment its output is encoded (network and decoder delay excluded)."
)


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def open_cpu_backend() -> object:
    try:
        import openvino  # noqa: F401

        name = "openvino"
    except ImportError:
        name = "onnxruntime"
    return prepare_backend(JobOptions(backend=name, device="cpu", precision="fp32"))


def run_case(case: str, seconds: float, size: tuple[int, int], fps: float) -> dict[str, object]:
    backend = ToyBackend() if case == "toy" else open_cpu_backend()
    url = f"udp://127.0.0.1:{loopback.free_port()}?pkt_size=1316"
    args = [sys.executable, loopback.__file__, url, "--seconds", str(seconds), "--fps", str(fps),
            "--size", f"{size[0]}x{size[1]}"]
    options = LiveOptions(realtime=True, reconnect=0, timeout=5.0, status_seconds=10.0)
    rss_start = peak_rss_mb()
    with tempfile.TemporaryDirectory(prefix="live-latency-") as tmp:
        sender = subprocess.Popen(args, stderr=subprocess.PIPE)
        done = threading.Event()  # set when the sender has sent everything (no stall at the end)
        threading.Thread(target=lambda: (sender.wait(), time.sleep(1.0), done.set()), daemon=True).start()
        try:
            start = time.monotonic()
            streams = open_streams([url], str(Path(tmp) / "live.m3u8"), options, say=print)
            [stats] = run_streams(streams, backend, options, say=print, stop=done)
            wall = time.monotonic() - start
        finally:
            sender.kill()
            sender.wait(timeout=5)
            backend.close()
    live = stats.details
    received = int(live["received"]) or 1
    return {
        "case": case,
        "backend": stats.backend,
        "precision": stats.precision,
        "seconds_sent": seconds,
        "wall_seconds": round(wall, 1),
        "input": {"fps": fps, "height": size[0], "width": size[1], "transport": "MPEG-TS over UDP, loopback"},
        "received": live["received"],
        "processed": live["processed"],
        "dropped": live["dropped"],
        "drop_rate": round(int(live["dropped"]) / received, 3),
        "input_fps": live["input_fps"],
        "processed_fps": live["processed_fps"],
        "backend_ms_per_call": round(1000 * stats.backend_seconds / max(stats.frames, 1), 1),
        "latency_p50_ms": live["latency_p50_ms"],
        "latency_p99_ms": live["latency_p99_ms"],
        "peak_rss_mb_start": rss_start,
        "peak_rss_mb_end": peak_rss_mb(),
        "error": live["error"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=75.0, help="stream length per case")
    parser.add_argument("--cases", default="cpu,toy")
    parser.add_argument("--size", default="480x640", help="HEIGHTxWIDTH")
    parser.add_argument("--fps", type=float, default=25.0)
    parser.add_argument("--machine", help="name in the results file [default: from the CPU]")
    parser.add_argument("--out", type=Path, help="results file [default: benchmarks/results/...]")
    parser.add_argument("--note", default=NOTE, help="how busy the machine was (written to the results)")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.lower().split("x"))
    machine = machine_info()
    if args.machine is None:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from run_bench import machine_slug

        args.machine = machine_slug(machine)
    cases = [run_case(c.strip(), args.seconds, size, args.fps) for c in args.cases.split(",") if c.strip()]
    report = {"machine": machine, "versions": versions(), "note": args.note, "cases": cases}
    out = args.out or RESULTS / f"live_latency_{args.machine}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, json.dumps(report, indent=2) + "\n")
    print(out)


if __name__ == "__main__":
    main()
