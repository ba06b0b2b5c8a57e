"""Atomic file writes: a temporary file beside the target, then one rename onto it."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic_with(path: str | Path, writer: Callable[[Path], object]) -> Path:
    """Let ``writer`` write a temporary file beside ``path`` (``torch.save(obj, tmp)``), then
    rename it onto ``path``: readers see the old file or the whole new one, never a part. The
    folder is created if needed; the file gets the usual permissions (not mkstemp's 0600); a
    writer that raises leaves the old file and no temporary."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        writer(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_atomic(path: str | Path, data: bytes | str) -> Path:
    """Write ``data`` (text as UTF-8) to ``path`` atomically (see :func:`write_atomic_with`)."""
    blob = data.encode() if isinstance(data, str) else data
    return write_atomic_with(path, lambda tmp: tmp.write_bytes(blob))
