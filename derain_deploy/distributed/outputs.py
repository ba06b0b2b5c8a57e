"""A job's inputs and outputs on disk: how the journal names an input, one-line task errors,
and removing what a killed or failed task left behind."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path

from ..streams.files import one_line, remove_quietly, temp_path
from ..streams.video_source import is_stream_url
from ..user_errors import user_errors


def describe_error(error: BaseException) -> str:
    """One line: the message of the library's own errors, type and message of anything else."""
    if isinstance(error, user_errors(ValueError)):
        return one_line(error)
    return f"{type(error).__name__}: {one_line(error)}"


def remove_stale_temps(output: Path) -> None:
    """Remove the temporary files of ``output`` left by a process that was killed while writing
    it (``.name.part-PID.ext``, see :func:`~derain_deploy.streams.files.temp_path`). The job is
    about to write it again; two jobs must not write the same outputs at the same time."""
    pattern = temp_path(output).name.replace(f"-{os.getpid()}", "-*", 1)
    for stale in output.parent.glob(pattern):
        remove_quietly(stale)


def input_id(spec: str) -> str:
    """How the journal names an input: its absolute path (a URL as it is)."""
    return spec if is_stream_url(spec) else os.path.realpath(spec)  # a link loop: no RuntimeError


def remove_output(output: Path, kind: str, names: Sequence[str]) -> None:
    """Remove an output that cannot be recorded: the file, or a folder's ``names`` (then the
    folders left empty)."""
    if kind != "folder":
        remove_quietly(output)
        return
    for name in names:
        remove_quietly(output / name)
    for folder in sorted({(output / name).parent for name in names} | {output}, key=lambda p: -len(p.parts)):
        with contextlib.suppress(OSError):
            folder.rmdir()
