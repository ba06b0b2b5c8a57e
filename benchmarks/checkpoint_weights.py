"""Weights file (safetensors, config inside) of a run that has not ended, from its checkpoint: the
weight average by default, ``--raw`` for the raw weights; its model card beside it (the name's
``.card.json``). Validate it with
``benchmarks/validate_default.py`` and bundle it with its ``--install``.

    python benchmarks/checkpoint_weights.py runs/v2/checkpoint.pt runs/v2/v2_it20000.safetensors
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from derain_deploy.atomic import write_atomic
from derain_deploy.model import DerainNet
from derain_deploy.weights import card_path, file_sha256, save_weights
from trainer.checkpoint import checkpoint_weights, code_version, read_checkpoint
from trainer.errors import TrainingError


def card(checkpoint: Path, weights: Path, model: DerainNet, meta: dict[str, str]) -> dict[str, object]:
    """The model card of a checkpoint's weights: the recipe from the checkpoint's config, where it
    stood (iterations, wall time) and which weights (average or raw)."""
    state = read_checkpoint(checkpoint, "checkpoint weights")
    cfg = state["config"]
    return {
        "name": cfg["train"]["name"], "weights": weights.name, "sha256": file_sha256(weights),
        "model": model.config.to_dict(), "parameters": model.num_parameters(),
        "data": {k: cfg["data"].get(k) for k in ("clean", "paired", "exclude", "rain", "rain_mix",
                                                 "paired_share", "texture_share", "crop")},
        "recipe": {"loss": cfg["loss"], "optim": cfg["optim"],
                   **{k: cfg["train"].get(k) for k in ("iterations", "batch", "seed", "bf16",
                                                       "stage_schedule", "ema_decay")}},
        "iterations": int(meta["iterations"]), "wall_time_s": round(float(state["wall_s"]), 1),
        "weights_taken": meta["weights"], "checkpoint_of": meta["checkpoint_of"],
        "code_version": code_version(), "torch": torch.__version__,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("out", type=Path, help="the .safetensors file to write (never the checkpoint itself)")
    ap.add_argument("--raw", action="store_true", help="the raw weights, not the average")
    args = ap.parse_args(argv)
    if args.out.suffix != ".safetensors":
        print(f"error: {args.out}: the weights file must end in .safetensors", file=sys.stderr)
        return 2
    card_file = card_path(args.out)
    for path in (args.out, card_file):
        if path.exists():
            print(f"error: {path} exists; not overwriting it", file=sys.stderr)
            return 2
    try:
        model, meta = checkpoint_weights(args.checkpoint, average=not args.raw)
    except TrainingError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    save_weights(model, args.out, extra={**meta, "trainer": code_version()})
    write_atomic(card_file, json.dumps(card(args.checkpoint, args.out, model, meta), indent=2) + "\n")
    print(f"wrote {args.out} and {card_file.name}: iteration {meta['iterations']}, {meta['weights']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
