"""Graph forms exported side by side into the artifact cache: the chains, the files, a worker's
error raised in the caller."""

from __future__ import annotations

from pathlib import Path

import pytest

from derain_deploy.artifacts import ArtifactCache
from derain_deploy.backends.base import BackendError
from derain_deploy.parallel_export import export_all, missing_chains


def test_chains_put_fp32_first_and_skip_what_is_cached(tiny_weights: Path, tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path)
    wanted = [("int8", "split"), ("fp32", "concat"), ("fp32", "split"), ("int8", "split")]
    assert missing_chains(cache, tiny_weights, wanted) == [("split", ("fp32", "int8")), ("concat", ("fp32",))]
    entry = cache.onnx_path(tiny_weights, "fp32", "split")
    entry.parent.mkdir(parents=True)
    entry.write_bytes(b"cached")
    assert missing_chains(cache, tiny_weights, wanted) == [("split", ("int8",)), ("concat", ("fp32",))]


def test_two_graph_forms_exported_in_two_processes(tiny_weights: Path, tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path)
    lines: list[str] = []
    wanted = [("fp32", "split"), ("fp32", "concat")]
    assert export_all(cache, tiny_weights, wanted, lines.append, workers=2) == [
        ("split", ("fp32",)), ("concat", ("fp32",))]  # fmt: skip
    for precision, graph in wanted:
        assert cache.onnx_path(tiny_weights, precision, graph).is_file()
    assert lines == ["exporting ONNX files once for these weights: split fp32, concat fp32 (2 processes)"]
    assert export_all(cache, tiny_weights, wanted, lines.append, workers=2) == []  # all cached: no work
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".")]


def test_a_worker_failure_is_raised_here(tiny_weights: Path, tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path)
    damaged = cache.onnx_path(tiny_weights, "fp32", "concat")  # the worker's chain reads it
    damaged.parent.mkdir(parents=True)
    damaged.write_bytes(b"not an onnx file")
    with pytest.raises(BackendError, match="cannot read the FP32 file"):
        export_all(cache, tiny_weights, [("fp32", "split"), ("int8", "concat")], workers=2)
    assert cache.onnx_path(tiny_weights, "fp32", "split").is_file()  # the other chain finished
    assert not cache.onnx_path(tiny_weights, "int8", "concat").exists()
