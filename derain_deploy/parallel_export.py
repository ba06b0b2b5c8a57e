"""Fill an :class:`~.artifacts.ArtifactCache` with several ONNX files at once, one process per
graph form.

An export is mostly single-threaded Python (``torch.export`` and the ONNX translation: about 20 s
for the split form and 12 s for the concat form of the default model on a 2-core Xeon), so two
graph forms exported side by side take the time of the longer one. Within a graph form the FP32
file comes first and the other precisions are made from it (:meth:`ArtifactCache.onnx` reads
the cached FP32 file), so each form is one chain in one process. The first chain runs in this
process, the others in worker processes (``python -m derain_deploy.parallel_export``); a failure
in any chain is raised here as a one-line :class:`~.backends.base.BackendError`, the other
workers are stopped, and the cache never holds a partial file.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO

from .artifacts import ArtifactCache
from .backends.base import BackendError
from .cpu import usable_cores
from .weights import WeightsError

Log = Callable[[str], None]
Chain = tuple[str, tuple[str, ...]]  # (graph form, precisions in build order: fp32 first)
STOP_WAIT_S = 10.0  # how long a stopped worker may take to remove its folder before it is killed


def missing_chains(cache: ArtifactCache, weights: Path, wanted: Iterable[tuple[str, str]]) -> list[Chain]:
    """The (graph, precisions) chains still to export for ``wanted`` (precision, graph) CPU files,
    longest first (the split form costs more than the concat form at equal length)."""
    by_graph: dict[str, list[str]] = {}
    for precision, graph in wanted:
        if not cache.onnx_path(weights, precision, graph).is_file():
            by_graph.setdefault(graph, [])
            if precision not in by_graph[graph]:
                by_graph[graph].append(precision)
    chains = [(g, tuple(sorted(p, key=lambda x: x != "fp32"))) for g, p in by_graph.items()]
    return sorted(chains, key=lambda c: (len(c[1]), c[0] == "split"), reverse=True)


def _export_chain(cache: ArtifactCache, weights: Path, chain: Chain) -> None:
    graph, precisions = chain
    for precision in precisions:
        cache.onnx(weights, precision, graph)


def _worker(cache: ArtifactCache, weights: Path, chain: Chain, threads: int, err: IO[str]
            ) -> subprocess.Popen[str]:  # fmt: skip
    """A fresh interpreter exporting ``chain`` (``python -m`` this module: nothing of the caller's
    ``__main__`` is imported again, unlike multiprocessing's spawn); its stderr goes to ``err``
    (a file: a pipe left unread while this process exports could fill and stall the worker)."""
    graph, precisions = chain
    command = [sys.executable, "-m", __name__, str(cache.root), str(weights), graph, ",".join(precisions),
               "--threads", str(threads)]  # fmt: skip
    if cache.name:
        command += ["--name", cache.name]
    if cache.fp16_check_shape:
        command += ["--fp16-check-shape", ",".join(map(str, cache.fp16_check_shape))]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err, text=True)


def export_all(
    cache: ArtifactCache,
    weights: str | Path,
    wanted: Iterable[tuple[str, str]],
    log: Log | None = None,
    workers: int | None = None,
) -> list[Chain]:
    """Export the files of ``wanted`` that the cache lacks, up to ``workers`` graph forms at once
    (default: the usable cores); return the chains that were exported."""
    weights = Path(weights)
    chains = missing_chains(cache, weights, wanted)
    if not chains:
        return []
    workers = max(1, min(workers or usable_cores(), len(chains)))
    if log:
        files = ", ".join(f"{g} {' -> '.join(p)}" for g, p in chains)
        log(f"exporting ONNX files once for these weights: {files}"
            + (f" ({workers} processes)" if workers > 1 else ""))  # fmt: skip
    threads = max(1, usable_cores() // workers)
    with contextlib.ExitStack() as stack:
        errs = [stack.enter_context(tempfile.TemporaryFile("w+")) for _ in chains[1:workers]]
        procs = [_worker(cache, weights, c, threads, e) for c, e in zip(chains[1:workers], errs)]
        try:
            _export_chain(cache, weights, chains[0])
            for chain in chains[workers:]:  # more forms than workers: the rest here, one after another
                _export_chain(cache, weights, chain)
            for proc, err in zip(procs, errs):
                if proc.wait() != 0:
                    err.seek(0)
                    lines = [line for line in err.read().splitlines() if line.strip()]
                    stopped = f"an export worker stopped with exit code {proc.returncode}"
                    raise BackendError(lines[-1].removeprefix("error: ") if lines else stopped)
        finally:
            _stop(procs)
    return chains


def _stop(procs: list[subprocess.Popen[str]]) -> None:
    """Stop the workers still running (after an error or Ctrl-C here): SIGTERM first, so that each
    removes its private export folder, then SIGKILL after a few seconds."""
    running = [p for p in procs if p.poll() is None]
    for proc in running:
        proc.terminate()
    for proc in running:
        try:
            proc.wait(timeout=STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main(argv: list[str] | None = None) -> None:
    """The worker: export one chain into the cache; an error is one line on stderr, exit 1."""
    import argparse

    parser = argparse.ArgumentParser(prog=f"python -m {__name__}")
    for name in ("root", "weights", "graph", "precisions"):
        parser.add_argument(name)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--name")
    parser.add_argument("--fp16-check-shape")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # unwind: the private export folder is removed
    import torch

    torch.set_num_threads(args.threads)
    shape = tuple(int(v) for v in args.fp16_check_shape.split(",")) if args.fp16_check_shape else None
    cache = ArtifactCache(Path(args.root), fp16_check_shape=shape, name=args.name)  # type: ignore[arg-type]
    try:
        _export_chain(cache, Path(args.weights), (args.graph, tuple(args.precisions.split(","))))
    except (BackendError, WeightsError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
