"""Validation figures of trained weights on the held-out data of a training recipe (full images).

Parts: synthetic light and heavy rain (fixed seeds) on the recipe's held-out clean images, the
held-out real pairs, the clean images themselves without rain (how much the model changes
them) and, where the recipe names them (``val.texture``), detailed rain-free photos. For each
part: rainy-input vs derained PSNR_Y/SSIM_Y, the share of images better than their input; for
rain-free parts the PSNR_Y/SSIM_Y of the output against the untouched input.

Each result gets the score of ``trainer.validate.score`` (mean PSNR_Y over light, heavy and
real) and the verdict of ``trainer.validate.verdict`` against ``--baseline`` (default: the first
weights given); ``--install`` refuses weights whose verdict names a reason.

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
from derain_deploy.weights import card_path, default_weights_path, file_sha256, load_weights, save_weights
from trainer.config import load
from trainer.datasets import gather_images, gather_pairs, validation_items
from trainer.validate import evaluate, score, share_worse, verdict


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
    ap.add_argument("--baseline", type=Path,
                    help="weights the others are judged against (default: the first)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.reports:
        if any(r.resolve() == args.out.resolve() for r in args.reports):
            raise SystemExit(f"error: --out {args.out} is one of the reports being merged; name a new file")
        report = merge_reports(args.reports)
        judge(report, args.baseline or Path(next(iter(report["results"]))))
        finish(report, args, args.out)
        return
    if not args.weights:
        ap.error("give weights to evaluate, or --reports to merge")
    cfg = load(args.config)
    v = cfg.val
    items = validation_items(gather_images(v.clean), gather_pairs(v.paired, names=v.paired_names), v.presets,
                             v.seed, crop=0, max_images=args.max_images,
                             texture_files=gather_images(v.texture))
    report: dict[str, object] = {
        "config": args.config, "presets": v.presets, "seed": v.seed, "clean_images": v.clean,
        "texture_images": v.texture,
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
    judge(report, args.baseline or args.weights[0])
    finish(report, args, args.out)


def finish(report: dict, args: argparse.Namespace, out: Path) -> None:
    """Install the chosen weights (which may rename a result, see ``install``), then write the
    report; a refused install still writes it, then stops with the reason."""
    refused = install_refusal(args.install, report) if args.install else None
    if args.install and not refused:
        install(args.install, report, args.note)
    write_json(report, out)
    print(f"wrote {out}")
    if refused:
        raise SystemExit(refused)


def judge(report: dict, baseline: Path) -> None:
    """Add score, share worse and verdict against ``baseline`` to every result, and print them."""
    results = report["results"]
    if str(baseline) not in results:
        raise SystemExit(f"error: the baseline {baseline} was not evaluated in this report")
    base = results[str(baseline)]["metrics"]
    report["baseline"] = str(baseline)
    for path, r in results.items():
        r["score"] = round(score(r["metrics"]), 3)
        r["share_worse"] = round(share_worse(r["metrics"]), 4)
        r["verdict"] = [] if path == str(baseline) else verdict(r["metrics"], base)
        state = "baseline" if path == str(baseline) else ("better" if not r["verdict"] else
                                                           "not better: " + "; ".join(r["verdict"]))
        print(f"{path}: score {r['score']:.3f} dB, {r['share_worse']:.1%} worse than input; {state}")


def merge_reports(paths: list[Path]) -> dict:
    """One report from several of the same setup; each was judged against its own baseline, so the
    merged one is judged again (``judge``)."""
    reports = [json.loads(p.read_text()) for p in paths]
    merged = {k: v for k, v in reports[0].items() if k not in ("results", "baseline")}
    for r in reports[1:]:
        same = {k: r.get(k) == merged[k] for k in merged}
        if not all(same.values()):
            raise SystemExit(f"error: reports differ in {[k for k, ok in same.items() if not ok]}")
    merged["results"] = {k: v for r in reports for k, v in r["results"].items()}
    return merged


SETUP_KEYS = ("config", "presets", "seed", "clean_images", "texture_images", "real_pairs", "metric",
              "baseline")


def install(weights: Path, report: dict, notes: list[str] | None = None) -> None:
    """Copy ``weights`` into the package as the default, and write its model card; refused when
    the report's verdict on them names a reason."""
    refused = install_refusal(weights, report)
    if refused:
        raise SystemExit(refused)
    model = load_weights(weights)
    target = default_weights_path()
    replaced = [k for k in report["results"] if Path(k).resolve() == target.resolve()]
    if replaced and target.is_file():
        rename_result(report, replaced[0], f"{replaced[0]} (sha256 {file_sha256(target)[:12]}, before "
                                           f"{weights.name} was installed)")
    save_weights(model, target, extra={"name": "derain_default", "source": weights.name})
    beside = card_path(weights)
    card = json.loads(beside.read_text()) if beside.is_file() else {}
    card.update({
        "name": "derain_default", "weights": target.name, "sha256": file_sha256(target),
        "trained_as": weights.name,
        "validation": report["results"].get(str(weights), {}).get("metrics"),
        "validation_setup": {k: report.get(k) for k in SETUP_KEYS},
        "compared": {k: r["metrics"] for k, r in report["results"].items()},
        "training_history": notes or [],
    })
    write_json(card, card_path(target))
    print(f"installed {weights} as {target}")


def install_refusal(weights: Path, report: dict) -> str | None:
    """Why ``weights`` may not be installed from this report (not judged, or the verdict's reasons)."""
    reasons = report["results"].get(str(weights), {}).get("verdict")
    if reasons is None:
        return f"error: {weights} was not judged in this report"
    return f"error: not installing {weights}: " + "; ".join(reasons) if reasons else None


def rename_result(report: dict, old: str, new: str) -> None:
    """Give a result a new key (and the baseline with it), keeping the order of the results."""
    report["results"] = {(new if k == old else k): v for k, v in report["results"].items()}
    if report.get("baseline") == old:
        report["baseline"] = new


if __name__ == "__main__":
    main()
