"""The job journal: one JSON line per finished output, in a hidden file beside the outputs.

A record holds what the output must be (frame count and sha256), the settings that made it and
the identity of the input it was made from (:func:`input_key`: size and mtime of the file, or of
each image of a folder). A later run skips an output only when its record matches the settings
and the input as it is now, and the file on disk still has the recorded frame count and
checksum; of a folder whose outputs are intact, only the new and changed images are done again.
Only the job's driver writes the journal: each line is appended with one ``write`` and fsynced,
a torn last line (a crash mid-append) is ignored when reading, and :meth:`Journal.compact`
rewrites the file atomically.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import av

from ..streams.base import StreamError
from ..streams.files import one_line, temp_path
from ..streams.video_source import is_stream_url
from ..weights import file_sha256

JOURNAL_NAME = ".derain-journal.jsonl"


@dataclass
class Record:
    """A finished output. ``output`` is its name in the journal's folder (the folder can move);
    ``input`` the input's absolute path (or URL); ``names`` the images of a folder output."""

    input: str
    output: str
    kind: str  # image, folder, video
    frames: int
    sha256: str
    settings: str  # settings_key() of the options that made it
    source: str = ""  # input_key() of the input it was made from
    sources: dict[str, str] = field(default_factory=dict)  # folder: file_key() of each image in names
    seconds: float = 0.0
    worker: str = ""
    backend: str = ""
    finished: str = ""
    names: list[str] = field(default_factory=list)


def file_key(path: str | Path) -> str:
    """A file's size and mtime (ns): what tells a changed image of a folder."""
    st = os.stat(path)
    return f"{st.st_size}:{st.st_mtime_ns}"


def input_key(spec: str, files: Sequence[str | Path] = ()) -> str:
    """The identity of an input as it is now: path, size and mtime (ns) of the file, or of each
    of a folder's images ``files``; a stream URL is its own identity. Raises OSError if unreadable."""
    if is_stream_url(spec):
        return f"url:{spec}"
    h = hashlib.sha256()
    for path in files or [spec]:
        st = os.stat(path)
        h.update(f"{os.path.realpath(path)}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:32]


def video_frames(path: Path) -> int:
    """The number of frames (packets) of the first video stream, counted without decoding."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            return sum(1 for packet in container.demux(stream) if packet.size)
    except (av.FFmpegError, OSError, IndexError) as e:
        raise StreamError(f"cannot read video {path}: {one_line(e)}") from None


def folder_digest(folder: Path, names: list[str]) -> str:
    """One sha256 over the listed files of a folder: their names and contents, in order."""
    h = hashlib.sha256()
    for name in names:
        h.update(f"{name}\t{file_sha256(folder / name)}\n".encode())
    return h.hexdigest()


def digest(output: Path, kind: str, names: list[str] | None = None) -> tuple[int, str]:
    """(frames, sha256) of an output as it is on disk now; raises OSError / StreamError if unreadable."""
    if kind == "folder":
        names = names or []
        return len(names), folder_digest(output, names)
    frames = 1 if kind == "image" else video_frames(output)
    return frames, file_sha256(output)


def verify(record: Record, folder: str | Path) -> str | None:
    """None when the output in ``folder`` matches ``record``, else why not."""
    output = Path(folder) / record.output
    if not output.exists():
        return f"{output} is missing"
    try:
        frames, sha = digest(output, record.kind, record.names)
    except (OSError, StreamError) as e:
        return f"{output} cannot be read: {one_line(e)}"
    if frames != record.frames:
        return f"{output} has {frames} frames, the journal says {record.frames}"
    if sha != record.sha256:
        return f"{output} has changed since it was written (sha256 differs)"
    return None


class Journal:
    """The journal of one output folder: the latest record per output path."""

    def __init__(self, folder: str | Path) -> None:
        self.path = Path(folder) / JOURNAL_NAME
        self.records: dict[str, Record] = {}
        self.lines = 0
        if self.path.is_file():
            self._load()

    def _load(self) -> None:
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                try:
                    record = Record(**json.loads(line))
                except (ValueError, TypeError):
                    continue  # a torn last line, or a line from another version: not a finished output
                self.records[record.output] = record
                self.lines += 1

    def get(self, output: str | Path) -> Record | None:
        """The record of ``output`` (a path in this journal's folder, or its name)."""
        return self.records.get(Path(output).name)

    def verify(self, record: Record) -> str | None:
        return verify(record, self.path.parent)

    def append(self, record: Record) -> None:
        record.finished = record.finished or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        line = json.dumps(asdict(record), sort_keys=True) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        self.records[record.output] = record
        self.lines += 1

    def compact(self) -> None:
        """Rewrite the file with one line per output (atomically) when it holds more."""
        if self.lines <= len(self.records):
            return
        tmp = temp_path(self.path)
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                for record in self.records.values():
                    f.write(json.dumps(asdict(record), sort_keys=True) + "\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()
        self.lines = len(self.records)
