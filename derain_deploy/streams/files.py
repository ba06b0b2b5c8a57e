"""Small file-system helpers shared by the sinks: temporary names, atomic writes, input checks."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from ..atomic import write_atomic
from .base import StreamError


def one_line(error: BaseException | str) -> str:
    """An exception's message on one line (FFmpeg and OpenCV messages can span several)."""
    # FFmpeg errors carry a clean strerror; str() adds an errno and the C function's name.
    text = (getattr(error, "strerror", None) or str(error)).strip() or type(error).__name__
    return " ".join(text.split())


def temp_path(final: Path) -> Path:
    """A hidden temporary name beside ``final`` that keeps its extension (muxers and encoders
    pick the format from it): ``dir/.name.part-<pid>.ext``."""
    return final.with_name(f".{final.stem}.part-{os.getpid()}{final.suffix}")


def same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_not_input(output: Path, input_path: Path) -> None:
    """Refuse an output path that is (or resolves to) the input file."""
    if same_file(output, input_path):
        raise StreamError(f"refusing to overwrite the input {input_path}: choose another output with -o")


def ensure_writable_dir(folder: Path) -> None:
    """Create ``folder`` if needed and check that files can be created in it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StreamError(f"cannot create output folder {folder}: {one_line(e.strerror or e)}") from None
    if not folder.is_dir():
        raise StreamError(f"output folder {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise StreamError(f"output folder {folder} is not writable")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it onto ``path``."""
    try:
        write_atomic(path, data)
    except OSError as e:
        raise StreamError(f"cannot write {path}: {one_line(e.strerror or e)}") from None


def remove_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()
