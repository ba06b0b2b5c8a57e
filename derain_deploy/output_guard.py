"""One check for every path a command writes, made before any work starts: a written path is
never an input of the same run (the same file, or a file inside an input folder) and never
outside the folder it was asked for."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

PathLike = str | os.PathLike[str]


class OutputGuardError(ValueError):
    """A written path that would destroy an input or escape its folder; the message is one line."""


def _real(path: PathLike) -> str:
    return os.path.realpath(os.fspath(path))


def is_inside(path: PathLike, folder: PathLike) -> bool:
    """True when ``path`` is ``folder`` itself or lies anywhere below it (symbolic links resolved)."""
    real, root = _real(path), _real(folder)
    return real == root or real.startswith(root.rstrip(os.sep) + os.sep)


def _inode(path: PathLike) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_dev, st.st_ino


def check_writes(
    writes: Mapping[str, PathLike | None] | Iterable[tuple[str, PathLike | None]],
    inputs: Iterable[PathLike | None] = (),
    input_folders: Iterable[PathLike | None] = (),
    *,
    within: PathLike | None = None,
) -> None:
    """Refuse (:class:`OutputGuardError`) when a path in ``writes`` (label, e.g. ``--json``, to
    path, or such pairs; None: not written) is one of ``inputs`` (same real path, or a hard link to it), lies
    inside one of ``input_folders``, or, when ``within`` is given, falls outside that folder.
    Linear in the number of paths: a job checks every output image against every input."""
    by_real: dict[str, Path] = {}
    by_inode: dict[tuple[int, int], Path] = {}
    for source in (Path(p) for p in inputs if p):
        by_real.setdefault(_real(source), source)
        if (inode := _inode(source)) is not None:
            by_inode.setdefault(inode, source)
    folders = [Path(p) for p in input_folders if p]
    for label, path in writes.items() if isinstance(writes, Mapping) else writes:
        if not path:
            continue
        source = by_real.get(_real(path))
        if source is None and os.path.exists(path):
            source = by_inode.get(_inode(path))  # type: ignore[arg-type]
        if source is not None:
            raise OutputGuardError(
                f"{label} {path} is an input of this run ({source}): refusing to overwrite it"
            )
        for folder in folders:
            if is_inside(path, folder):
                raise OutputGuardError(
                    f"{label} {path} lies inside the input folder {folder}: choose a path outside it"
                )
        if within is not None and not is_inside(Path(path).parent, within):
            raise OutputGuardError(f"{label} {path} falls outside the output folder {within}")
