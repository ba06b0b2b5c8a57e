"""derain-serve over HTTP on loopback: one service (tiny model, torch on the CPU, local Ray with
2 CPUs) for the whole module; round trips per format, batching, every bad request, the page."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import serve_helpers
from serve_helpers import image_bytes, open_poisoned, png_claiming, poisoned_png

pytest.importorskip("ray.serve", reason="Ray Serve is not installed (pip install 'derain-deploy[serve]')")

from derain_deploy.parity import TOLERANCES
from derain_deploy.pipeline import to_batch
from derain_deploy.serve.client import ServeRequestError, derain_bytes
from derain_deploy.serve.options import ServeOptions
from derain_deploy.serve.server import RayOptions, Server, free_port, start
from derain_deploy.streams.base import Frame
from derain_deploy.streams.image_decode import decode_image
from derain_deploy.streams.images import encode_image, read_image

pytestmark = pytest.mark.slow
MAX_PIXELS = 200 * 200
MAX_BATCH = 4


@pytest.fixture(scope="module")
def options(tiny_weights: Path) -> ServeOptions:
    return ServeOptions(
        backend="torch",
        device="cpu",
        model=str(tiny_weights),
        max_batch=MAX_BATCH,
        batch_wait_ms=250,
        max_pixels=MAX_PIXELS,
        backend_factory=open_poisoned,
    )


@pytest.fixture(scope="module")
def server(options: ServeOptions) -> Iterator[Server]:
    import ray
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(serve_helpers)  # Ray workers cannot import the tests
    temp = tempfile.mkdtemp(prefix="ray-dt-", dir="/tmp")
    srv = start(
        options,
        "127.0.0.1",
        free_port(),
        ray_options=RayOptions(num_cpus=2, temp_dir=temp),
        ready_timeout_s=90,
    )
    yield srv
    if ray.is_initialized():
        srv.stop()
    shutil.rmtree(temp, ignore_errors=True)


def post(
    url: str, data: bytes, headers: dict[str, str] | None = None, method: str = "POST"
) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=60) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def library_derain(options: ServeOptions, path: Path, ext: str) -> bytes:
    """What the library makes of the same file: read_image, the same backend, encode_image."""
    rgb, meta = read_image(path)
    backend = options.open_backend()
    try:
        out = backend(to_batch([Frame(image=rgb, index=0, name=path.name, meta=meta)]))[0]
    finally:
        backend.close()
    return encode_image(ext, out.transpose(1, 2, 0), meta)


# (extension, media type, channels, bit depth, tolerance in levels: lossy formats may move by a few)
FORMATS = [
    (".png", "image/png", 3, 8, 1),
    (".png", "image/png", 1, 16, 1),
    (".png", "image/png", 4, 8, 1),
    (".jpg", "image/jpeg", 3, 8, 2),
    (".webp", "image/webp", 3, 8, 2),
    (".tif", "image/tiff", 3, 16, 1),
]


@pytest.mark.parametrize(("ext", "media", "channels", "depth", "levels"), FORMATS)
def test_round_trip_matches_the_library(
    server: Server,
    options: ServeOptions,
    tmp_path: Path,
    ext: str,
    media: str,
    channels: int,
    depth: int,
    levels: int,
) -> None:
    data = image_bytes(ext, channels=channels, depth=depth)
    path = tmp_path / f"in{ext}"
    path.write_bytes(data)
    status, headers, body = post(f"{server.url}/v1/derain", data)
    assert status == 200, body
    assert headers["content-type"] == media
    assert headers["x-derain-backend"] == "torch@cpu" and headers["x-derain-precision"] == "fp32"
    assert float(headers["x-derain-server-ms"]) > 0 and headers["x-derain-batch-size"] == "1"
    served, served_meta = decode_image(body, ext, "served")
    expected, expected_meta = decode_image(library_derain(options, path, ext), ext, "library")
    assert (served_meta["bit_depth"], served_meta["grey"]) == (
        expected_meta["bit_depth"],
        expected_meta["grey"],
    )
    assert (served_meta["alpha"] is None) == (channels != 4)
    step = 1 / (255 if depth == 8 else 65535)
    assert np.abs(served - expected).max() <= TOLERANCES["fp32"][1] + levels * step


def test_accept_names_the_output_format(server: Server) -> None:
    body = derain_bytes(server.url, image_bytes(".png"), accept="image/webp;q=0.5, image/jpeg")
    assert body.startswith(b"\xff\xd8\xff")  # JPEG: the higher q-value
    status, _, text = post(f"{server.url}/v1/derain", image_bytes(".png"), {"Accept": "application/json"})
    assert status == 406 and b"image/png" in text


def test_concurrent_requests_are_batched_by_size(server: Server) -> None:
    jobs = [image_bytes(".png", 64, 64, seed=i) for i in range(8)] + [image_bytes(".png", 40, 72, seed=9)] * 3
    with ThreadPoolExecutor(len(jobs)) as pool:
        answers = list(pool.map(lambda d: post(f"{server.url}/v1/derain", d), jobs))
    assert [a[0] for a in answers] == [200] * len(jobs)
    sizes = [int(a[1]["x-derain-batch-size"]) for a in answers]
    assert max(sizes[:8]) > 1, sizes  # same-size frames shared backend calls
    assert max(sizes) <= MAX_BATCH and max(sizes[8:]) <= 3, sizes  # 40x72 never stacked with 64x64
    for data, (_, _, body) in zip(jobs, answers):
        assert decode_image(body, ".png", "out")[0].shape == decode_image(data, ".png", "in")[0].shape


def test_a_backend_failure_fails_that_request_only(server: Server) -> None:
    jobs = [image_bytes(".png", 48, 64, seed=i) for i in range(3)] + [poisoned_png()]
    with ThreadPoolExecutor(len(jobs)) as pool:
        answers = list(pool.map(lambda d: post(f"{server.url}/v1/derain", d), jobs))
    assert [a[0] for a in answers] == [200, 200, 200, 500], [a[2][:200] for a in answers]
    error = json.loads(answers[3][2])
    assert "poisoned frame" in error["error"] and error["status"] == 500
    assert answers[3][2].count(b"\n") == 1  # one line


BAD = [
    ("text", b"hello, not an image", 415, "not a PNG, JPEG, WebP or TIFF"),
    ("empty", b"", 400, "empty"),
    ("truncated png", image_bytes(".png")[:120], 400, "cannot decode"),
    ("garbage jpeg", b"\xff\xd8\xff\xe0" + bytes(500), 400, "cannot decode"),
    ("too large", image_bytes(".png", 250, 200), 413, "--max-pixels"),
    ("huge header", png_claiming(30000, 30000), 413, "30000x30000"),
]


@pytest.mark.parametrize(("what", "data", "status", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_requests_get_a_one_line_json_error(
    server: Server, what: str, data: bytes, status: int, message: str
) -> None:
    code, headers, body = post(f"{server.url}/v1/derain", data)
    assert code == status, body
    assert headers["content-type"] == "application/json" and body.count(b"\n") == 1
    assert message in json.loads(body)["error"]
    with pytest.raises(ServeRequestError) as caught:
        derain_bytes(server.url, data)
    assert caught.value.status == status


@pytest.mark.parametrize(("method", "path"), [("GET", "/v1/derain"), ("PUT", "/healthz"), ("DELETE", "/")])
def test_wrong_method_is_405(server: Server, method: str, path: str) -> None:
    code, headers, body = post(f"{server.url}{path}", b"" if method != "GET" else None, method=method)
    assert code == 405 and "allow" in {k.lower() for k in headers}
    assert method in json.loads(body)["error"]


def test_page_is_self_contained(server: Server) -> None:
    with urllib.request.urlopen(f"{server.url}/", timeout=10) as r:
        html = r.read().decode()
        assert r.headers["content-type"].startswith("text/html")
    assert "/v1/derain" in html and 'type="file"' in html and 'type="range"' in html
    assert "http://" not in html and "https://" not in html  # no CDN, nothing fetched from elsewhere


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")
def test_page_round_trip_in_headless_chromium(server: Server, tmp_path: Path) -> None:
    argv = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=30000",
        "--dump-dom",
        f"{server.url}/?demo=96x64",
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=90)
    assert 'data-state="done"' in done.stdout, done.stdout[-2000:] + done.stderr[-2000:]
    assert "torch@cpu" in done.stdout and 'download="demo.derained.png"' in done.stdout


def test_still_healthy_and_ready_after_everything(server: Server) -> None:
    for path in ("/healthz", "/readyz"):
        with urllib.request.urlopen(f"{server.url}{path}", timeout=10) as r:
            assert r.status == 200
    with urllib.request.urlopen(f"{server.url}/readyz", timeout=10) as r:
        assert json.loads(r.read())["backend"] == "torch"
    assert derain_bytes(server.url, image_bytes(".png")).startswith(b"\x89PNG")


def test_stop_shuts_serve_and_ray_down(server: Server) -> None:
    import ray

    server.stop()
    assert not ray.is_initialized()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{server.url}/healthz", timeout=5)
