"""Weights file (safetensors, config inside) of a run that has not ended, from its checkpoint: the
weight average by default, ``--raw`` for the raw weights. Validate it with
``benchmarks/validate_default.py`` and bundle it with its ``--install``.

    python benchmarks/checkpoint_weights.py runs/v2/checkpoint.pt runs/v2/v2_it20000.safetensors
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from derain_deploy.weights import save_weights
from trainer.checkpoint import checkpoint_weights, code_version
from trainer.errors import TrainingError


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("out", type=Path, help="the .safetensors file to write (never the checkpoint itself)")
    ap.add_argument("--raw", action="store_true", help="the raw weights, not the average")
    args = ap.parse_args(argv)
    if args.out.suffix != ".safetensors":
        print(f"error: {args.out}: the weights file must end in .safetensors", file=sys.stderr)
        return 2
    if args.out.exists():
        print(f"error: {args.out} exists; not overwriting it", file=sys.stderr)
        return 2
    try:
        model, meta = checkpoint_weights(args.checkpoint, average=not args.raw)
    except TrainingError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    save_weights(model, args.out, extra={**meta, "trainer": code_version()})
    print(f"wrote {args.out}: iteration {meta['iterations']}, {meta['weights']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
