"""Jobs on a local Ray (2 CPUs, started once for this module): same outputs as single runs,
long videos in segments, retries after a failed task or a dead worker, resuming, bad inputs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from distributed_helpers import Data, Output, decoded, leftovers, options, output_files, reference_files

from derain_deploy.cli_run import main
from derain_deploy.distributed import JobSettings, run_many
from derain_deploy.distributed.work import FAULT_DIR_ENV
from derain_deploy.job import run_inputs

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'derain-deploy[ray]')")


def quiet(_: str) -> None:
    pass


@pytest.fixture(scope="module")
def faults(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A local Ray whose workers read fault markers from the yielded folder (and share this
    process's ONNX cache)."""
    folder = tmp_path_factory.mktemp("faults")
    cache = tmp_path_factory.mktemp("cache")
    patch = pytest.MonkeyPatch()
    patch.setenv("DERAIN_DEPLOY_CACHE", str(cache))
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {FAULT_DIR_ENV: str(folder), "DERAIN_DEPLOY_CACHE": str(cache)}},
    )
    yield folder
    ray.shutdown()
    patch.undo()


def settings(**changes: object) -> JobSettings:
    return JobSettings(progress=False, **changes)  # type: ignore[arg-type]


def test_ray_outputs_match_single_runs(data: Data, reference: Path, faults: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    inputs = [*map(str, data.videos), str(data.folder)]
    summary = run_many(
        inputs, options(data, out), workers=2, retries=0, settings=settings(chunk_images=2), log=quiet
    )
    assert [i.status for i in summary.items] == ["done"] * 4, summary.describe()
    assert [i.frames for i in summary.items] == [6, 8, 6, 5]
    assert output_files(out) == reference_files(reference)
    assert len(summary.workers) == 2 and sum(w["frames"] for w in summary.workers.values()) == 25
    assert leftovers(tmp_path) == []
    report = json.loads(json.dumps(summary.to_dict()))
    assert report["ok"] and report["done"] == 4 and report["frames"] == 25

    # A second run of the finished job starts no worker and writes nothing.
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    again = run_many(
        inputs, options(data, out), workers=2, retries=0, settings=settings(chunk_images=2), log=quiet
    )
    assert [i.status for i in again.items] == ["skipped"] * 4 and again.workers == {}
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == stamps


@pytest.mark.slow  # the ONNX export of the weights takes about 10 s here
def test_ray_onnxruntime_matches_single_run(data: Data, faults: Path, tmp_path: Path) -> None:
    ref, out = tmp_path / "ref", tmp_path / "out"
    run_inputs([str(data.videos[1])], options(data, ref, backend="onnxruntime"), log=quiet)
    summary = run_many(
        [str(data.videos[1])],
        options(data, out, backend="onnxruntime"),
        workers=1,
        retries=0,
        settings=settings(),
        log=quiet,
    )
    assert summary.items[0].status == "done", summary.describe()
    assert Output(out / "v1.derained.mp4") == Output(ref / "v1.derained.mp4")


def test_segmented_video_keeps_every_frame_in_order_and_its_audio(
    data: Data, faults: Path, tmp_path: Path
) -> None:
    whole, out = tmp_path / "whole", tmp_path / "out"
    run_inputs([str(data.long_video)], options(data, whole), log=quiet)
    # Through the command: "--ray INPUT" (an input, not an address) runs on the Ray this process joined.
    args = ["--ray", data.long_video, "--workers", "2", "--segment-seconds", "1", "--json", "-o", f"{out}/"]
    args += ["--backend", "torch", "--device", "cpu", "--model", data.weights]
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.stderr
    item = json.loads(result.stdout)["items"][0]
    assert (item["status"], item["frames"]) == ("done", 11)
    frames, times, audio = decoded(out / "long.derained.mp4")
    ref_frames, ref_times, ref_audio = decoded(whole / "long.derained.mp4")
    assert len(frames) == 11 and times == ref_times == [250 * i for i in range(11)]
    assert audio == pytest.approx(ref_audio, abs=0.03) and audio == pytest.approx(11 / 4, abs=0.05)
    for i, frame in enumerate(frames):  # frame i is whole-run frame i, no other
        errors = [np.abs(frame.astype(int) - r.astype(int)).mean() for r in ref_frames]
        assert int(np.argmin(errors)) == i and errors[i] < 2.0
    assert leftovers(tmp_path) == []


def test_retries_and_failures_reported_per_input(
    data: Data, reference: Path, faults: Path, tmp_path: Path
) -> None:
    (faults / "v1.mp4.fail").touch()  # the task raises once: retried
    (faults / "v2.mkv.exit").touch()  # the worker process running it exits once: replaced, retried
    (faults / "long.mp4.fail").write_text("3")  # fails more often than it may be retried
    corrupt = tmp_path / "corrupt.mkv"
    corrupt.write_bytes(b"\x1aE\xdf\xa3 truncated" * 20)
    inputs = [*map(str, data.videos), str(data.long_video), str(tmp_path / "missing.mp4"), str(corrupt)]
    out = tmp_path / "out"
    messages: list[str] = []
    summary = run_many(
        inputs, options(data, out), workers=2, retries=2, settings=settings(), log=messages.append
    )
    report = {Path(i["input"]).name: i for i in json.loads(json.dumps(summary.to_dict()))["items"]}
    status = {name: (i["status"], i["attempts"]) for name, i in report.items()}
    assert status == {
        "v0.mp4": ("done", 1),
        "v1.mp4": ("done", 2),
        "v2.mkv": ("done", 2),
        "long.mp4": ("failed", 3),
        "missing.mp4": ("failed", 0),
        "corrupt.mkv": ("failed", 0),
    }, summary.describe()
    assert "injected failure for long.mp4" in report["long.mp4"]["error"]
    assert "no such file" in report["missing.mp4"]["error"]
    assert "corrupt.mkv" in report["corrupt.mkv"]["error"]
    assert any("injected failure for v1.mp4" in m for m in messages)
    assert any("v2.mkv: attempt 1 failed (worker" in m and "died" in m for m in messages)
    assert not summary.ok and "failed" in summary.describe()
    ref = reference_files(reference)
    assert output_files(out) == {k: ref[k] for k in ("v0.derained.mp4", "v1.derained.mp4", "v2.derained.mkv")}
    assert not (out / "long.derained.mp4").exists()
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("skip", [False, True])
def test_corrupt_frame_inside_a_ray_segment(data: Data, faults: Path, tmp_path: Path, skip: bool) -> None:
    """A corrupt frame in the second segment: the input fails with that frame's error, or with
    --skip-bad-frames is done without it (it raised TypeError inside the worker before)."""
    import sys

    sys.path.insert(0, str(Path(__file__).parents[1] / "streams"))
    from stream_helpers import corrupt_packet, indexed_frames

    from derain_deploy.streams import write_test_video

    video = corrupt_packet(write_test_video(tmp_path / "png.mov", indexed_frames(8), fps=4, codec="png"), 5)
    out = tmp_path / "out"
    args = ["--ray", video, "--workers", "2", "--segment-seconds", "1", "--json", "-o", f"{out}/",
            "--backend", "torch", "--device", "cpu", "--model", data.weights]
    result = CliRunner().invoke(main, [str(a) for a in args + (["--skip-bad-frames"] if skip else [])])
    item = json.loads(result.stdout)["items"][0]
    if skip:
        assert result.exit_code == 0 and (item["status"], item["frames"]) == ("done", 7), result.output
    else:
        assert result.exit_code == 1 and item["status"] == "failed"
        assert "corrupt frame 5" in item["error"] and "TypeError" not in item["error"], item["error"]
