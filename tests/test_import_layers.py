"""The layers import downwards only: no module of the runtime (``derain_deploy``) imports the
exporter (``export``) or the trainer (``trainer``), at module level or inside a function."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif (  # importlib.import_module("export.api") and __import__("export")
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.lineno, node.args[0].value))
    return found


def test_the_runtime_does_not_import_the_exporter_or_the_trainer() -> None:
    files = sorted((ROOT / "derain_deploy").rglob("*.py"))
    assert len(files) > 50
    bad = [
        f"{path.relative_to(ROOT)}:{line}: import {name}"
        for path in files
        for line, name in _imports(path)
        if name.partition(".")[0] in ("export", "trainer")
    ]
    assert not bad, "the runtime imports a layer above it:\n" + "\n".join(bad)
