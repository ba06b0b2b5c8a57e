"""Reproduce the README's performance table: the backend matrix at 480x640, batch 1 (the
``derain-bench --full`` settings: 8 s per row, at least 5 reps, 20 probe repeats).

    python benchmarks/run_bench.py                 # bundled weights, CPU matrix, a few minutes
    python benchmarks/run_bench.py --device cuda   # the CUDA backends on a GPU machine

Writes ``benchmarks/results/<machine>.json`` (every row, machine, versions, probe, parity) and
``benchmarks/results/<machine>.md`` (the table for the README, the targets of issue 6 with the
figures that decide them, and INT8's quality loss). Run it on a quiet machine: anything else
using the cores shows up in the figures. Exit status 1 if a parity check fails, or with
``--strict`` if a target is missed.

INT8 quality: PSNR_Y against the clean image on synthetic pairs (the scikit-image photos under
light and heavy rain) for FP32 and INT8 of the same graph, through derain-eval's library.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

from derain_deploy.atomic import write_atomic
from derain_deploy.backend_spec import load_model, open_spec, parse_specs, runnable_here
from derain_deploy.bench import BenchReport, BenchSpec, machine_info, rainy_frame, run_bench
from derain_deploy.evaluate import evaluate
from derain_deploy.user_errors import user_errors

RESULTS = Path(__file__).resolve().parent / "results"
MATRIX = {
    "cpu": [
        "torch",
        "torch:cl",
        "torch:bf16:cl",
        "ort:concat",
        "ort:split",
        "ort:int8:concat",
        "ort:int8:split",
        "ort:fp16:split",
        "ov:concat",
        "ov:split",
        "ov:int8:split",
        "ov:bf16:split",
    ],
    "cuda": [
        "torch@cuda",
        "torch:fp16@cuda",
        "ort@cuda",
        "ort:split@cuda",
        "ort:fp16:split@cuda",
        "trt:fp16@cuda",
        "trt:fp16:graphs@cuda",
        "trt:int8@cuda",
    ],
}
QUALITY = {"cpu": ["ort:split", "ort:int8:split", "ort:int8:concat", "ov:split", "ov:int8:split"], "cuda": []}
TARGETS = (
    "issue 6: best FP32 <= 1.25x floor; >= 4x eager FP32 frames/s; INT8 faster than the floor, "
    "<= 0.5 dB loss; the floor is FLOP / the FP32 peak from the CPU's properties (issue 17), not the probe"
)


def machine_slug(info: dict[str, object]) -> str:
    name = str(info.get("gpu") or info["cpu"])
    name = re.sub(r"\((r|tm)\)|processor|cpu|@.*$", "", name, flags=re.IGNORECASE)
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return f"{slug}-{info['cores_usable']}c" if not info.get("gpu") else slug


def quality(model: object, labels: list[str], work: Path, frames: int, size: tuple[int, int]) -> dict:
    """derain-eval figures on a generated paired set: ``frames`` photos, half light, half heavy rain."""
    from derain_deploy.rain import add_rain

    with tempfile.TemporaryDirectory(prefix="derain-quality-") as tmp:
        root = Path(tmp)
        for i in range(frames):
            _, clean = rainy_frame(*size, seed=i)
            rainy = add_rain(clean, "light" if i % 2 else "heavy", seed=100 + i).rainy
            for sub, img in (("rainy", rainy), ("norain", clean)):
                (root / sub).mkdir(exist_ok=True)
                u8 = np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)
                cv2.imwrite(str(root / sub / f"{i}.png"), cv2.cvtColor(u8, cv2.COLOR_RGB2BGR))
        specs = parse_specs(labels)
        report = evaluate(root, specs, model, progress=False,  # type: ignore[arg-type]
                          opener=lambda s, m, _w: open_spec(s, m, work))  # fmt: skip
    return report.summary()


def targets(report: BenchReport, summary: dict[str, dict[str, float]]) -> list[str]:
    """The issue's targets, each with the figures that decide it."""
    rows = [r for r in report.rows if r.device == "cpu" and r.batch == 1]
    lines = []
    for h, w in sorted({(r.height, r.width) for r in rows}):
        cell = [r for r in rows if (r.height, r.width) == (h, w)]
        fp32 = [r for r in cell if r.precision == "fp32"]
        int8 = [r for r in cell if r.precision == "int8"]
        if not fp32:
            continue
        best = min(fp32, key=lambda r: r.p50_ms)
        floor_ms = best.floor_ms  # at the FP32 property peak (schema 2); the probe's ratio is beside it
        if floor_ms is None or best.floor_ratio is None:
            lines.append(f"- {h}x{w}: no property peak for {best.device}: the floor targets are not judged")
            continue
        verdict = "met" if best.floor_ratio <= 1.25 else "NOT met"
        lines.append(f"- {h}x{w}: best FP32 {best.label} {best.p50_ms:.0f} ms = {best.floor_ratio:.2f}x "
                     f"the floor ({floor_ms:.0f} ms at the FP32 property peak; {best.probe_ratio:.2f}x the "
                     f"matmul probe's): {verdict} (<= 1.25x)")  # fmt: skip
        lines.append(f"- {h}x{w}: {best.label} at {best.speedup_vs_eager:.2f}x eager FP32 frames/s: "
                     f"{'met' if best.speedup_vs_eager >= 4 else 'NOT met'} (>= 4x)")  # fmt: skip
        for r in int8:
            fp32_same = r.label.replace(":int8:", ":fp32:")  # the same runtime and graph in FP32
            loss = None
            if r.label in summary and fp32_same in summary:
                loss = summary[fp32_same]["psnr_y"] - summary[r.label]["psnr_y"]
            fast = r.p50_ms < floor_ms
            ok = fast and loss is not None and loss <= 0.5
            loss_text = "not measured" if loss is None else f"{loss:+.2f} dB PSNR_Y vs {fp32_same}"
            lines.append(f"- {h}x{w}: {r.label} {r.p50_ms:.0f} ms ({'<' if fast else '>='} the FP32 floor "
                         f"{floor_ms:.0f} ms), loss {loss_text}: {'met' if ok else 'NOT met'}")  # fmt: skip
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", choices=sorted(MATRIX), default="cpu")
    ap.add_argument("--backend", "-b", action="append", help="Override the matrix (repeatable spec).")
    ap.add_argument("--resolution", "-r", default="480x640", help="HxW (default 480x640).")
    ap.add_argument("--weights", help="Weights file (default: the bundled weights).")
    ap.add_argument("--random-weights", action="store_true", help="Untrained model (timing only).")
    ap.add_argument("--budget", type=float, default=8.0, help="Timed seconds per row (default 8).")
    ap.add_argument("--min-reps", type=int, default=5)
    ap.add_argument(
        "--quality-frames", type=int, default=8, help="Frames for the INT8 quality check (0: skip)."
    )
    ap.add_argument("--machine", help="Results file name (default: from the CPU/GPU model).")
    ap.add_argument("--out-dir", type=Path, default=RESULTS)
    ap.add_argument("--strict", action="store_true", help="Exit 1 if a target is missed.")
    args = ap.parse_args()
    try:
        h, w = (int(v) for v in args.resolution.lower().split("x"))
        matrix = runnable_here(MATRIX[args.device], lambda line: print(line, file=sys.stderr))
        specs = parse_specs(args.backend or matrix, default_device=args.device)
        model, source = load_model(args.weights, args.random_weights)
        spec = BenchSpec(backends=specs, resolutions=[(h, w)], min_reps=args.min_reps, budget_s=args.budget,
                         max_reps=200, check_parity=True)  # fmt: skip
        with tempfile.TemporaryDirectory(prefix="derain-bench-") as work:
            report = run_bench(
                spec, model, log=lambda m: print(m, file=sys.stderr), workdir=work, weights=source
            )
            wanted = {s.label for s in parse_specs(QUALITY[args.device], default_device=args.device)}
            labels = [s.label for s in specs if s.label in wanted]
            summary = {}
            if args.quality_frames and labels:
                print(f"quality check: {', '.join(labels)} on {args.quality_frames} frames", file=sys.stderr)
                summary = quality(model, labels, Path(work), args.quality_frames, (h // 2, w // 2))
    except (*user_errors(), ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    name = args.machine or machine_slug(machine_info())
    goal = targets(report, summary)
    md = report.to_markdown() + f"\nTargets ({TARGETS}):\n\n" + "\n".join(goal) + "\n"
    if summary:
        md += (f"\nQuality on {args.quality_frames} synthetic pairs ({h // 2}x{w // 2}, scikit-image photos, "
               "half light and half heavy rain), derain-eval's figures:\n\n"
               "| backend | PSNR_Y | SSIM_Y |\n|---|---:|---:|\n")  # fmt: skip
        md += "".join(f"| {k} | {v['psnr_y']:.2f} | {v['ssim_y']:.4f} |\n" for k, v in summary.items())
    data = report.to_dict()
    data["quality"] = summary
    data["targets"] = goal
    write_atomic(args.out_dir / f"{name}.json", json.dumps(data, indent=2, default=str) + "\n")
    write_atomic(args.out_dir / f"{name}.md", md)
    report.plot(args.out_dir / f"{name}.png")
    print(report.table())
    print("\n".join(goal))
    print(f"wrote {args.out_dir / name}.json, .md and .png")
    if not report.parity_ok:
        print("error: parity check failed", file=sys.stderr)
        return 1
    return 1 if args.strict and any("NOT met" in g for g in goal) else 0


if __name__ == "__main__":
    sys.exit(main())
