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


def test_a_caller_script_without_a_main_guard_is_not_run_again(tiny_weights: Path, tmp_path: Path) -> None:
    """Workers are fresh ``python -m`` interpreters: multiprocessing's spawn would import the
    caller's script again in each worker (a script without ``if __name__ == "__main__"`` broke
    the pool, and its top-level code ran twice)."""
    import subprocess
    import sys

    script = tmp_path / "caller.py"
    script.write_text(
        "from pathlib import Path\n"
        "from derain_deploy.artifacts import ArtifactCache\n"
        "from derain_deploy.parallel_export import export_all\n"
        f"print('caller ran', flush=True)\n"
        f"export_all(ArtifactCache(Path({str(tmp_path / 'c')!r})), {str(tiny_weights)!r},\n"
        "           [('fp32', 'split'), ('fp32', 'concat')], workers=2)\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("caller ran") == 1
    cache = ArtifactCache(tmp_path / "c")
    assert cache.onnx_path(tiny_weights, "fp32", "concat").is_file()


def test_a_stopped_worker_removes_its_private_folder(tmp_path: Path) -> None:
    """After an error or Ctrl-C in the caller, a worker in the middle of an export is stopped with
    SIGTERM and unwinds: nothing of it stays in the cache (SIGKILL at once left its folder)."""
    import subprocess
    import sys
    import time

    import torch

    from derain_deploy.model import DerainNet
    from derain_deploy.parallel_export import _stop
    from derain_deploy.weights import save_weights

    torch.manual_seed(0)
    weights = save_weights(DerainNet(), tmp_path / "full.safetensors")  # 12 stages: a long export
    root = tmp_path / "cache"
    proc = subprocess.Popen([sys.executable, "-m", "derain_deploy.parallel_export", str(root), str(weights),
                             "split", "fp32"], stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 120
    while not list((root / "onnx").glob(".export-*")) and time.monotonic() < deadline:
        assert proc.poll() is None, "the worker ended before its export began"
        time.sleep(0.05)
    assert list((root / "onnx").glob(".export-*")), "the worker never started its export"
    _stop([proc])
    assert proc.returncode is not None
    assert not [p for p in root.rglob("*") if p.name.startswith(".")]
    assert not list(root.rglob("*.onnx"))
