"""A job over many inputs in this process: same outputs as single runs, journal, retries, bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from distributed_helpers import Data, leftovers, options, output_files, reference_files

from derain_deploy.distributed import JOURNAL_NAME, JobSettings, run_local
from derain_deploy.distributed.work import FAULT_DIR_ENV


def quiet(_: str) -> None:
    pass


def test_local_job_matches_single_runs_then_skips(data: Data, reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / ".v1.derained.part-999999.mp4").write_bytes(b"left by a killed worker")
    inputs = [str(data.root / "v*"), str(data.folder)]  # the glob expands to the three videos
    summary = run_local(inputs, options(data, out), JobSettings(chunk_images=2, progress=False), log=quiet)
    assert [i.status for i in summary.items] == ["done"] * 4, summary.describe()
    assert [i.frames for i in summary.items] == [6, 8, 6, 5]
    assert output_files(out) == reference_files(reference)
    assert leftovers(tmp_path) == []
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}

    again = run_local(inputs, options(data, out), JobSettings(chunk_images=2, progress=False), log=quiet)
    assert [i.status for i in again.items] == ["skipped"] * 4
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == stamps

    # A changed output is made again; so is everything when a setting that changes bytes differs.
    (out / "v1.derained.mp4").write_bytes(b"not the video")
    third = run_local(inputs, options(data, out), JobSettings(progress=False), log=quiet)
    assert [i.status for i in third.items] == ["skipped", "done", "skipped", "skipped"]
    assert output_files(out) == reference_files(reference)
    fourth = run_local(
        [str(data.videos[2])], options(data, out, quality=30), JobSettings(progress=False), log=quiet
    )
    assert fourth.items[0].status == "done"
    lines = (out / JOURNAL_NAME).read_text().splitlines()
    assert len(lines) == 3  # compacted: one record per output
    assert {json.loads(line)["output"] for line in lines} == {
        f"{v.stem}.derained{v.suffix}" for v in data.videos
    }


def test_local_job_retries_and_reports_bad_inputs(
    data: Data, reference: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    faults = tmp_path / "faults"
    faults.mkdir()
    monkeypatch.setenv(FAULT_DIR_ENV, str(faults))
    (faults / "v0.mp4.fail").touch()
    (faults / "v1.mp4.fail").touch()
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00not a video" * 50)
    inputs = [str(data.videos[0]), str(tmp_path / "missing.mp4"), str(corrupt), str(data.videos[1])]
    out = tmp_path / "out"
    messages: list[str] = []
    summary = run_local(
        inputs, options(data, out), JobSettings(retries=1, progress=False), log=messages.append
    )
    status = {Path(i.input).name: (i.status, i.attempts, i.error) for i in summary.items}
    assert status["v0.mp4"] == ("done", 2, None)
    assert status["v1.mp4"] == ("done", 2, None)
    assert status["missing.mp4"][0] == "failed" and "no such file" in status["missing.mp4"][2]
    assert status["corrupt.mp4"][0] == "failed" and "cannot open video" in status["corrupt.mp4"][2]
    assert not summary.ok
    assert any("attempt 1 failed" in m and "injected failure" in m for m in messages)
    ref = reference_files(reference)
    assert output_files(out) == {k: ref[k] for k in ("v0.derained.mp4", "v1.derained.mp4")}

    # Retries exhausted: the input fails by name with its error, the others finish.
    (faults / "v0.mp4.fail").touch()
    summary = run_local(
        [str(data.videos[0]), str(data.videos[2])],
        options(data, tmp_path / "o2"),
        JobSettings(retries=0, progress=False),
        log=quiet,
    )
    assert [(i.status, i.attempts) for i in summary.items] == [("failed", 1), ("done", 1)]
    assert "injected failure for v0.mp4" in summary.items[0].error
    assert not (tmp_path / "o2" / "v0.derained.mp4").exists()
    assert json.loads(json.dumps(summary.to_dict()))["failed"] == 1
    assert leftovers(tmp_path) == []
