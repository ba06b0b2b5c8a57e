"""The factories (kind detection, default output names), cameras, stream URLs, stage grids."""

from __future__ import annotations

import functools
import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from stream_helpers import corrupt_packet, indexed_frames, probe, run_identity

from derain_deploy.model import DerainConfig, DerainNet
from derain_deploy.streams import (
    FrameSink,
    FrameSource,
    SourceInfo,
    StreamError,
    compare_output_path,
    default_output_path,
    open_sink,
    open_source,
    stages_grid,
    write_stages_preview,
    write_test_video,
)


@pytest.mark.parametrize(
    ("kind", "path", "output", "expected"),
    [
        ("image", "d/photo.png", None, "d/photo.derained.png"),
        ("image", "d/photo.JPG", "out/", "out/photo.derained.JPG"),
        ("image", "d/photo.png", "o/new.tif", "o/new.tif"),
        ("video", "d/clip.mp4", None, "d/clip.derained.mp4"),
        ("video", "d/clip.mkv", "res", "res/clip.derained.mkv"),
        ("video", "d/clip.webm", None, "d/clip.derained.mp4"),
        ("video", "d/clip.mp4", "x/y.mov", "x/y.mov"),
        ("folder", "data/rainy", None, "data/rainy.derained"),
        ("folder", "data/rainy", "clean", "clean"),
        ("camera", "camera0", None, "camera0.derained.mp4"),
        ("stream", "rtsp://host:554/live/cam1.sdp", None, "cam1.derained.mp4"),
        ("stream", "http://host/", "o/", "o/stream.derained.mp4"),
    ],
)
def test_default_output_path(kind: str, path: str, output: str | None, expected: str) -> None:
    info = SourceInfo(kind=kind, path=path)
    assert default_output_path(info, output) == Path(expected)


def test_compare_output_path() -> None:
    assert compare_output_path(Path("d/clip.derained.mp4")) == Path("d/clip.compare.mp4")
    assert compare_output_path(Path("d/out.mp4")) == Path("d/out.compare.mp4")
    assert compare_output_path(Path("data/rainy.derained"), folder=True) == Path("data/rainy.compare")


def test_open_source_picks_the_kind(tmp_path: Path, tone_video: Path) -> None:
    import cv2

    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((4, 6, 3), np.uint8))
    kinds = {
        "video": open_source(tone_video),
        "image": open_source(tmp_path / "a.png"),
        "folder": open_source(tmp_path),
    }
    for kind, source in kinds.items():
        assert isinstance(source, FrameSource) and source.info.kind == kind
        source.close()
    assert open_source(f"{tmp_path}/*.png").info.kind == "folder"
    assert isinstance(open_sink(kinds["video"].info, tmp_path / "o.mp4"), FrameSink)
    with pytest.raises(StreamError, match="no input"):
        open_source(None)


def test_camera_that_does_not_open() -> None:
    with pytest.raises(StreamError, match="camera 97 did not open") as err:
        open_source(None, camera=97)
    assert "\n" not in str(err.value)


def test_camera_frames_are_timed_by_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """The camera source on a fake VideoCapture (no camera here): RGB order, pts in ms."""
    import cv2

    class FakeCapture:
        def __init__(self, index: int) -> None:
            self.n = 0

        def isOpened(self) -> bool:  # noqa: N802 (OpenCV's name)
            return True

        def get(self, prop: int) -> float:
            return {cv2.CAP_PROP_FPS: 30.0, cv2.CAP_PROP_FRAME_WIDTH: 8, cv2.CAP_PROP_FRAME_HEIGHT: 6}[prop]

        def read(self) -> tuple[bool, np.ndarray | None]:
            self.n += 1
            if self.n > 3:
                return False, None
            time.sleep(0.02)
            bgr = np.zeros((6, 8, 3), np.uint8)
            bgr[..., 0] = 255  # blue
            return True, bgr

        def release(self) -> None:
            pass

    monkeypatch.setattr(cv2, "VideoCapture", FakeCapture)
    source = open_source(None, camera=0)
    assert source.info.kind == "camera" and source.info.fps == 30 and source.info.width == 8
    frames = list(source)
    assert [f.index for f in frames] == [0, 1, 2]
    assert frames[0].image[0, 0].tolist() == [0.0, 0.0, 1.0]
    assert frames[0].pts == 0 and frames[2].pts >= frames[1].pts + 15


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[str]:
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_http_stream(tmp_path: Path, http_server: str) -> None:
    write_test_video(tmp_path / "live.mkv", indexed_frames(8), fps=25)
    source = open_source(f"{http_server}/live.mkv", timeout=5)
    assert source.info.kind == "stream" and source.info.frames is None and not source.info.has_audio
    sink = open_sink(source.info, tmp_path / "out" / "")
    assert run_identity(source, sink) == 8
    out = probe(tmp_path / "out" / "live.derained.mp4")
    assert out["numbers"] == list(range(8)) and out["pts"][0] == 0


def test_stream_skips_bad_frames_without_being_asked(tmp_path: Path, http_server: str) -> None:
    good = write_test_video(tmp_path / "png.mov", indexed_frames(8), fps=25, codec="png")
    corrupt_packet(good, 3)
    source = open_source(f"{http_server}/bad.mov", timeout=5)
    assert [f.index for f in source] == [0, 1, 2, 4, 5, 6, 7]
    assert source.bad_frames == [3]


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/none.mp4", "rtsp://127.0.0.1:9/live"])
def test_unreachable_stream(url: str) -> None:
    start = time.monotonic()
    with pytest.raises(StreamError, match="cannot open stream") as err:
        open_source(url, timeout=2)
    assert "\n" not in str(err.value)
    assert time.monotonic() - start < 10


def test_stages_grid_layout_and_labels() -> None:
    images = [np.full((10, 16, 3), v, np.float32) for v in (0.0, 0.25, 0.5, 0.75, 1.0)]
    grid = stages_grid(images, columns=3, gap=2)
    assert grid.shape == (2 * 10 + 2, 3 * 16 + 2 * 2, 3)
    assert grid[0, 0, 0] == 0.0 and grid[0, 18, 0] == 0.25 and grid[12, 18, 0] == 1.0
    assert grid[12, 36, 0] == 1.0  # the empty cell stays white
    labelled = stages_grid(images, ["a", "b", "c", "d", "e"], columns=3, gap=2)
    assert not np.array_equal(labelled, grid)
    with pytest.raises(ValueError, match="same size"):
        stages_grid([images[0], np.zeros((4, 4, 3), np.float32)])


def test_write_stages_preview_runs_the_model(tmp_path: Path) -> None:
    import cv2

    net = DerainNet(DerainConfig(stages=2, channels=4)).eval()
    image = np.random.default_rng(0).random((24, 32, 3), dtype=np.float32)
    path = write_stages_preview(tmp_path / "stages.png", net, image)
    grid = cv2.imread(str(path))
    assert grid.shape == (2 * 24 + 4, 2 * 32 + 4, 3)  # input, O_1, O_2, output in a 2x2 grid


def test_rainy_clip_for_the_demo(tmp_path: Path) -> None:
    from derain_deploy.streams.synthetic import rainy_clip

    rainy, clean = rainy_clip("coffee", frames=3, size=(32, 48), preset="heavy")
    assert len(rainy) == len(clean) == 3 and rainy[0].shape == (32, 48, 3)
    assert all(
        (r >= c - 1e-6).all() and (r > c + 0.05).any() for r, c in zip(rainy, clean)
    )  # rain adds light
    assert not np.array_equal(clean[0], clean[1])  # the camera pans
    path = write_test_video(tmp_path / "demo.mp4", rainy, fps=12, audio=True)
    assert probe(path)["audio_codec"] == "aac"


@pytest.fixture
def stalling_server(tmp_path: Path) -> Iterator[tuple[str, list[bytes]]]:
    """An HTTP server that sends the bytes put in its list (a 200 header first), then stalls."""
    import socket

    body: list[bytes] = [b""]
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            held.append(conn)
            conn.recv(65536)
            if body[0]:
                head = f"HTTP/1.1 200 OK\r\nContent-Length: {10 * len(body[0])}\r\n\r\n".encode()
                conn.sendall(head + body[0])

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/live.mkv", body
    finally:
        listener.close()
        for conn in held:
            conn.close()


def test_stream_timeouts_say_so(tmp_path: Path, stalling_server: tuple[str, list[bytes]]) -> None:
    url, body = stalling_server
    with pytest.raises(StreamError, match=rf"timed out after 0.5 s opening {url}"):
        open_source(url, timeout=0.5)
    video = write_test_video(tmp_path / "v.mkv", indexed_frames(8), fps=25).read_bytes()
    body[0] = video[: len(video) * 2 // 3]  # the header and some frames, then nothing
    source = open_source(url, timeout=0.5)
    with pytest.raises(StreamError, match=rf"timed out after 0.5 s reading {url}"):
        list(source)
