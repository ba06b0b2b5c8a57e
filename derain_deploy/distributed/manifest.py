"""The inputs of a job: paths, glob patterns and manifest files (one path per line)."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..streams.base import StreamError
from ..streams.files import glob_paths, one_line
from ..streams.images import is_image_path
from ..streams.video_source import is_stream_url


def read_manifest(path: str | Path) -> list[str]:
    """The entries of a manifest file: one path, glob or URL per line; blank lines and lines
    starting with ``#`` are ignored (a ``#`` inside a line is part of the path). Relative paths
    are relative to the manifest's folder."""
    manifest = Path(path)
    try:
        text = manifest.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StreamError(f"no such manifest file: {manifest}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise StreamError(f"cannot read manifest {manifest}: {one_line(e)}") from None
    entries = []
    for line in text.splitlines():
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        if is_stream_url(entry) or Path(entry).is_absolute():
            entries.append(entry)
        else:
            entries.append(str(manifest.parent / entry))
    return entries


def _expand_glob(pattern: str) -> list[str]:
    """A pattern matching only images stays one input (``derain-run``'s image-set meaning, one
    output folder); otherwise each match (video, image or folder) is an input of its own."""
    matches = [p for p in glob_paths(pattern) if not Path(p).name.startswith(".")]
    if not matches or all(Path(p).is_file() and is_image_path(p) for p in matches):
        return [pattern]  # no match: open_source reports it for this input
    return matches


def expand_inputs(specs: Iterable[str], manifests: Sequence[str | Path] = ()) -> list[str]:
    """Every input of a job, in order, each once: ``specs`` then each manifest's entries, with
    glob patterns expanded (see :func:`_expand_glob`)."""
    entries = list(specs)
    for manifest in manifests:
        entries.extend(read_manifest(manifest))
    seen: set[str] = set()
    inputs = []
    for entry in entries:
        expanded = (
            [entry]
            if is_stream_url(entry) or Path(entry).exists() or not glob.has_magic(entry)
            else (_expand_glob(entry))
        )
        for spec in expanded:
            key = spec if is_stream_url(spec) else os.path.realpath(spec)  # a link loop: no RuntimeError
            if key not in seen:
                seen.add(key)
                inputs.append(spec)
    return inputs
