"""``derain-bench``: throughput of backends against eager FP32 and the machine's floor.

Without ``--full``: one resolution, short budgets, the eager reference, the fastest FP32
backend and the fastest precision (:mod:`.bench.quick`); ``--full``: the matrix per device."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .atomic import write_atomic
from .backend_spec import EAGER_FP32, BackendSpec, SpecError, load_model, parse_specs, runnable_here
from .backends import registry
from .bench import BenchSpec, run_bench
from .bench import quick as quick_mode
from .output_guard import check_writes
from .user_errors import user_errors
from .weights import default_weights_path

DEFAULT_BACKENDS = registry.default_sets()  # per --device: each backend's descriptor lists its rows


def default_backends(device: str) -> list[str]:
    """The default set for ``device``, less what cannot run well here (said so)."""
    return runnable_here(DEFAULT_BACKENDS[device], lambda line: click.echo(line, err=True))


def parse_resolution(text: str) -> tuple[int, int]:
    h, sep, w = text.lower().partition("x")
    if not sep or not h.isdigit() or not w.isdigit() or int(h) < 1 or int(w) < 1:
        raise click.BadParameter(f"{text!r} is not HEIGHTxWIDTH (e.g. 480x640)")
    return int(h), int(w)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-b",
    "--backend",
    "backends",
    multiple=True,
    metavar="SPEC",
    help="Backend spec, repeatable: torch, torch:cl, torch:bf16:cl, ort:split, ort:int8:split, ov:split, "
    "ov:int8:split, ov:bf16:split, ort:fp16@cuda, trt:fp16:graphs@cuda, ort=model.onnx ... "
    "(default: eager FP32, the fastest FP32 backend and the fastest precision; --full: a set per --device).",
)
@click.option(
    "--full",
    is_flag=True,
    help="Today's matrix: the default set per --device at 256x256, 480x640, 720x1280 (and 1080x1920 on "
    "a GPU), 8 s per row, at least 3 reps. Without it: one resolution (360x640), 1.5 s per row, >= 1 rep.",
)
@click.option(
    "--precision",
    type=click.Choice(["fastest"]),
    help="fastest: add the row of the fastest precision (among the -b backends, else all) this device "
    "runs natively within the quality budget (>= 45 dB from eager FP32, <= 0.1 dB PSNR_Y loss), "
    "checked once on a fixed set and cached (the default rows include it).",
)
@click.option(
    "--device",
    type=click.Choice(["cpu", "cuda"]),
    default="cpu",
    show_default=True,
    help="Device for specs that name none (and which default set to run).",
)
@click.option(
    "-r",
    "--resolution",
    "resolutions",
    multiple=True,
    metavar="HxW",
    callback=lambda _ctx, _param, values: [parse_resolution(v) for v in values],
    help="Repeatable; default 360x640 (--full: 256x256, 480x640, 720x1280, and 1080x1920 on a GPU).",
)
@click.option(
    "-n", "--batch", "batches", multiple=True, type=click.IntRange(min=1), help="Batch sizes (default 1)."
)
@click.option(
    "--weights", type=click.Path(dir_okay=False), help="Weights file (default: the bundled weights)."
)
@click.option("--random-weights", is_flag=True, help="Time a seeded untrained model (no weights needed).")
@click.option(
    "--budget",
    type=click.FloatRange(min=0),
    help="Seconds of timed repetitions per row, after warm-up [default: 1.5; --full: 8].",
)
@click.option("--min-reps", type=click.IntRange(min=1), help="[default: 1; --full: 3]")
@click.option("--max-reps", type=click.IntRange(min=1), help="[default: 20; --full: 100]")
@click.option(
    "--warmup", type=click.IntRange(min=1), default=1, show_default=True, help="Warm-up calls per row."
)
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads (default: all usable cores).")
@click.option(
    "--probe-size", type=click.IntRange(min=64), default=2048, show_default=True, help="Matmul probe N."
)
@click.option(
    "--check-parity", is_flag=True, help="Compare every output with eager FP32; exit 1 on a failure."
)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write the full report as JSON.")
@click.option("--markdown", "md_path", type=click.Path(dir_okay=False), help="Write a Markdown table.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), help="Write a PNG plot (matplotlib).")
@click.option("-q", "--quiet", is_flag=True, help="No progress lines.")
def main(
    backends: tuple[str, ...],
    full: bool,
    precision: str | None,
    device: str,
    resolutions: list[tuple[int, int]],
    batches: tuple[int, ...],
    weights: str | None,
    random_weights: bool,
    budget: float | None,
    min_reps: int | None,
    max_reps: int | None,
    warmup: int,
    threads: int | None,
    probe_size: int,
    check_parity: bool,
    json_path: str | None,
    md_path: str | None,
    plot_path: str | None,
    quiet: bool,
) -> None:
    """Measure frames/s, latency percentiles, the speed-up over eager FP32 PyTorch and the floor
    ratios for each backend and size. Rows print as they finish; then the table, and where the
    files went.

    By default: 360x640, short budgets, eager FP32 and the fastest FP32 and fastest precision rows
    (under a minute on a 2-core CPU; the first run for given weights on a machine also exports and
    checks the candidates once, cached). --full: the matrix.

    x floor (what targets use): time / the FLOP at the device's FP32 peak read from its properties
    (cores, clock, vector width, FMA ports; a GPU's SMs and clock); it does not move between runs.
    x probe: time / the FLOP at the rate of a matmul probe measured in the same run."""
    mode = quick_mode.mode(full)
    budget, min_reps = mode.budget_s if budget is None else budget, min_reps or mode.min_reps
    max_reps = max_reps or max(mode.max_reps, min_reps)
    say = lambda line: click.echo(line, err=True)  # noqa: E731
    try:
        texts = list(backends or (default_backends(device) if full else []))
        specs = parse_specs(texts, default_device=device)
        writes = {"--json": json_path, "--markdown": md_path, "--plot": plot_path}
        check_writes(writes, [weights or (None if random_weights else default_weights_path()),
                              *(s.file for s in specs)])  # fmt: skip
        if max_reps < min_reps:
            raise SpecError(f"--max-reps {max_reps} is below --min-reps {min_reps}")
        model, source = load_model(weights, random_weights)
        log = None if quiet else say
        workdir, later = None, None  # the bench's own temporary folder, unless the candidates' are reused
        if precision == "fastest" or not specs:
            from . import fastest

            workdir = fastest.work_dir(model)
            named = list(specs)

            def later() -> list[BackendSpec]:  # after the eager row: the choice takes longer
                chosen, choice, _ = fastest.with_fastest(named, model, device, say, log,
                                                         build_int8=precision == "fastest")  # fmt: skip
                # the quick rows: the fastest FP32 backend and the fastest precision
                return chosen if named else quick_mode.quick_rows(choice.best_fp32.spec, choice.chosen.spec)

            reference = EAGER_FP32.with_device(device)  # where the choice runs: probed, with its reference
            specs = [*specs, *([] if reference in specs else [reference])]
        spec = BenchSpec(
            backends=specs,
            resolutions=resolutions or mode.resolutions,
            batch_sizes=list(batches or [1]),
            warmup=warmup,
            min_reps=min_reps,
            max_reps=max_reps,
            budget_s=budget,
            threads=threads,
            check_parity=check_parity,
            probe_size=probe_size,
            probe_repeats=mode.probe_repeats,
        )
        report = run_bench(spec, model, log=log, weights=source, workdir=workdir, later=later)
        click.echo(report.table())
        if json_path:
            write_atomic(json_path, report.to_json() + "\n")
        if md_path:
            write_atomic(md_path, report.to_markdown())
        if plot_path:
            report.plot(Path(plot_path))
        wrote = [f"{flag[2:]} {path}" for flag, path in writes.items() if path]
        say(f"wrote {', '.join(wrote)}" if wrote else "wrote no files (--json, --markdown, --plot do)")
    except user_errors() as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(1)
    if check_parity and not report.parity_ok:
        failed = sorted({p.label for p in report.parity if not p.passed})
        click.echo(f"error: parity check failed for {', '.join(failed)}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
