"""``derain-train``: train the deraining model from a config file (TOML or YAML)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from derain_deploy.output_guard import check_writes
from derain_deploy.user_errors import user_errors

from .config import Config, ConfigError, load
from .datasets import DataError
from .loop import CHECKPOINT, TrainingError, TrainingInterruptedError, train
from .losses import LossError


def check_run_writes(cfg: Config) -> None:
    """Before any work: no file the run writes in ``train.out`` is a file it reads (``train.init``,
    the VGG weights, a validation image), and ``train.name`` keeps them inside ``train.out``."""
    out, name = Path(cfg.train.out), cfg.train.name
    files = [f"{name}.safetensors", f"{name}.card.json", CHECKPOINT, "log.csv", "val.csv"]
    writes = {f"train.out/{f}": out / f for f in files}
    check_writes(writes, [cfg.train.init, cfg.loss.vgg_weights, *cfg.val.clean, *cfg.val.texture], within=out)


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
        check_run_writes(cfg)
        weights = train(cfg, resume=resume, progress=not no_progress)
    except TrainingInterruptedError as e:
        click.echo(f"stopped: {e}", err=True)
        sys.exit(130)
    except user_errors(ConfigError, DataError, LossError, TrainingError) as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(1)
    click.echo(f"weights: {weights}")
    click.echo(f"model card: {weights.with_suffix('').with_suffix('.card.json')}")


if __name__ == "__main__":
    main()
