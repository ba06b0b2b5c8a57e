"""The one call behind ``derain-run`` with many inputs: expand them, then run the job here or on Ray."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path

from ..job import JobOptions
from .driver import JobSettings, run_local
from .manifest import expand_inputs
from .ray_runner import run_many
from .summary import JobSummary

LOCAL = "local"  # ``--ray`` without an address: start a local Ray
SEGMENT_SECONDS = 600.0  # ``--ray`` default: videos longer than this are cut into segments
_ADDRESS = re.compile(r"^(auto|local|ray://\S+|[\w.\-\[\]:]+:\d+)$")


def is_ray_address(text: str) -> bool:
    """``auto``, ``local``, ``ray://HOST:PORT`` or ``HOST:PORT``, and not a file that exists."""
    return bool(_ADDRESS.match(text)) and not Path(text).exists()


def is_job(inputs: Sequence[str], manifests: Sequence[str], ray: str | None, as_json: bool) -> bool:
    """Whether ``derain-run`` runs a job (journal, retries, summary) rather than one input."""
    return bool(ray or manifests or as_json) or len(expand_inputs(inputs)) > 1


def run_job(
    inputs: Sequence[str],
    options: JobOptions,
    *,
    manifests: Sequence[str] = (),
    ray: str | None = None,
    workers: int | None = None,
    retries: int = 2,
    segment_seconds: float | None = None,
    log: Callable[[str], None] = print,
) -> JobSummary:
    """Derain every input of ``inputs`` and ``manifests``: in this process, or on Ray when ``ray``
    is given (an address, or :data:`LOCAL` for a Ray started here). ``segment_seconds`` (Ray
    only; None: :data:`SEGMENT_SECONDS`, 0: never) cuts long videos."""
    specs = expand_inputs(inputs, manifests)
    settings = JobSettings(retries=retries, progress=options.progress)
    if ray is None:
        if workers not in (None, 1):
            raise ValueError("--workers needs --ray (without Ray one process does the work)")
        return run_local(specs, options, settings, log=log)
    settings.segment_seconds = SEGMENT_SECONDS if segment_seconds is None else (segment_seconds or None)
    address = None if ray == LOCAL else ray
    return run_many(specs, options, address, workers, retries, settings=settings, log=log)
