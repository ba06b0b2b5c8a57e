"""Resume by inputs: new and changed inputs are done, finished ones skipped; a job never takes
its own outputs as inputs, never writes over an input, and keeps no output it cannot record."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from distributed_helpers import Data, options, write_folder

from derain_deploy.distributed import JobSettings, run_local
from derain_deploy.distributed.journal import Journal
from derain_deploy.job import run_inputs
from derain_deploy.output_guard import OutputGuardError
from derain_deploy.streams import write_image


def quiet(_: str) -> None:
    pass


def _job(inputs: list[str], data: Data, out: Path) -> list[str]:
    summary = run_local(inputs, options(data, out), JobSettings(progress=False), log=quiet)
    return [i.status for i in summary.items]


def test_new_and_changed_images_of_a_folder_are_done(data: Data, tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "imgs", 2)
    out = tmp_path / "out"
    assert _job([str(folder)], data, out) == ["done"]
    assert _job([str(folder)], data, out) == ["skipped"]
    stamps = {p.name: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    write_image(folder / "new.png", np.full((24, 32, 3), 0.5, np.float32))
    assert _job([str(folder)], data, out) == ["done"]  # was "skipped": new.png never made
    assert (out / "new.png").is_file()
    assert {p.name: p.stat().st_mtime_ns for p in out.rglob("*.png") if p.name != "new.png"} == stamps
    assert _job([str(folder)], data, out) == ["skipped"]
    os.utime(folder / "im0.png", ns=(1, 1))  # a changed input (another mtime): only it is done again
    assert _job([str(folder)], data, out) == ["done"]
    assert (out / "sub" / "im1.png").stat().st_mtime_ns == stamps["im1.png"]
    assert (out / "im0.png").stat().st_mtime_ns != stamps["im0.png"]
    (folder / "new.png").unlink()
    assert _job([str(folder)], data, out) == ["skipped"]


def test_outputs_inside_the_input_folder_are_not_inputs(data: Data, tmp_path: Path) -> None:
    real = write_folder(tmp_path / "real", 2)
    for _ in range(2):  # derain-run real -o real/out, twice
        run_inputs([str(real)], options(data, real / "out"), log=quiet)
    written = sorted(p.relative_to(real / "out").as_posix() for p in (real / "out").rglob("*.png"))
    assert written == ["im0.png", "sub/im1.png"]
    assert _job([str(real)], data, real / "out") == ["done"]  # the job leaves them out too
    assert not (real / "out" / "out").exists()


def test_an_output_that_is_another_input_is_refused_before_any_work(data: Data, tmp_path: Path) -> None:
    a = tmp_path / "a.png"
    write_image(a, np.full((24, 32, 3), 0.5, np.float32))
    shutil.copy(a, tmp_path / "a.derained.png")
    before = (tmp_path / "a.derained.png").read_bytes()
    opts = options(data, tmp_path)
    opts.output = None  # each output beside its input: a.png's is a.derained.png, the second input
    with pytest.raises(OutputGuardError, match="is an input of this run"):
        run_local([str(a), str(tmp_path / "a.derained.png")], opts, JobSettings(progress=False), log=quiet)
    assert (tmp_path / "a.derained.png").read_bytes() == before


def test_an_output_the_journal_cannot_record_is_removed(
    data: Data, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full_disk(self: Journal, record: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Journal, "append", full_disk)
    out = tmp_path / "out"
    inputs = [str(data.videos[1]), str(data.folder)]
    summary = run_local(inputs, options(data, out), JobSettings(progress=False), log=quiet)
    assert [i.status for i in summary.items] == ["failed", "failed"]
    assert all("No space left on device" in (i.error or "") for i in summary.items)
    assert not out.exists() or sorted(out.rglob("*")) == []


def test_a_symlink_loop_fails_its_input_only(data: Data, tmp_path: Path) -> None:
    (tmp_path / "loop.png").symlink_to("loop.png")
    a = tmp_path / "a.png"
    write_image(a, np.full((24, 32, 3), 0.5, np.float32))
    inputs = [str(tmp_path / "loop.png"), str(a)]
    summary = run_local(inputs, options(data, tmp_path / "out"), JobSettings(progress=False), log=quiet)
    assert [i.status for i in summary.items] == ["failed", "done"]
