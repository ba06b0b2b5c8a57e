"""Fill an :class:`~.artifacts.ArtifactCache` with several ONNX files at once, one process per
graph form.

An export is mostly single-threaded Python (``torch.export`` and the ONNX translation: about 20 s
for the split form and 12 s for the concat form of the default model on a 2-core Xeon), so two
graph forms exported side by side take the time of the longer one. Within a graph form the FP32
file comes first and the other precisions are made from it (:meth:`ArtifactCache.onnx` reads
the cached FP32 file), so each form is one chain in one process. The first chain runs in this
process, the others in spawned worker processes; a failure in any chain is raised here as the
same one-line :class:`~.backends.base.BackendError`, and the cache never holds a partial file.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from .artifacts import ArtifactCache
from .cpu import usable_cores

Log = Callable[[str], None]
Chain = tuple[str, tuple[str, ...]]  # (graph form, precisions in build order: fp32 first)


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


def _export_chain(cache: ArtifactCache, weights: Path, chain: Chain, threads: int | None) -> None:
    if threads:  # a worker: leave the other cores to the other chains
        import torch

        torch.set_num_threads(threads)
    graph, precisions = chain
    for precision in precisions:
        cache.onnx(weights, precision, graph)


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
    if workers == 1:
        for chain in chains:
            _export_chain(cache, weights, chain, None)
        return chains
    threads = max(1, usable_cores() // workers)
    with ProcessPoolExecutor(workers - 1, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_export_chain, cache, weights, c, threads) for c in chains[1:]]
        _export_chain(cache, weights, chains[0], None)
        for future in futures:
            future.result()  # a worker's BackendError is raised here
    return chains
