"""Inputs from paths, globs and manifests; the journal's records, torn lines and checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from derain_deploy.distributed import JOURNAL_NAME, Journal, Record, expand_inputs, read_manifest
from derain_deploy.distributed.journal import digest, verify
from derain_deploy.streams.base import StreamError


def test_manifest_and_globs(tmp_path: Path) -> None:
    for name in ("a.mp4", "b.mkv", "c.png", "d.png"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "lists").mkdir()
    manifest = tmp_path / "lists" / "job.txt"
    manifest.write_text("# my job\n\n../a.mp4\n  ../b.mkv  \n#../c.png\nrtsp://cam/1\n../*.png\n../a.mp4\n")
    assert read_manifest(manifest) == [
        str(manifest.parent / "../a.mp4"),
        str(manifest.parent / "../b.mkv"),
        "rtsp://cam/1",
        str(manifest.parent / "../*.png"),
        str(manifest.parent / "../a.mp4"),
    ]
    inputs = expand_inputs([str(tmp_path / "*.mp4")], [manifest])
    # the video glob expands; the image-only glob stays one input (one output folder); no duplicates
    assert inputs == [
        str(tmp_path / "a.mp4"),
        str(manifest.parent / "../b.mkv"),
        "rtsp://cam/1",
        str(manifest.parent / "../*.png"),
    ]
    assert expand_inputs([str(tmp_path / "*")]) == [
        str(tmp_path / n) for n in ("a.mp4", "b.mkv", "c.png", "d.png", "lists")
    ]
    with pytest.raises(StreamError, match="no such manifest"):
        read_manifest(tmp_path / "nope.txt")


def test_journal_keeps_latest_record_ignores_torn_lines_and_verifies(tmp_path: Path) -> None:
    out = tmp_path / "x.derained.png"
    out.write_bytes(b"image bytes")
    frames, sha = digest(out, "image")
    journal = Journal(tmp_path)
    journal.append(Record("x.png", out.name, "image", frames, "0" * 64, "key"))
    journal.append(Record("x.png", out.name, "image", frames, sha, "key"))
    with open(tmp_path / JOURNAL_NAME, "a") as f:
        f.write('{"input": "y.png", "output": "y.derai')  # a crash in the middle of an append
    again = Journal(tmp_path)
    record = again.get(out)
    assert record is not None and record.sha256 == sha and list(again.records) == [out.name]
    assert again.verify(record) is None
    again.compact()
    assert len((tmp_path / JOURNAL_NAME).read_text().splitlines()) == 1
    out.write_bytes(b"image bytez")
    assert "changed" in again.verify(record)
    out.unlink()
    assert "missing" in again.verify(record)


def test_folder_records_check_each_listed_image(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.png").write_bytes(b"a")
    (folder / "sub" / "b.png").write_bytes(b"b")
    names = ["a.png", "sub/b.png"]
    frames, sha = digest(folder, "folder", names)
    record = Record("in", folder.name, "folder", frames, sha, "key", names=names)
    assert frames == 2 and verify(record, tmp_path) is None
    (folder / "unrelated.png").write_bytes(b"c")  # files the job did not write do not matter
    assert verify(record, tmp_path) is None
    (folder / "sub" / "b.png").write_bytes(b"B")
    assert "changed" in verify(record, tmp_path)
    (folder / "sub" / "b.png").unlink()
    assert "cannot be read" in verify(record, tmp_path)
