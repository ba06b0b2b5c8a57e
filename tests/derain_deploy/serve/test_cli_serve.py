"""derain-serve's refusals before anything starts: one ``error:`` line, no traceback, no Ray."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from cli_case import assert_one_line_error, run_cli


def test_missing_model_and_taken_port_are_one_line_errors(tmp_path: Path) -> None:
    missing = run_cli("derain-serve", ["--model", str(tmp_path / "nope.safetensors")], tmp_path)
    assert_one_line_error(missing, "model file not found")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("derain-serve", ["--backend", "torch", "--port", str(port)], tmp_path)
    assert_one_line_error(result, f"port {port} on 127.0.0.1 is in use")


@pytest.mark.parametrize("args", [["--max-batch", "0"], ["--batch-wait-ms", "-1"]])
def test_bad_batch_options_are_usage_errors(tmp_path: Path, args: list[str]) -> None:
    from click.testing import CliRunner

    from derain_deploy.cli_serve import main

    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and "Invalid value" in result.output
