"""Small file-system helpers shared by the sinks: temporary names, atomic writes, input checks."""

from __future__ import annotations

import contextlib
import fnmatch
import glob
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


def ensure_writable_dir(folder: Path) -> list[Path]:
    """Create ``folder`` if needed and check that files can be created in it; returns the folders
    it created, deepest first (for :func:`remove_created_dirs` after a failure)."""
    created = []
    missing = folder
    while not missing.exists() and missing != missing.parent:
        created.append(missing)
        missing = missing.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StreamError(f"cannot create output folder {folder}: {one_line(e.strerror or e)}") from None
    if not folder.is_dir():
        raise StreamError(f"output folder {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise StreamError(f"output folder {folder} is not writable")
    return created


def remove_created_dirs(created: list[Path]) -> None:
    """Remove the folders :func:`ensure_writable_dir` made, deepest first, while they are empty."""
    for folder in created:
        try:
            folder.rmdir()
        except OSError:
            return


def check_writable_dir(folder: Path) -> None:
    """Check that ``folder`` can be created (or written, if it exists) without creating it:
    outputs create their folders only when the first output is complete."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise StreamError(f"output folder {folder} is not a folder ({existing} is a file)")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise StreamError(f"output folder {existing} is not writable")


def _glob_match(parts: list[str], pattern: list[str]) -> bool:
    """``parts`` (a relative path's names) match ``pattern`` (glob names; ``**``: any number of
    folders). As :mod:`glob`: names starting with a dot match only patterns starting with one."""
    if not pattern:
        return not parts
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return _glob_match(parts, rest) or bool(
            parts and not parts[0].startswith(".") and _glob_match(parts[1:], pattern)
        )
    if not parts or (parts[0].startswith(".") and not head.startswith(".")):
        return False
    return fnmatch.fnmatchcase(parts[0], head) and _glob_match(parts[1:], rest)


def glob_paths(pattern: str) -> list[str]:
    """The paths ``pattern`` matches, sorted, as ``glob.glob(pattern, recursive=True)`` gives them,
    except that ``**`` never descends into a symbolic link to a folder (``imgs/up -> ..`` would
    repeat the tree until the path is too long). A link itself can still match a name."""
    if "**" not in pattern:
        return sorted(glob.glob(pattern))
    parts = Path(pattern).parts
    fixed = next(i for i, part in enumerate(parts) if glob.has_magic(part))
    root = Path(*parts[:fixed]) if fixed else Path(".")
    names = list(parts[fixed:])
    found = []
    for dirpath, dirs, files in os.walk(root):  # followlinks=False: links are listed, not entered
        for entry in (*dirs, *files):
            path = Path(dirpath) / entry
            if _glob_match(list(path.relative_to(root).parts), names):
                found.append(str(path) if fixed else str(path.relative_to(root)))
    return sorted(found)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it onto ``path``."""
    try:
        write_atomic(path, data)
    except OSError as e:
        raise StreamError(f"cannot write {path}: {one_line(e.strerror or e)}") from None


def remove_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()
