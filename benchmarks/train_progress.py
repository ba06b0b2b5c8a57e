"""The README's progress table of a training run: its periodic validation curve (iteration, wall
hours, stages), and its averaged weights' curve where it has one, beside the bundled weights (or
``--baseline`` weights) on the same validation images.

    python benchmarks/train_progress.py runs/v2 [--config trainer/configs/default_v2.toml] \
        [--baseline stage5.safetensors --baseline-name "stage-5 weights"]

Run from the repository root (the recipe's data paths are relative to it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from derain_deploy.weights import default_weights_path, load_weights
from trainer.config import load
from trainer.loop import build_data
from trainer.runlog import markdown, part_values, summarize
from trainer.validate import evaluate, flat


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--config", default="trainer/configs/default_v2.toml")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--baseline", type=Path, help="weights for the first row (default: the bundled ones)")
    ap.add_argument("--baseline-name", default="bundled weights")
    ap.add_argument("--every", type=int, default=0,
                    help="rows at multiples of this iteration only (and the last)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    try:
        curve = summarize(args.run)
        curves = {args.run.name: curve}
        if (args.run / "val_ema.csv").is_file():  # the averaged weights' curve (train.ema_decay)
            curves[f"{args.run.name} (ema)"] = summarize(args.run, "val_ema.csv")
        _, items = build_data(load(args.config))
    except (OSError, ValueError, KeyError) as e:
        sys.exit(f"error: {e}")
    baseline = part_values(flat(evaluate(load_weights(args.baseline or default_weights_path()), items)))
    print(markdown(curves, baseline, args.baseline_name, args.every), end="")
    print(f"\n{curve['iterations']:,} iterations in {curve['wall_h']:.2f} wall hours "
          f"({curve['it_per_s']:.3f} it/s over the run)")


if __name__ == "__main__":
    main()
