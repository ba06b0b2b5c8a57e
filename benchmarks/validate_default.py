"""Validation figures of trained weights on the held-out data of a training recipe (full images).

Parts: synthetic light and heavy rain (fixed seeds) on the recipe's held-out clean images, the
held-out real pairs, and the clean images themselves without rain (how much the model changes
them). For each part: rainy-input vs derained PSNR_Y/SSIM_Y, the share of images better than
their input; for clean images the PSNR_Y/SSIM_Y of the output against the untouched input.

    python benchmarks/validate_default.py runs/a/a.safetensors [runs/b/checkpoint.pt ...] \
        [--config trainer/configs/default.toml] [--out benchmarks/results/validate_default.json]
        [--install runs/a/a.safetensors]   # copy these weights + card into derain_deploy/weights/

Run from the repository root (the recipe's data paths are relative to it).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from derain_deploy.atomic import write_atomic
from derain_deploy.model import DerainConfig, DerainNet
from derain_deploy.weights import default_weights_path, file_sha256, load_weights, save_weights
from trainer.config import load
from trainer.datasets import gather_images, gather_pairs, validation_items
from trainer.validate import evaluate


def load_any(path: Path) -> DerainNet:
    """A safetensors weights file, or a trainer checkpoint.pt (read with weights_only=True)."""
    if path.suffix == ".pt":
        state = torch.load(path, map_location="cpu", weights_only=True)
        model = DerainNet(DerainConfig.from_dict(state["config"]["model"]))
        model.load_state_dict(state["model"])
        model.extra_iteration = int(state["iteration"])  # type: ignore[attr-defined]
        return model.eval()
    return load_weights(path)


def write_json(obj: object, path: Path) -> None:
    write_atomic(path, json.dumps(obj, indent=2) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights", nargs="*", type=Path)
    ap.add_argument("--reports", nargs="+", type=Path, default=[],
                    help="merge earlier reports (e.g. from parallel runs) instead of evaluating again")
    ap.add_argument("--config", default="trainer/configs/default.toml")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/validate_default.json"))
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--max-images", type=int, default=0, help="per part (0: all)")
    ap.add_argument("--install", type=Path, help="weights to install as the bundled default (with its card)")
    ap.add_argument("--note", action="append", default=[], help="a line for the card's training_history")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.reports:
        report = merge_reports(args.reports)
        write_json(report, args.out)
        print(f"wrote {args.out}")
        if args.install:
            install(args.install, report, args.note)
        return
    if not args.weights:
        ap.error("give weights to evaluate, or --reports to merge")
    cfg = load(args.config)
    v = cfg.val
    items = validation_items(gather_images(v.clean), gather_pairs(v.paired, names=v.paired_names), v.presets,
                             v.seed, crop=0, max_images=args.max_images)
    report: dict[str, object] = {
        "config": args.config, "presets": v.presets, "seed": v.seed, "clean_images": v.clean,
        "real_pairs": v.paired_names, "metric": "PSNR_Y/SSIM_Y (BT.601 Y, peak 255, 11x11 Gaussian SSIM)",
        "results": {},
    }
    for path in args.weights:
        t = time.time()
        model = load_any(path)
        metrics = evaluate(model, items)
        report["results"][str(path)] = {  # type: ignore[index]
            "iteration": getattr(model, "extra_iteration", None), "config": model.config.to_dict(),
            "metrics": metrics, "eval_s": round(time.time() - t, 1),
        }
        print(f"{path}:")
        for part, d in metrics.items():
            print(f"  {part:16s} " + ", ".join(f"{k} {val:.4g}" for k, val in d.items()))
    write_json(report, args.out)
    print(f"wrote {args.out}")
    if args.install:
        install(args.install, report, args.note)


def merge_reports(paths: list[Path]) -> dict:
    reports = [json.loads(p.read_text()) for p in paths]
    merged = {k: v for k, v in reports[0].items() if k != "results"}
    for r in reports[1:]:
        same = {k: r[k] == merged[k] for k in merged}
        if not all(same.values()):
            raise SystemExit(f"error: reports differ in {[k for k, ok in same.items() if not ok]}")
    merged["results"] = {k: v for r in reports for k, v in r["results"].items()}
    return merged


def install(weights: Path, report: dict, notes: list[str] | None = None) -> None:
    """Copy ``weights`` into the package as the default, and write its model card."""
    model = load_weights(weights)
    target = default_weights_path()
    save_weights(model, target, extra={"name": "derain_default", "source": weights.name})
    card_path = weights.with_name(weights.name.replace(".safetensors", ".card.json"))
    card = json.loads(card_path.read_text()) if card_path.is_file() else {}
    card.update({
        "name": "derain_default", "weights": target.name, "sha256": file_sha256(target),
        "trained_as": weights.name,
        "validation": report["results"].get(str(weights), {}).get("metrics"),
        "validation_setup": {k: report[k] for k in ("config", "presets", "seed", "clean_images", "real_pairs",
                                                    "metric")},
        "compared": {k: r["metrics"] for k, r in report["results"].items()},
        "training_history": notes or [],
    })
    write_json(card, target.with_name("derain_default.card.json"))
    print(f"installed {weights} as {target}")


if __name__ == "__main__":
    main()
