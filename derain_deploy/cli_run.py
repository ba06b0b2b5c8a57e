"""``derain-run``: derain images, folders, videos, streams or a camera. Thin: parse, call, print."""

from __future__ import annotations

import json
import sys

import click

from .cli_options import PRECISIONS, backend_option, max_pixels_option
from .distributed import is_job, is_ray_address, run_job
from .job import JobOptions, run_inputs
from .live import wants_live
from .signals import exit_status, signal_name, stop_on_signals
from .user_errors import user_errors

SUMMARY_PREFIXES = ("summary:",)


def _one_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("inputs", nargs=-1)
@click.option(
    "-o", "--output", help="Output file, or folder (default: <name>.derained.<ext> beside each input)."
)
@backend_option("auto: TensorRT engine > ONNX Runtime CUDA > OpenVINO (CPU, if installed) > ORT CPU.")
@click.option(
    "--device",
    default="auto",
    show_default=True,
    help="auto (a named backend's best device), cpu, cuda[:N] (tensorrt[:N]: ORT's TensorRT EP).",
)
@click.option(
    "--precision",
    type=click.Choice([*PRECISIONS, "fastest"]),
    help="Default: the model file's own (fp32 for weights). fastest: the fastest precision (and, with "
    "--backend auto, backend) that this device runs natively within 45 dB of FP32 and 0.1 dB PSNR_Y, "
    "checked on a fixed set once and cached; it says what it picked.",
)
@click.option(
    "--model", help="Weights (.safetensors), ONNX (.onnx) or TensorRT engine (.engine); default: bundled."
)
@click.option(
    "--batch", type=click.IntRange(min=1), default=1, show_default=True, help="Frames per inference call."
)
@click.option(
    "--tile", "--max-tile", "tile", type=click.IntRange(min=1), help="Tile frames larger than NxN pixels."
)
@click.option("--compare", is_flag=True, help="Also write input|output side by side (<name>.compare.<ext>).")
@click.option("--stages-preview", is_flag=True, help="Also write a grid of the stage outputs per image.")
@click.option(
    "--quality", type=click.IntRange(0, 51), default=18, show_default=True, help="H.264 crf (lower: better)."
)
@click.option(
    "--realtime/--no-realtime",
    default=None,
    help="Live: drop the frames the backend has no time for, take the newest [default: on for cameras/URLs].",
)
@click.option(
    "--reconnect", type=click.IntRange(min=0), default=5, show_default=True,
    help="Reopen a live input that stalls or ends, up to N times in a row (with backoff).",
)
@click.option("--bitrate", help="Live outputs (rtsp/rtmp/srt/udp URL, .m3u8): bitrate such as 2M, not crf.")
@click.option("--crf", type=click.IntRange(0, 51), help="Live outputs: x264 crf [default: 23].")
@click.option(
    "--status-seconds", type=click.FloatRange(min=0), default=10, show_default=True,
    help="Live runs: a status line (fps, drops, latency) every N seconds; 0: none.",
)
@click.option("--skip-bad-frames", is_flag=True, help="Skip (and count) corrupt frames instead of stopping.")
@max_pixels_option("Refuse images and frames with more pixels (read from the header; 0: no limit).")
@click.option("--camera", type=click.IntRange(min=0), help="Read camera N instead of INPUTS.")
@click.option("--manifest", "manifests", multiple=True, help="File listing inputs, one a line (# comments).")
@click.option(
    "--ray",
    "ray",
    is_flag=False,
    flag_value="local",
    metavar="[ADDRESS]",
    help="Run on Ray: the cluster at ADDRESS (HOST:6379, auto), or a local Ray without one.",
)
@click.option("--workers", type=click.IntRange(min=1), help="Ray workers [default: 1 per GPU, else per CPU].")
@click.option("--retries", type=click.IntRange(min=0), default=2, show_default=True, help="Retries an input.")
@click.option(
    "--segment-seconds",
    type=click.FloatRange(min=0),
    help="With --ray, cut videos longer than this into segments [default: 600; 0: never].",
)
@click.option("--json", "as_json", is_flag=True, help="Print the job's summary as JSON on stdout.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar; only the summary and errors print.")
@stop_on_signals()  # SIGTERM and SIGHUP raise KeyboardInterrupt, as Ctrl-C does
def main(
    inputs: tuple[str, ...],
    quiet: bool,
    manifests: tuple[str, ...],
    ray: str | None,
    workers: int | None,
    retries: int,
    segment_seconds: float | None,
    as_json: bool,
    **kwargs: object,
) -> None:
    """Derain INPUTS: image files, folders, glob patterns, video files or stream URLs.

    Several inputs (or --manifest, --ray, --json) make a job: every input is done even when
    others fail, each finished output is recorded in .derain-journal.jsonl beside it and skipped
    when the job runs again, and a summary lists every input (exit code 1 if any failed)."""
    options = JobOptions(progress=not quiet and not as_json, **kwargs)  # type: ignore[arg-type]

    def log(text: str) -> None:  # --quiet keeps only the summary lines
        if not quiet or text.startswith(SUMMARY_PREFIXES):
            click.echo(text, err=True)

    if ray is not None and not is_ray_address(ray):  # "--ray INPUT": an input, not an address
        inputs, ray = (ray, *inputs), "local"
    live = wants_live(inputs, options) and not (manifests or ray or as_json)  # streams run together
    job = is_job(inputs, manifests, ray, as_json) and not live
    try:
        if kwargs.get("precision") == "fastest":
            from .fastest import run_choice

            kwargs.update(run_choice(str(kwargs["backend"]), kwargs["model"], str(kwargs["device"]),  # type: ignore[arg-type]
                                     log=lambda line: click.echo(line, err=True)))  # fmt: skip
            options = JobOptions(progress=not quiet and not as_json, **kwargs)  # type: ignore[arg-type]
        if job:
            summary = run_job(
                list(inputs),
                options,
                manifests=manifests,
                ray=ray,
                workers=workers,
                retries=retries,
                segment_seconds=segment_seconds,
                log=log,
            )
        else:
            results = run_inputs(list(inputs), options, log=log)
    except KeyboardInterrupt as e:  # Ctrl-C, SIGTERM, SIGHUP
        closed = getattr(e, "outputs_closed", False)  # live runs close their outputs cleanly
        done = "the live outputs were closed" if closed else "the unfinished output was removed"
        click.echo(f"error: interrupted ({signal_name(e)}); {done}", err=True)
        sys.exit(exit_status(e))
    except user_errors(ValueError) as e:
        click.echo(f"error: {_one_line(e)}", err=True)
        sys.exit(1)
    if not job:
        for stats in results:
            if stats.output:
                click.echo(stats.output)
        return
    if as_json:
        click.echo(json.dumps(summary.to_dict(), indent=2))
    else:
        click.echo(summary.describe(), err=True)
        for item in summary.items:
            if item.status in ("done", "skipped") and item.output:
                click.echo(item.output)
    if not summary.ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
