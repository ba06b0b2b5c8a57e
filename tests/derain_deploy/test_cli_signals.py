"""SIGTERM and SIGHUP stop ``derain-run`` like Ctrl-C: one error line, nothing left behind.

Signals go to a fresh ``derain-run`` subprocess, never to the pytest process (README: a SIGTERM
to the test process crashed natively once the OpenVINO tests had run)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from cli_case import CliResult, assert_one_line_error, cli_argv, digests

from derain_deploy.streams import open_sink, open_source, write_test_video


@pytest.fixture(scope="module")
def long_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """300 frames: the bundled model on the CPU needs several seconds for them."""
    rng = np.random.default_rng(0)
    frames = (rng.integers(0, 255, (64, 64, 3), dtype=np.uint8) for _ in range(300))
    return write_test_video(tmp_path_factory.mktemp("long") / "long.mp4", frames, fps=25)


def part_files(folder: Path) -> list[Path]:
    return sorted(folder.glob(".*.part-*"))


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_signal_removes_the_unfinished_output(
    long_video: Path, tmp_path: Path, sig: signal.Signals, code: int
) -> None:
    before = digests(long_video)
    out = tmp_path / "out.mp4"
    args = [str(long_video), "-o", str(out), "--backend", "torch", "-q"]
    proc = subprocess.Popen(cli_argv("derain-run", args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 60
        while not part_files(tmp_path) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert part_files(tmp_path), "the run never started writing"
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == code, stderr
    assert_one_line_error(CliResult(proc.returncode, stdout, stderr), signal.Signals(sig).name)
    assert not out.exists() and part_files(tmp_path) == []
    assert digests(long_video) == before


def test_stale_part_file_of_a_dead_process_is_removed(long_video: Path, tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".out.part-{dead.pid}.mp4"
    alive = tmp_path / f".out.part-{os.getppid()}.mp4"  # another process, still running: kept
    stale.write_bytes(b"partial")
    alive.write_bytes(b"partial")
    short = write_test_video(tmp_path / "short.mp4", [np.zeros((16, 16, 3), np.uint8)] * 2, fps=25)
    sink = open_sink(open_source(short).info, tmp_path / "out.mp4")
    sink.abort()
    assert not stale.exists() and alive.exists()
