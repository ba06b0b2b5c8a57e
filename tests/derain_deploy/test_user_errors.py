"""One module of user-facing errors: every CLI shows the same classes as one ``error:`` line."""

from __future__ import annotations

import ast
from pathlib import Path

from derain_deploy.user_errors import user_errors

ROOT = Path(__file__).resolve().parents[2]
CLIS = [
    *sorted((ROOT / "derain_deploy").glob("cli_*.py")),
    ROOT / "derain_deploy/demo.py",
    ROOT / "export/cli.py",
]
SHARED = {
    "SpecError", "BackendError", "StreamError", "WeightsError", "OutputGuardError", "LayoutError",
    "BenchError", "ExportError", "ParityError", "ProfileError",
}  # fmt: skip


def test_the_shared_classes_and_a_clis_own() -> None:
    from derain_deploy.backend_spec import SpecError
    from derain_deploy.backends.base import BackendError
    from derain_deploy.build.onnx_export import ExportError
    from derain_deploy.build.profiles import ProfileError
    from derain_deploy.build.verify import ParityError
    from derain_deploy.evaluate import EvalError
    from derain_deploy.output_guard import OutputGuardError
    from derain_deploy.pairs import LayoutError
    from derain_deploy.streams.base import StreamError
    from derain_deploy.weights import WeightsError

    shared = user_errors()
    assert {e.__name__ for e in shared} == SHARED | {"OSError"}
    assert {SpecError, BackendError, StreamError, WeightsError, OutputGuardError, LayoutError} <= set(shared)
    assert {ExportError, ParityError, ProfileError, OSError} <= set(shared)
    assert user_errors(EvalError, ValueError)[-2:] == (EvalError, ValueError)


def test_no_cli_lists_the_shared_classes_itself() -> None:
    from derain_deploy import cli_bench

    assert cli_bench.user_errors is user_errors  # cli_eval and benchmarks/run_bench.py import it there
    for path in CLIS:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Tuple):
                names = {e.id for e in node.elts if isinstance(e, ast.Name)} & SHARED
                assert len(names) < 2, f"{path.name}:{node.lineno} lists {sorted(names)}: use user_errors()"
