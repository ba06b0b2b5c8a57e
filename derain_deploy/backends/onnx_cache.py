"""Per-user cache of ONNX files exported from weights files, keyed by weights hash and settings.

``derain-run`` given weights (or none: the bundled default) and an ONNX backend exports once and
reuses the file afterwards. Location: ``$DERAIN_DEPLOY_CACHE``, else
``$XDG_CACHE_HOME/derain-deploy``, else ``~/.cache/derain-deploy``. Files are written atomically
and checked (by ``derain_deploy.build.api.export_model``) before they enter the cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from ..weights import WeightsError, file_sha256
from .base import BackendError

# Bump when the export settings or the exporter change what a file holds (2: INT8 weights in 7 bits).
CACHE_FORMAT = 2


def cache_dir() -> Path:
    if os.environ.get("DERAIN_DEPLOY_CACHE"):
        return Path(os.environ["DERAIN_DEPLOY_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "derain-deploy"


def cache_key(weights_sha256: str, settings: dict[str, object]) -> str:
    blob = json.dumps({"weights": weights_sha256, "format": CACHE_FORMAT, **settings}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# The faster graph form per precision on ONNX Runtime CPU, measured by benchmarks/run_bench.py
# (benchmarks/results/intel-xeon-2c.md, 480x640): FP32 concat 823 ms vs split 1,178 ms;
# INT8 split 816 ms vs concat 1,085 ms (QLinearConcat is slow). OpenVINO passes its own form.
FASTEST_GRAPH = {"fp32": "concat", "fp16": "split", "int8": "split"}


def cached_onnx(weights: str | Path, precision: str = "fp32", graph: str | None = None) -> tuple[Path, bool]:
    """The cached ONNX for ``weights`` (exported and checked now if missing), and whether it was
    exported now. ``precision`` fp32, fp16 or int8 (export's checks apply: FP32 parity with
    eager PyTorch, FP16 PSNR, INT8 quality loss); ``graph`` defaults to the faster form."""
    if precision not in ("fp32", "fp16", "int8"):
        hint = " (bf16 runs on the torch backend: --backend torch)" if precision == "bf16" else ""
        raise BackendError(f"onnxruntime: no {precision} ONNX can be exported{hint}")
    graph = graph or FASTEST_GRAPH[precision]
    path = cache_path(weights, precision, graph)
    if path.is_file():
        return path, False
    _export(Path(weights), path, precision, graph)
    return path, True


def cache_path(weights: str | Path, precision: str = "fp32", graph: str | None = None) -> Path:
    """Where the ONNX for ``weights`` exported with these settings lives in the cache."""
    weights, graph = Path(weights), graph or FASTEST_GRAPH[precision]
    sha = file_sha256(weights)
    key = cache_key(sha, {"precision": precision, "graph": graph})
    return cache_dir() / "onnx" / f"{weights.stem}-{sha[:12]}-{graph}-{precision}-{key}.onnx"


def _export(weights: Path, path: Path, precision: str, graph: str) -> None:
    """export_model into a private folder beside ``path``, then one atomic rename."""
    try:
        from ..build.api import ExportOptions, export_model
    except ImportError as e:
        raise BackendError(f"cannot export {weights.name}: the artifact builder is missing ({e})") from None
    options = ExportOptions(graph=graph, fp16=precision == "fp16", int8=precision == "int8", bench_shape=None)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".export-", dir=path.parent) as tmp:
            report = export_model(weights, Path(tmp), options)
            artifact = report.artifact("onnx", precision)
            os.replace(artifact.path, path)
    except WeightsError:
        raise
    except OSError as e:
        raise BackendError(f"cannot write the ONNX cache {path.parent}: {e.strerror or e}") from None
    except RuntimeError as e:  # export's ExportError / ParityError: one line, nothing cached
        raise BackendError(f"cannot export {weights.name} to {precision} ONNX: {e}") from None
