"""``derain-eval DATASET``: PSNR/SSIM of backends on a paired dataset, next to the rainy input's."""

from __future__ import annotations

import sys

import click

from .atomic import write_atomic
from .backend_spec import load_model, open_spec, parse_specs
from .cli_options import max_pixels_option
from .evaluate import EvalError, evaluate
from .pairs import LAYOUTS
from .user_errors import user_errors
from .weights import default_weights_path


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("dataset", type=click.Path())
@click.option(
    "-b",
    "--backend",
    "backends",
    multiple=True,
    metavar="SPEC",
    help="Backend spec, repeatable (see derain-bench --help): torch, ort:split, ort:int8:split, "
    "ov:int8:split, ort=model.onnx ... Default: torch.",
)
@click.option(
    "--device",
    type=click.Choice(["cpu", "cuda"]),
    default="cpu",
    show_default=True,
    help="Device for specs that name none.",
)
@click.option(
    "--precision",
    type=click.Choice(["fastest"]),
    help="fastest: add the column of the fastest precision (among the -b backends, else all) this device "
    "runs natively within 45 dB of eager FP32 and 0.1 dB PSNR_Y (see derain-bench --help).",
)
@click.option(
    "--layout", type=click.Choice(LAYOUTS), default="auto", show_default=True, help="Dataset layout."
)
@click.option(
    "--weights", type=click.Path(dir_okay=False), help="Weights file (default: the bundled weights)."
)
@click.option("--limit", type=click.IntRange(min=1), help="Evaluate the first N pairs only.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="Write per-image figures as CSV.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write summary + per-image JSON.")
@click.option(
    "--save-outputs",
    type=click.Path(file_okay=False),
    help="Write each backend's outputs as PNG under DIR/<backend>/ (outside the dataset).",
)
@max_pixels_option("Skip images with more pixels (read from the header; 0: no limit).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def main(
    dataset: str,
    backends: tuple[str, ...],
    device: str,
    precision: str | None,
    layout: str,
    weights: str | None,
    limit: int | None,
    csv_path: str | None,
    json_path: str | None,
    save_outputs: str | None,
    no_progress: bool,
    max_pixels: int,
) -> None:
    """PSNR/SSIM (Y channel, published convention, and RGB) of each backend on DATASET, a paired
    folder in any layout derain-train reads (rainy/+norain/, Rain100 files, DDN, left|right)."""
    try:
        specs = parse_specs(list(backends or ["torch"]), default_device=device)
        model, source = load_model(weights)
        opener = open_spec
        if precision == "fastest":
            from .fastest import with_fastest

            say = lambda line: click.echo(line, err=True)  # noqa: E731
            specs, _, work = with_fastest(list(parse_specs(list(backends), default_device=device)), model,
                                          device, say, say)  # fmt: skip
            specs = specs if backends else list(dict.fromkeys([*parse_specs(["torch"], device), *specs]))
            opener = lambda s, m, _w: open_spec(s, m, work)  # noqa: E731  (the candidates' exports)
        report = evaluate(
            dataset,
            specs,
            model,
            layout=layout,
            save_outputs=save_outputs,
            limit=limit,
            progress=not no_progress,
            weights=source,
            max_pixels=max_pixels,
            writes={"--csv": csv_path, "--json": json_path},
            inputs=[weights or default_weights_path()],
            opener=opener,
        )
        click.echo(report.table())
        if csv_path:
            write_atomic(csv_path, report.to_csv())
        if json_path:
            write_atomic(json_path, report.to_json() + "\n")
    except user_errors(EvalError) as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
