"""INT8 calibration variants of one FP32 graph, measured on one fixed check set.

Each variant is an :class:`derain_deploy.build.precision.Int8Recipe` (range method, calibration
frames, layers kept in float, weight bits) or NNCF's ``nncf.quantize`` on the ONNX graph. Every
QDQ file runs on ONNX Runtime (this CPU's MLAS integer kernels: MLAS picks them by cpuid and has
no switch to cap the ISA) and on OpenVINO under each oneDNN ISA cap (``ONEDNN_MAX_CPU_ISA``, one
process per cap since oneDNN reads it once; the compiled model's convolution kernels are
recorded, e.g. ``jit_avx2_I8`` under AVX2, to prove the cap held). Parity is RGB PSNR of the
INT8 output against FP32 (ONNX Runtime FP32) on the check set: the worst image and the mean.

The check set: rainy crops from ``derain_deploy.build.verify.rainy_images`` (scikit-image photos,
mixed rain) and the bench's heavy-rain frames (``derain_deploy.bench.inputs``). With ``--data``
(e.g. ../shared/data/clean) a calibration set of rainy crops of those photos is added, and the
check set gets a few of them (other files than the calibration crops). Nothing is copied.

    python benchmarks/int8_calibration.py --out benchmarks/results/int8_calibration_intel-xeon-2c.json \\
        --data ../shared/data/clean

NNCF rows need ``nncf`` (run with an interpreter that has it); without it they say so.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ISA_CAPS = ("", "AVX512_CORE_AMX", "AVX512_CORE_VNNI", "AVX512_CORE", "AVX2")  # "": no cap
LINE_DB = 42.0


def check_set(height: int, width: int, data: Path | None) -> np.ndarray:
    """The fixed check set, float32 NCHW: 4 mixed-rain crops, 2 heavy-rain bench frames and,
    with ``data``, 2 rainy crops of photos from there."""
    from derain_deploy.bench.inputs import rainy_batch
    from derain_deploy.build.verify import rainy_images

    parts = [rainy_images(4, height, width, seed=99)[0], rainy_batch(height, width, 2, seed=0)[0]]
    if data is not None:
        parts.append(photo_crops(data, 2, height, width, seed=4321, offset=1))
    return np.concatenate(parts)


def photo_files(data: Path) -> list[Path]:
    files = sorted(p for p in data.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".tif"))
    if not files:
        raise SystemExit(f"error: no images under {data}")
    return files


def photo_crops(data: Path, n: int, height: int, width: int, seed: int, offset: int = 0) -> np.ndarray:
    """``n`` rainy crops (random rain preset) of photos under ``data``; ``offset`` picks
    other files than offset 0 for the same seed (check set vs calibration)."""
    import cv2

    from derain_deploy import rain

    files = photo_files(data)
    rng = np.random.default_rng(seed)
    picks = rng.permutation(len(files))
    out = []
    for i in range(n):
        img = cv2.imread(str(files[picks[(2 * i + offset) % len(files)]]), cv2.IMREAD_COLOR)
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
        scale = max(height / img.shape[0], width / img.shape[1], 1.0)
        if scale > 1:
            img = cv2.resize(img, (round(img.shape[1] * scale) + 1, round(img.shape[0] * scale) + 1))
        y = int(rng.integers(img.shape[0] - height + 1))
        x = int(rng.integers(img.shape[1] - width + 1))
        preset = ("light", "mixed", "heavy")[int(rng.integers(3))]
        sample = rain.add_rain(np.ascontiguousarray(img[y : y + height, x : x + width]), preset, rng=rng)
        out.append(sample.rainy.transpose(2, 0, 1))
    return np.stack(out).astype(np.float32)


def calibration_sets(data: Path | None) -> dict[str, np.ndarray]:
    """Named calibration sets: the project's default, more and larger synthetic crops, and
    (with ``data``) crops of real photos with every rain preset."""
    from derain_deploy.build import precision
    from derain_deploy.build.verify import rainy_images

    h, w = precision.CALIBRATION_CROP
    sets = {
        "default-24x96": rainy_images(precision.CALIBRATION_FRAMES, h, w, seed=1234)[0],
        "synthetic-64x128": rainy_images(64, 128, 128, seed=1234)[0],
    }
    if data is not None:
        sets["photos-64x128"] = photo_crops(data, 64, 128, 128, seed=4321)
        sets["mixed-96x128"] = np.concatenate([sets["synthetic-64x128"][:32], sets["photos-64x128"][:64]])
    return sets


ROLES = ("fs", "dcdcb.convs", "dcdcb.squeeze", "dcdcb.fusion", "rs", "stage_fusion", "refine")


def variants(data: Path | None, roles: bool) -> list[dict[str, object]]:
    """The variants to measure: {name, calibration set, recipe fields} or {name, nncf: {...}}."""
    base = {"calibration": "default-24x96"}
    out: list[dict[str, object]] = [
        {"name": "project default (MinMax)", **base},
        {"name": "8-bit weights", **base, "reduce_range": False},
        {"name": "per-tensor weights", **base, "per_channel": False},
        {"name": "Q/DQ on Conv only", **base, "op_types": ("Conv",)},
        {"name": "percentile 99.999", **base, "method": "percentile", "percentile": 99.999},
        {"name": "percentile 99.99", **base, "method": "percentile", "percentile": 99.99},
        {"name": "entropy", **base, "method": "entropy"},
        {"name": "64 synthetic 128x128", "calibration": "synthetic-64x128"},
    ]
    if data is not None:
        out += [
            {"name": "64 photo crops", "calibration": "photos-64x128"},
            {"name": "96 mixed crops", "calibration": "mixed-96x128"},
        ]
    if roles:
        out += [{"name": f"float {r}", **base, "float_layers": (r,)} for r in ROLES]
    conv = {"op_types": ("Conv",)}
    out += [  # combinations of the single changes that helped
        {"name": "Conv only + float fs", **base, **conv, "float_layers": ("fs",)},
        {"name": "Conv only + float fs, rs", **base, **conv, "float_layers": ("fs", "rs")},
        {"name": "8-bit weights, Conv only + float fs", **base, **conv, "float_layers": ("fs",),
         "reduce_range": False},
        {"name": "8-bit weights, Conv only + float fs, rs", **base, **conv, "float_layers": ("fs", "rs"),
         "reduce_range": False},
    ]
    if data is not None:
        mixed = {"calibration": "mixed-96x128"}
        out += [
            {"name": "Conv only, 96 mixed crops", **mixed, **conv},
            {"name": "Conv only + float fs, 96 mixed crops", **mixed, **conv, "float_layers": ("fs",)},
            {
                "name": "Conv only + float fs, rs, 96 mixed crops",
                **mixed,
                **conv,
                "float_layers": ("fs", "rs"),
            },
        ]
    out += [
        {"name": "NNCF (overflow fix)", **base, "nncf": {"overflow_fix": "enable"}},
        {"name": "NNCF (no overflow fix)", **base, "nncf": {"overflow_fix": "disable"}},
    ]
    return out


def nncf_quantize(fp32: Path, calib: np.ndarray, overflow_fix: str) -> bytes:
    """QDQ ONNX from ``nncf.quantize`` on the ONNX graph (performance preset)."""
    import nncf
    import onnx
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix

    model = onnx.load(str(fp32))
    name = model.graph.input[0].name
    dataset = nncf.Dataset([{name: f[None]} for f in calib])
    advanced = AdvancedQuantizationParameters(overflow_fix=OverflowFix(overflow_fix))
    q = nncf.quantize(model, dataset, subset_size=len(calib), advanced_parameters=advanced)
    return q.SerializeToString()


def build_variant(v: dict[str, object], proto, fp32: Path, sets: dict[str, np.ndarray]) -> bytes:  # type: ignore[no-untyped-def]
    from derain_deploy.build import onnx_export, precision

    calib = sets[str(v["calibration"])]
    if "nncf" in v:
        return nncf_quantize(fp32, calib, **v["nncf"])  # type: ignore[arg-type]
    fields = {f.name for f in dataclasses.fields(precision.Int8Recipe)}
    recipe = precision.Int8Recipe(**{k: val for k, val in v.items() if k in fields})  # type: ignore[arg-type]
    return onnx_export.serialize(precision.quantize_int8(proto, calib, recipe=recipe))


def parity(out: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    from derain_deploy.build.verify import psnr_rgb

    values = psnr_rgb(out, ref)
    return {"min_db": round(min(values), 2), "mean_db": round(statistics.fmean(values), 2)}


def ov_worker(models: list[str], inputs: str, out_dir: str) -> None:
    """Child process: run each model on OpenVINO CPU (f32 inference precision, 2 threads) under
    the ONEDNN_MAX_CPU_ISA of this process; save outputs and the convolution kernel names."""
    import collections

    import openvino as ov

    core = ov.Core()
    x = np.load(inputs)
    kernels = {}
    for i, model in enumerate(models):
        try:
            c = core.compile_model(
                model, "CPU", {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": 2}
            )
            np.save(Path(out_dir) / f"{i}.npy", np.concatenate([c(f[None])[0] for f in x]))
            types = collections.Counter(
                str(op.get_rt_info()["primitiveType"].astype(str))
                for op in c.get_runtime_model().get_ops()
                if op.get_rt_info()["layerType"].astype(str) == "Convolution"
            )
            kernels[i] = dict(types)
        except Exception as e:  # a cap the CPU lacks, or a model the plugin rejects
            kernels[i] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"}
    (Path(out_dir) / "kernels.json").write_text(json.dumps(kernels))


def run_ov(models: list[Path], inputs: Path, cap: str, tmp: Path) -> tuple[list[np.ndarray | None], dict]:
    out_dir = tmp / f"ov_{cap or 'native'}"
    out_dir.mkdir()
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": cap} if cap else {**os.environ}
    env.pop("ONEDNN_MAX_CPU_ISA", None) if not cap else None
    cmd = [sys.executable, __file__, "--ov-worker", str(inputs), str(out_dir), *map(str, models)]
    subprocess.run(cmd, env=env, check=True)
    kernels = json.loads((out_dir / "kernels.json").read_text())
    outs = [
        np.load(out_dir / f"{i}.npy") if (out_dir / f"{i}.npy").exists() else None for i in range(len(models))
    ]
    return outs, kernels


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--ov-worker":
        ov_worker(sys.argv[4:], sys.argv[2], sys.argv[3])
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="JSON file to write")
    ap.add_argument("--weights", type=Path, default=None, help="default: the bundled weights")
    ap.add_argument("--graph", default="split", choices=("split", "concat"))
    ap.add_argument(
        "--onnx", type=Path, default=None, help="an exported FP32 file of --graph (skips the export)"
    )
    ap.add_argument("--data", type=Path, default=None, help="folder of clean photos (read only)")
    ap.add_argument("--size", type=int, nargs=2, default=(192, 256), metavar=("H", "W"))
    ap.add_argument("--no-roles", action="store_true", help="skip the one-role-in-float sweep")
    ap.add_argument("--only", nargs="*", default=None, help="variant names to run")
    ap.add_argument("--append", action="store_true", help="add the rows to those already in --out")
    ap.add_argument("--caps", nargs="*", default=list(ISA_CAPS))
    args = ap.parse_args()

    import onnx
    import onnxruntime

    from derain_deploy.atomic import write_atomic
    from derain_deploy.bench.machine import machine_info
    from derain_deploy.build import onnx_export, verify
    from derain_deploy.output_guard import OutputGuardError, check_writes
    from derain_deploy.weights import default_weights_path, load_weights

    try:
        check_writes({"--out": args.out}, [args.onnx, args.weights])
    except OutputGuardError as e:
        raise SystemExit(f"error: {e}") from None

    t_start = time.time()
    with tempfile.TemporaryDirectory(prefix="int8-cal-") as tmp_name:
        tmp = Path(tmp_name)
        if args.onnx:
            proto = onnx.load(str(args.onnx))
        else:
            net = load_weights(args.weights or default_weights_path()).float().eval()
            proto = onnx_export.export_fp32(net, graph=args.graph)
        fp32 = tmp / "fp32.onnx"
        fp32.write_bytes(onnx_export.serialize(proto))
        x = check_set(*args.size, args.data)
        np.save(tmp / "check.npy", x)
        ref = np.concatenate([verify.run_onnx(verify.cpu_session(str(fp32), threads=2), f[None]) for f in x])
        sets = calibration_sets(args.data)
        rows, files = [], []
        for v in variants(args.data, not args.no_roles):
            if args.only is not None and v["name"] not in args.only:
                continue
            row: dict[str, object] = {
                k: (list(val) if isinstance(val, tuple) else val) for k, val in v.items()
            }
            t0 = time.time()
            try:
                data = build_variant(v, proto, fp32, sets)
            except Exception as e:
                row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
                print(f"{v['name']}: {row['error']}", flush=True)
                rows.append(row)
                continue
            row["quantize_s"] = round(time.time() - t0, 1)
            path = tmp / f"v{len(files)}.onnx"
            path.write_bytes(data)
            session = verify.cpu_session(str(path), threads=2)
            row["ort"] = parity(np.concatenate([verify.run_onnx(session, f[None]) for f in x]), ref)
            print(f"{v['name']}: ORT {row['ort']}", flush=True)
            row["_file"] = len(files)
            files.append(path)
            rows.append(row)
        kernels = {}
        for cap in args.caps:
            outs, kern = run_ov(files, tmp / "check.npy", cap, tmp)
            label = cap or "native"
            kernels[label] = kern
            for row in rows:
                if "_file" in row:
                    i = row["_file"]
                    out = outs[i]  # type: ignore[index]
                    row[f"ov_{label}"] = parity(out, ref) if out is not None else kern[str(i)]
            print(f"OpenVINO {label} done", flush=True)
        for row in rows:
            i = row.pop("_file", None)
            if i is not None:
                row["ov_kernels"] = {cap: kernels[cap][str(i)] for cap in kernels}
                worst = [row["ort"]["min_db"]] + [  # type: ignore[index]
                    row[f"ov_{c}"]["min_db"]
                    for c in kernels
                    if "min_db" in row[f"ov_{c}"]  # type: ignore[operator,index]
                ]
                row["worst_min_db"] = min(worst)
                row["meets_line"] = bool(row["worst_min_db"] >= LINE_DB and len(worst) == len(kernels) + 1)

    import importlib.metadata as md

    def ver(name: str) -> str | None:
        try:
            return md.version(name)
        except md.PackageNotFoundError:
            return None

    result = {
        "what": "INT8 QDQ variants: RGB PSNR vs FP32 (ONNX Runtime FP32) on the check set",
        "line_db": LINE_DB,
        "graph": args.graph,
        "check_set": {
            "images": len(x),
            "size": list(args.size),
            "data": str(args.data) if args.data else None,
        },
        "calibration_sets": {k: list(v.shape) for k, v in sets.items()},
        "ort_note": f"onnxruntime {onnxruntime.__version__}: MLAS picks kernels by cpuid, no ISA cap",
        "machine": machine_info(),
        "versions": {p: ver(p) for p in ("onnxruntime", "openvino", "nncf", "onnx", "torch")},
        "seconds": round(time.time() - t_start),
        "rows": rows,
    }
    if args.append and args.out.exists():  # rows of an earlier run on the same check set
        earlier = json.loads(args.out.read_text())
        if earlier["check_set"] != result["check_set"] or earlier["graph"] != result["graph"]:
            raise SystemExit(f"error: {args.out} has another check set or graph; cannot append")
        result["rows"] = earlier["rows"] + rows
        result["runs"] = [*earlier.get("runs", [earlier["seconds"]]), result["seconds"]]
    write_atomic(args.out, json.dumps(result, indent=1, default=str) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
