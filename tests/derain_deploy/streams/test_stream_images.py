"""Image files, folders and globs (identity model: output = input)."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from stream_helpers import run_identity

from derain_deploy.streams import (
    ImageSink,
    StreamError,
    open_sink,
    open_source,
    read_image,
    write_image,
)


def pattern(h: int = 24, w: int = 32, channels: int = 3, dtype: type = np.uint8) -> np.ndarray:
    """Distinct values in every pixel and channel (BGR order on disk, as OpenCV writes)."""
    maxv = 255 if dtype == np.uint8 else 65535
    rng = np.random.default_rng(channels * 100 + h)
    shape = (h, w) if channels == 1 else (h, w, channels)
    return rng.integers(0, maxv + 1, size=shape).astype(dtype)


def write_raw(path: Path, data: np.ndarray) -> Path:
    assert cv2.imwrite(str(path), data)
    return path


def roundtrip(src: Path, out: Path) -> np.ndarray:
    source = open_source(src)
    run_identity(source, open_sink(source.info, out))
    return cv2.imread(str(out), cv2.IMREAD_UNCHANGED)


@pytest.mark.parametrize(
    ("ext", "channels", "dtype"),
    [
        (".png", 1, np.uint8),
        (".png", 3, np.uint8),
        (".png", 4, np.uint8),
        (".png", 1, np.uint16),
        (".png", 3, np.uint16),
        (".png", 4, np.uint16),
        (".tif", 3, np.uint16),
        (".tiff", 4, np.uint8),
        (".bmp", 3, np.uint8),
        (".bmp", 1, np.uint8),
    ],
)
def test_lossless_formats_round_trip_exactly(tmp_path: Path, ext: str, channels: int, dtype: type) -> None:
    data = pattern(channels=channels, dtype=dtype)
    out = roundtrip(write_raw(tmp_path / f"in{ext}", data), tmp_path / f"out{ext}")
    assert out.dtype == data.dtype and out.shape == data.shape  # depth, grey and alpha all kept
    np.testing.assert_array_equal(out, data)


def test_rgb_order_is_kept(tmp_path: Path) -> None:
    bgr = np.zeros((8, 8, 3), np.uint8)
    bgr[..., 2] = 200  # red on disk
    src = write_raw(tmp_path / "red.png", bgr)
    image, meta = read_image(src)
    assert image[0, 0].tolist() == pytest.approx([200 / 255, 0, 0])
    assert meta["bit_depth"] == 8 and meta["grey"] is False and meta["alpha"] is None


@pytest.mark.parametrize(("ext", "tolerance"), [(".jpg", 12), (".webp", 12)])
def test_lossy_formats_round_trip_closely(tmp_path: Path, ext: str, tolerance: int) -> None:
    smooth = np.dstack([np.tile(np.linspace(30, 220, 32, dtype=np.uint8), (24, 1))] * 3)
    smooth[..., 0] //= 2
    out = roundtrip(write_raw(tmp_path / f"in{ext}", smooth), tmp_path / f"out{ext}")
    assert out.shape == smooth.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - smooth.astype(int)).max() <= tolerance


def test_webp_keeps_alpha(tmp_path: Path) -> None:
    data = pattern(channels=4)
    data[..., :3] = 128
    out = roundtrip(write_raw(tmp_path / "in.webp", data), tmp_path / "out.webp")
    assert out.shape[2] == 4
    np.testing.assert_array_equal(out[..., 3], data[..., 3])


def test_16bit_to_8bit_format_and_alpha_dropped_for_jpeg(tmp_path: Path) -> None:
    data = pattern(channels=4, dtype=np.uint16)
    out = roundtrip(write_raw(tmp_path / "deep.png", data), tmp_path / "flat.jpg")
    assert out.dtype == np.uint8 and out.shape == (24, 32, 3)


def test_16bit_alpha_rescaled_when_written_as_8bit_png(tmp_path: Path) -> None:
    _, meta = read_image(write_raw(tmp_path / "deep.png", pattern(channels=4, dtype=np.uint16)))
    meta = {**meta, "bit_depth": 8}
    write_image(tmp_path / "eight.png", np.zeros((24, 32, 3), np.float32), meta)
    out = cv2.imread(str(tmp_path / "eight.png"), cv2.IMREAD_UNCHANGED)
    assert out.dtype == np.uint8
    expected = np.floor(meta["alpha"].astype(np.float64) / 65535 * 255 + 0.5)
    assert np.abs(out[..., 3].astype(int) - expected).max() <= 1


def test_float_tiff_round_trips_as_float(tmp_path: Path) -> None:
    data = np.random.default_rng(1).random((16, 20, 3), dtype=np.float32)
    out = roundtrip(write_raw(tmp_path / "f.tif", data), tmp_path / "g.tif")
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, data, atol=1e-7)


def test_grey_is_seen_as_rgb_and_written_as_grey(tmp_path: Path) -> None:
    image, meta = read_image(write_raw(tmp_path / "g.png", pattern(channels=1)))
    assert image.shape == (24, 32, 3) and meta["grey"] is True
    assert np.array_equal(image[..., 0], image[..., 2])


def test_jpeg_exif_orientation_is_applied(tmp_path: Path) -> None:
    pil = pytest.importorskip("PIL.Image")
    img = pil.fromarray(np.zeros((20, 40, 3), np.uint8))
    exif = pil.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    img.save(tmp_path / "phone.jpg", exif=exif.tobytes())
    image, _ = read_image(tmp_path / "phone.jpg")
    assert image.shape == (40, 20, 3)


def make_tree(root: Path) -> list[str]:
    names = ["a.png", "b.jpg", "sub/c.png", "sub/deeper/d.bmp"]
    for i, name in enumerate(names):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        write_raw(root / name, np.full((8, 10, 3), 20 * i, np.uint8))
    (root / "notes.txt").write_text("not an image")
    return names


def test_folder_keeps_relative_names_in_default_output_folder(tmp_path: Path) -> None:
    names = make_tree(tmp_path / "rainy")
    source = open_source(tmp_path / "rainy")
    assert source.info.kind == "folder" and source.info.frames == 4
    run_identity(source, open_sink(source.info, None))
    out = tmp_path / "rainy.derained"
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == sorted(names)
    assert cv2.imread(str(out / "sub/c.png"))[0, 0, 0] == 40


def test_glob_names_are_relative_to_its_fixed_part(tmp_path: Path) -> None:
    make_tree(tmp_path / "rainy")
    source = open_source(f"{tmp_path}/rainy/**/*.png")
    names = [f.name for f in source]
    assert names == ["a.png", "sub/c.png"]
    source = open_source(f"{tmp_path}/rainy/**/*.png")
    run_identity(source, open_sink(source.info, tmp_path / "out"))
    assert (tmp_path / "out/sub/c.png").is_file() and (tmp_path / "out/a.png").is_file()


def test_folder_output_into_the_input_folder_is_refused(tmp_path: Path) -> None:
    make_tree(tmp_path / "rainy")
    info = open_source(tmp_path / "rainy").info
    with pytest.raises(StreamError, match="refusing"):
        open_sink(info, tmp_path / "rainy")
    with pytest.raises(StreamError, match="refusing"):
        open_sink(info, tmp_path / "rainy" / "sub" / "..")


def test_glob_output_onto_its_inputs_is_refused_per_file(tmp_path: Path) -> None:
    make_tree(tmp_path / "rainy")
    source = open_source(f"{tmp_path}/rainy/sub/*.png")
    with pytest.raises(StreamError, match="refusing to write into the input folder"):
        open_sink(source.info, tmp_path / "rainy" / "sub" / "deeper" / "..")
    (tmp_path / "mirror").mkdir()
    (tmp_path / "mirror" / "c.png").symlink_to(tmp_path / "rainy/sub/c.png")
    sink = open_sink(source.info, tmp_path / "mirror")
    before = (tmp_path / "rainy/sub/c.png").read_bytes()
    with pytest.raises(StreamError, match="refusing to overwrite the input"):
        run_identity(source, sink)
    assert (tmp_path / "rainy/sub/c.png").read_bytes() == before


def test_single_image_default_name_and_refusal(tmp_path: Path) -> None:
    src = write_raw(tmp_path / "photo.png", pattern())
    source = open_source(src)
    assert source.info.kind == "image" and (source.info.width, source.info.height) == (32, 24)
    run_identity(source, open_sink(source.info, None))
    assert (tmp_path / "photo.derained.png").is_file()
    (tmp_path / "outdir").mkdir()
    source = open_source(src)
    run_identity(source, open_sink(source.info, tmp_path / "outdir"))
    assert (tmp_path / "outdir" / "photo.derained.png").is_file()
    with pytest.raises(StreamError, match="refusing to overwrite the input"):
        open_sink(source.info, src)


def test_compare_images_side_by_side(tmp_path: Path) -> None:
    make_tree(tmp_path / "rainy")
    source = open_source(tmp_path / "rainy")
    run_identity(source, open_sink(source.info, None, compare=True))
    side = cv2.imread(str(tmp_path / "rainy.compare" / "sub" / "c.png"))
    assert side.shape == (8, 20, 3)
    assert (tmp_path / "rainy.derained" / "sub" / "c.png").is_file()


def test_abort_leaves_no_partial_files(tmp_path: Path) -> None:
    sink = ImageSink(folder=tmp_path / "out")
    sink.abort()
    assert not (tmp_path / "out").exists()  # a folder is created with its first complete image only


def bad_input(folder: Path, case: str) -> Path | str:
    if case == "missing":
        return folder / "missing.png"
    if case == "junk":
        (folder / "junk.png").write_bytes(b"\x89PNG garbage")
        return folder / "junk.png"
    if case == "empty file":
        (folder / "empty.jpg").write_bytes(b"")
        return folder / "empty.jpg"
    if case == "empty folder":
        (folder / "empty").mkdir()
        return folder / "empty"
    return f"{folder}/nothing*.png"  # a glob that matches nothing


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", "no such file"),
        ("junk", "cannot decode image"),
        ("empty file", "cannot decode image"),
        ("empty folder", "no images"),
        ("glob", "no images"),
    ],
)
def test_bad_image_inputs_give_one_line_errors(tmp_path: Path, case: str, message: str) -> None:
    with pytest.raises(StreamError, match=message) as err:
        list(open_source(bad_input(tmp_path, case)))
    assert "\n" not in str(err.value)


def test_unsupported_image_extension(tmp_path: Path) -> None:
    with pytest.raises(StreamError, match="unsupported image format"):
        read_image(tmp_path / "x.gif")
    with pytest.raises(StreamError, match="output must be an image"):
        open_sink(open_source(write_raw(tmp_path / "p.png", pattern())).info, tmp_path / "p.mp4")


def test_bad_image_in_folder_stops_or_is_skipped(tmp_path: Path) -> None:
    make_tree(tmp_path / "rainy")
    (tmp_path / "rainy" / "b.jpg").write_bytes(b"broken")
    with pytest.raises(StreamError, match=r"b\.jpg"):
        list(open_source(tmp_path / "rainy"))
    source = open_source(tmp_path / "rainy", skip_bad_frames=True)
    assert [f.name for f in source] == ["a.png", "sub/c.png", "sub/deeper/d.bmp"]
    assert source.bad_frames == [1]


def test_interrupted_image_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C between writing the temporary file and renaming it: no file at either name."""
    import derain_deploy.streams.files as files

    def interrupted(src: str, dst: str) -> None:
        assert Path(src).is_file() and not Path(dst).exists()
        raise KeyboardInterrupt

    monkeypatch.setattr(files.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_image(tmp_path / "out.png", np.zeros((4, 4, 3), np.float32))
    assert list(tmp_path.iterdir()) == []


def test_image_over_the_pixel_limit_is_refused_from_its_header(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bad_files import huge_png

    def no_decoding(*args: object) -> None:
        raise AssertionError("the image was decoded")

    path = huge_png(tmp_path / "huge.png")
    monkeypatch.setattr(cv2, "imdecode", no_decoding)
    with pytest.raises(StreamError) as err:
        open_source(path)
    message = str(err.value)
    assert "20000x20000" in message and "100 megapixels" in message and "--max-pixels" in message
    with pytest.raises(StreamError, match="--max-pixels"):  # in a folder too
        list(open_source(tmp_path))


def test_max_pixels_is_honoured(tmp_path: Path) -> None:
    path = write_raw(tmp_path / "p.png", pattern(h=10, w=10))
    with pytest.raises(StreamError, match="10x10"):
        open_source(path, max_pixels=99)
    assert next(iter(open_source(path, max_pixels=100))).image.shape == (10, 10, 3)


def test_unreadable_folder_says_permission_denied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_tree(tmp_path / "rainy")
    real_scandir = os.scandir

    def denied(path: object) -> object:  # chmod 000 does not stop root, who runs CI here
        if Path(str(path)).name == "rainy":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", denied)
    with pytest.raises(StreamError, match=r"permission denied: .*rainy"):
        open_source(tmp_path / "rainy")
