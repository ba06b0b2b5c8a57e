"""``derain-serve``: the model behind an HTTP endpoint on Ray Serve. Thin: parse, start, wait."""

from __future__ import annotations

import sys
import threading

import click

from .cli_options import PRECISIONS, backend_option, max_pixels_option
from .signals import exit_status, stop_on_signals
from .user_errors import user_errors


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@backend_option("As derain-run: auto picks TensorRT engine > ORT CUDA > OpenVINO > ORT CPU.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda[:N] (as derain-run).")
@click.option("--precision", type=click.Choice(PRECISIONS), help="Default: the model's")
@click.option("--model", help="Weights (.safetensors), ONNX (.onnx) or TensorRT engine; default: bundled.")
@click.option("--replicas", type=click.IntRange(min=1), help="Replicas [default: one per GPU, else 1].")
@click.option(
    "--max-batch", type=click.IntRange(min=1), default=8, show_default=True, help="Frames per backend call."
)
@click.option(
    "--batch-wait-ms",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help="How long a batch waits for more same-size frames.",
)
@click.option("--tile", type=click.IntRange(min=1), help="Tile frames larger than NxN pixels.")
@max_pixels_option("Refuse larger images with 413 (from the header, before decoding; 0: no limit).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: all).")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--address", help="Join the Ray cluster at ADDRESS (HOST:6379, auto) instead of a local Ray.")
@click.option("--num-cpus", type=click.IntRange(min=1), help="CPUs of the local Ray [default: all].")
@click.option(
    "--replica-cpus",
    type=click.IntRange(min=1),
    help="CPUs (and backend threads) per replica [default: local Ray's CPUs / replicas; 1 on a cluster].",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(1, 65535),
    help="Port of the local Ray's Prometheus metrics (Ray Serve's and derain_*) [default: Ray's choice].",
)
@click.option(
    "--ready-timeout", type=click.FloatRange(min=1), default=300, show_default=True, help="Seconds to start."
)
@stop_on_signals()
def main(
    host: str,
    port: int,
    replicas: int | None,
    address: str | None,
    num_cpus: int | None,
    replica_cpus: int | None,
    metrics_port: int | None,
    ready_timeout: float,
    **kwargs: object,
) -> None:
    """Serve the deraining model: POST an image to /v1/derain, get the derained image back.

    GET / is a page to try it in a browser; GET /healthz and /readyz for probes."""
    from .serve.options import ServeOptions
    from .serve.server import RayOptions, ServeError, start

    kwargs["max_pixels"] = kwargs["max_pixels"] or None
    options = ServeOptions(**kwargs)  # type: ignore[arg-type]
    ray_options = RayOptions(
        address=address, num_cpus=num_cpus, metrics_port=metrics_port, replica_cpus=replica_cpus
    )
    try:
        server = start(options, host, port, replicas, ray_options, ready_timeout_s=ready_timeout)
    except KeyboardInterrupt as e:
        click.echo("error: interrupted while starting", err=True)
        sys.exit(exit_status(e))
    except user_errors(ServeError, ValueError) as e:
        click.echo(f"error: {' '.join(str(e).split())}", err=True)
        sys.exit(1)
    info = server.info
    click.echo(
        f"derain-serve: {server.url} ({server.replicas} replica(s), {info.get('backend')} on "
        f"{info.get('device')}, {info.get('precision')}); POST {server.url}/v1/derain; Ctrl-C stops",
        err=True,
    )
    try:
        with stop_on_signals():  # again: ray.init replaced the SIGTERM handler with its own
            threading.Event().wait()
    except KeyboardInterrupt as e:
        click.echo("derain-serve: stopping", err=True)
        server.stop()
        sys.exit(0 if exit_status(e) in (130, 143) else exit_status(e))
