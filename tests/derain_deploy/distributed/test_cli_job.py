"""``derain-run`` with many inputs (no Ray): a manifest, the summary, --json, exit codes, resuming."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from distributed_helpers import Data, output_files, reference_files

from derain_deploy.cli_run import main


def invoke(*args: object) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def test_manifest_job_json_and_resume(data: Data, reference: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "job.txt"
    manifest.write_text(f"# tonight\n{data.videos[0]}\n\n{data.videos[1]}\n")
    out = tmp_path / "out"
    common = ["--backend", "torch", "--device", "cpu", "--model", data.weights, "-o", f"{out}/"]
    code, stdout, stderr = invoke(data.videos[2], "--manifest", manifest, "--json", *common)
    assert code == 0, stderr
    report = json.loads(stdout)
    assert report["ok"] and [i["status"] for i in report["items"]] == ["done"] * 3
    assert [Path(i["input"]).name for i in report["items"]] == ["v2.mkv", "v0.mp4", "v1.mp4"]
    ref = reference_files(reference)
    assert output_files(out) == {k: ref[k] for k in ("v0.derained.mp4", "v1.derained.mp4", "v2.derained.mkv")}

    # Again, with a missing input: the three are skipped, the missing one fails by name; exit 1.
    code, stdout, stderr = invoke(data.videos[2], tmp_path / "gone.mp4", "--manifest", manifest, *common)
    assert code == 1
    assert stdout.split() == [str(out / n) for n in ("v2.derained.mkv", "v0.derained.mp4", "v1.derained.mp4")]
    assert "failed" in stderr and "gone.mp4" in stderr and "no such file" in stderr
    assert "3 already done, 1 failed" in stderr
    assert "Traceback" not in stderr


def test_job_errors_are_one_line(data: Data, tmp_path: Path) -> None:
    code, _, stderr = invoke(data.videos[0], "--manifest", tmp_path / "none.txt", "--model", data.weights)
    assert code == 1 and stderr.strip().splitlines() == [
        f"error: no such manifest file: {tmp_path / 'none.txt'}"
    ]
    code, _, stderr = invoke(data.videos[0], data.videos[1], "--workers", "2", "--model", data.weights)
    assert (
        code == 1 and stderr.strip() == "error: --workers needs --ray (without Ray one process does the work)"
    )
