"""``derain-train``: train the deraining model from a config file (TOML or YAML)."""

from __future__ import annotations

import sys

import click

from derain_deploy.pairs import LayoutError

from .config import ConfigError, load
from .datasets import DataError
from .loop import TrainingError, TrainingInterruptedError, train
from .losses import LossError


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("config", type=click.Path(dir_okay=False), required=False)
@click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
              help="Override a config value, e.g. --set train.iterations=2000 (repeatable).")
@click.option("--out", help="Run folder (train.out).")
@click.option("--iterations", type=int, help="Number of iterations (train.iterations).")
@click.option("--seed", type=int, help="Random seed (train.seed).")
@click.option("--threads", type=int, help="CPU threads for torch (train.threads).")
@click.option("--resume", is_flag=True, help="Continue the run in the run folder from its checkpoint.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def main(config: str | None, overrides: tuple[str, ...], out: str | None, iterations: int | None,
         seed: int | None, threads: int | None, resume: bool, no_progress: bool) -> None:
    """Train on the data CONFIG names; writes <out>/<name>.safetensors and a model card."""
    extra = list(overrides)
    for key, value in (("train.out", out), ("train.iterations", iterations), ("train.seed", seed),
                       ("train.threads", threads)):
        if value is not None:
            extra.append(f"{key}={value}")
    try:
        cfg = load(config, extra)
        weights = train(cfg, resume=resume, progress=not no_progress)
    except TrainingInterruptedError as e:
        click.echo(f"stopped: {e}", err=True)
        sys.exit(130)
    except (ConfigError, DataError, LayoutError, LossError, TrainingError) as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(1)
    click.echo(f"weights: {weights}")
    click.echo(f"model card: {weights.with_suffix('').with_suffix('.card.json')}")


if __name__ == "__main__":
    main()
