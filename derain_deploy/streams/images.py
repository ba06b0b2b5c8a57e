"""Image files, folders and globs: read with OpenCV, written atomically with the input's format.

What happens to each kind of image (the same rules for every source of images):

- Colour: read as stored (``IMREAD_UNCHANGED``, BGR turned into RGB); JPEGs are turned upright
  by their EXIF orientation (the output carries no EXIF, so it would look rotated otherwise).
- Grey (1 channel): the model sees it as RGB with three equal channels; the output is written
  back as grey (BT.601 luma of the derained RGB).
- Alpha (RGBA, grey + alpha): the model sees RGB only; the alpha channel is kept untouched and
  re-attached to the output where the output format has alpha (PNG, TIFF, WebP). Written as
  JPEG or BMP, the alpha channel is dropped. Grey + alpha comes out as RGBA (OpenCV reads and
  writes it as four channels).
- Bit depth: 16-bit in gives 16-bit out for PNG and TIFF (the model works in float32, so no
  precision is lost on the way); 32-bit float TIFFs are clipped to [0, 1] and written back as
  float TIFFs. Every other format, and 16-bit input written to an 8-bit-only format, gives 8 bit.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from ..image_size import DEFAULT_MAX_PIXELS, too_large
from .base import Frame, SourceInfo, StreamError
from .files import atomic_write_bytes, check_not_input, check_writable_dir, glob_paths, one_line
from .image_decode import decode_image

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
ALPHA_EXTS = (".png", ".tif", ".tiff", ".webp")
DEEP_EXTS = (".png", ".tif", ".tiff")  # 16-bit capable
FLOAT_EXTS = (".tif", ".tiff")


def is_image_path(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTS


def read_image(
    path: str | Path, max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> tuple[np.ndarray, dict[str, object]]:
    """Read an image file as HxWx3 float32 RGB in [0, 1] plus what is needed to write it back:
    ``meta = {"bit_depth": 8 | 16 | 32, "grey": bool, "alpha": HxW array | None, "path": str}``.
    An image larger than ``max_pixels`` (None: no limit) is refused from its header, before decoding."""
    path = Path(path)
    if path.suffix.lower() not in IMAGE_EXTS:
        raise StreamError(
            f"unsupported image format {path.suffix or '(none)'}: {path} (supported: {', '.join(IMAGE_EXTS)})"
        )
    try:
        data = np.fromfile(path, dtype=np.uint8)  # cv2.imread cannot open non-ASCII paths everywhere
    except FileNotFoundError:
        raise StreamError(f"no such file: {path}") from None
    except OSError as e:
        raise StreamError(f"cannot read {path}: {one_line(e)}") from None
    if refusal := too_large(path, max_pixels):
        raise StreamError(refusal)
    rgb, meta = decode_image(data, path.suffix, str(path))
    return rgb, {**meta, "path": str(path)}


def encode_image(ext: str, rgb: np.ndarray, meta: dict[str, object] | None = None) -> bytes:
    """Encode HxWx3 float RGB in [0, 1] for a file with extension ``ext``, following the rules
    of the module docstring for ``meta`` (as returned by :func:`read_image`)."""
    ext = ext.lower()
    meta = meta or {}
    if ext not in IMAGE_EXTS:
        raise StreamError(f"unsupported image format {ext or '(none)'} (supported: {', '.join(IMAGE_EXTS)})")
    depth = int(meta.get("bit_depth", 8))  # type: ignore[call-overload]
    if depth == 32 and ext in FLOAT_EXTS:
        dtype, maxv = np.float32, 1.0
    elif depth >= 16 and ext in DEEP_EXTS:
        dtype, maxv = np.uint16, 65535.0
    else:
        dtype, maxv = np.uint8, 255.0
    rgb = np.clip(np.asarray(rgb, dtype=np.float32), 0.0, 1.0)
    alpha = meta.get("alpha") if ext in ALPHA_EXTS else None
    grey_out = meta.get("grey") and alpha is None
    out = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if grey_out else rgb[:, :, ::-1]
    out = _quantize(out, dtype, maxv)
    if alpha is not None:
        a = np.asarray(alpha)
        if a.shape != out.shape[:2]:
            raise StreamError(f"alpha channel {a.shape} does not match the image {out.shape[:2]}")
        out = np.dstack([out, _convert_alpha(a, dtype, maxv)])
    params: list[int] = []
    if ext in (".jpg", ".jpeg"):
        params = [cv2.IMWRITE_JPEG_QUALITY, 95]
    elif ext == ".webp":
        params = [cv2.IMWRITE_WEBP_QUALITY, 95]
    ok, buf = cv2.imencode(ext, np.ascontiguousarray(out), params)
    if not ok:
        raise StreamError(f"OpenCV could not encode a {ext} image of shape {out.shape} {out.dtype}")
    return buf.tobytes()


def _quantize(x: np.ndarray, dtype: type, maxv: float) -> np.ndarray:
    if dtype is np.float32:
        return x.astype(np.float32)
    return np.floor(x * np.float32(maxv) + np.float32(0.5)).astype(dtype)


def _convert_alpha(alpha: np.ndarray, dtype: type, maxv: float) -> np.ndarray:
    if alpha.dtype == dtype:
        return alpha
    src_max = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(alpha.dtype, 1.0)
    return _quantize(np.clip(alpha.astype(np.float32) / np.float32(src_max), 0, 1), dtype, maxv)


def write_image(path: str | Path, rgb: np.ndarray, meta: dict[str, object] | None = None) -> Path:
    """Write ``rgb`` atomically (temporary file + rename) in the format of ``path``'s extension."""
    path = Path(path)
    atomic_write_bytes(path, encode_image(path.suffix, rgb, meta))
    return path


def glob_root(pattern: str) -> Path:
    """The folder part of a glob pattern before its first wildcard (names are kept relative to it)."""
    parts = Path(pattern).parts
    root: list[str] = []
    for part in parts:
        if glob.has_magic(part):
            break
        root.append(part)
    return Path(*root) if root else Path(".")


def list_images(spec: str | Path) -> tuple[Path, list[Path]]:
    """(root, sorted image files) of a folder (searched recursively) or a glob pattern."""
    spec_s = str(spec)
    if Path(spec_s).is_dir():
        root = Path(spec_s)
        files = [Path(dirpath) / f for dirpath, _, names in os.walk(root, onerror=_unreadable) for f in names]
    else:
        root = glob_root(spec_s)
        files = [Path(p) for p in glob_paths(spec_s)]  # ** does not enter folder links
    files = sorted(p for p in files if p.is_file() and is_image_path(p) and not p.name.startswith("."))
    return root, files


def _unreadable(error: OSError) -> None:
    """os.walk's error hook: a folder that cannot be listed stops the run (never "no images")."""
    if isinstance(error, PermissionError):
        raise StreamError(f"permission denied: {error.filename}") from None
    raise StreamError(f"cannot list {error.filename}: {one_line(error.strerror or error)}") from None


class ImageSource:
    """One image file, every image under a folder (recursively), or the images a glob matches.

    Frames are named by their path relative to the folder (the glob's fixed part), so a sink can
    recreate the same tree. With ``skip_bad_frames`` unreadable images are skipped and listed in
    ``bad_frames`` (their indices) instead of stopping the run."""

    def __init__(
        self, spec: str | Path, *, skip_bad_frames: bool = False, max_pixels: int | None = DEFAULT_MAX_PIXELS
    ) -> None:
        spec_s = str(spec)
        self.skip_bad_frames = skip_bad_frames
        self.max_pixels = max_pixels
        self.bad_frames: list[int] = []
        if Path(spec_s).is_file():
            self.root = Path(spec_s).parent
            self.files = [Path(spec_s)]
            self.info = SourceInfo(kind="image", path=spec_s, frames=1)
            # Read the single image now: a bad file fails at open time, and the size is known.
            self._first: tuple[np.ndarray, dict[str, object]] | None = read_image(spec_s, max_pixels)
            h, w = self._first[0].shape[:2]
            self.info.width, self.info.height = w, h
            return
        self.root, self.files = list_images(spec_s)
        if not self.files:
            what = "folder" if Path(spec_s).is_dir() else "pattern"
            raise StreamError(f"no images ({', '.join(IMAGE_EXTS)}) in {what} {spec_s}")
        self._first = None
        self.info = SourceInfo(kind="folder", path=str(self.root), frames=len(self.files))

    def __iter__(self) -> Iterator[Frame]:
        for index, path in enumerate(self.files):
            try:
                if self._first is not None:
                    image, meta = self._first
                    self._first = None
                else:
                    image, meta = read_image(path, self.max_pixels)
            except StreamError:
                if not self.skip_bad_frames:
                    raise
                self.bad_frames.append(index)
                continue
            name = path.relative_to(self.root).as_posix() if self.info.kind == "folder" else path.name
            yield Frame(image=image, index=index, name=name, meta=meta)

    def close(self) -> None:
        self._first = None


class ImageSink:
    """Writes each output image atomically: to ``path`` (one image) or to ``folder / frame.name``.

    The output format follows each output file's extension; see the module docstring for alpha,
    grey and bit depth. Refuses to write over the frame's input file. ``abort`` leaves no partial
    file (each image appears at its final name only when complete); images already finished are
    kept, as they are complete files. ``written`` lists the paths written."""

    def __init__(self, *, path: Path | None = None, folder: Path | None = None) -> None:
        if (path is None) == (folder is None):
            raise ValueError("give exactly one of path (one image) or folder")
        self.path, self.folder = path, folder
        check_writable_dir(folder if folder is not None else path.parent)  # type: ignore[union-attr]
        self.written: list[Path] = []

    def target(self, frame: Frame) -> Path:
        if self.path is not None:
            return self.path
        assert self.folder is not None
        if not frame.name:
            raise StreamError(f"frame {frame.index} has no name to write it under in {self.folder}")
        return self.folder / frame.name

    def write(self, frame: Frame, output: np.ndarray) -> None:
        target = self.target(frame)
        if frame.meta.get("path"):
            check_not_input(target, Path(str(frame.meta["path"])))
        target.parent.mkdir(parents=True, exist_ok=True)
        write_image(target, output, frame.meta)
        self.written.append(target)

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass
