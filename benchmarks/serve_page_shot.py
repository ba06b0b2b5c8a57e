"""A screenshot of derain-serve's page after a real round trip, for the README.

Starts derain-serve (the bundled weights, ``--backend`` as given), then headless Chromium
(Debian's ``chromium``) opens ``/#src=data:...``: the page fetches a rainy photo
(:func:`derain_deploy.bench.rainy_frame`, as JPEG) from that data URL, POSTs it to /v1/derain and
shows input and output. Chromium is driven over its DevTools protocol (``websockets``, a Ray
Serve dependency) so that the page runs in real time: the status line must say the round trip
finished before the screenshot is taken.

Usage: python benchmarks/serve_page_shot.py [--backend auto] [--size 320x480]
Writes benchmarks/results/serve_page.png.
"""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import cv2
import numpy as np

from derain_deploy.atomic import write_atomic
from derain_deploy.bench import rainy_frame
from derain_deploy.serve.options import ServeOptions
from derain_deploy.serve.server import RayOptions, free_port, start


def chromium_exe() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        sys.exit("error: chromium is not installed (apt-get install -y chromium)")
    return exe


def save_small_png(data: bytes, out: Path) -> None:
    """Save a screenshot in 256 colours (about a third of the bytes, for the repository)."""
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(data)).convert("RGB")
    small = image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.FLOYDSTEINBERG)
    buf = io.BytesIO()
    small.save(buf, format="PNG", optimize=True)
    write_atomic(out, buf.getvalue())


def screenshot(url: str, out: Path, profile: Path, size: str = "1100,1260", timeout_s: float = 180) -> str:
    """Open ``url`` in headless Chromium, wait (in real time) until the page's status is done,
    save a screenshot to ``out`` and return the status line. Driven over the DevTools protocol."""
    from websockets.sync.client import connect

    argv = [chromium_exe(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
    argv += [f"--user-data-dir={profile}", "--hide-scrollbars", f"--window-size={size}"]
    argv += ["--remote-debugging-port=0", "about:blank"]
    browser = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
    try:
        assert browser.stderr is not None
        for line in browser.stderr:
            if line.startswith("DevTools listening on "):
                port = urllib.parse.urlsplit(line.split()[-1]).port
                break
        else:
            sys.exit("error: chromium did not start its DevTools endpoint")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            page = next(t for t in json.loads(r.read()) if t["type"] == "page")
        with connect(page["webSocketDebuggerUrl"], max_size=None) as ws:
            ids = iter(range(1, 10**6))

            def call(method: str, **params: object) -> dict:
                n = next(ids)
                ws.send(json.dumps({"id": n, "method": method, "params": params}))
                while True:
                    reply = json.loads(ws.recv())
                    if reply.get("id") == n:
                        return reply.get("result", {})

            def status() -> tuple[str, str]:
                js = "(e => [e.dataset.state, e.textContent])(document.getElementById('status'))"
                value = call("Runtime.evaluate", expression=js, returnByValue=True)["result"].get("value")
                return tuple(value) if value else ("loading", "")  # type: ignore[return-value]

            call("Page.navigate", url=url)
            deadline = time.monotonic() + timeout_s
            state, text = "loading", ""
            while time.monotonic() < deadline and state not in ("done", "error"):
                time.sleep(0.5)
                state, text = status()
            if state != "done":
                sys.exit(f"error: the page did not finish a round trip ({state}: {text})")
            time.sleep(1.0)  # the output image decodes
            shot = call("Page.captureScreenshot", format="png")
            save_small_png(base64.b64decode(shot["data"]), out)
            return text
    finally:
        browser.terminate()
        browser.wait(timeout=30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--size", default="320x480")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "serve_page.png")
    args = ap.parse_args()
    h, w = (int(v) for v in args.size.split("x"))
    rgb = rainy_frame(h, w, seed=1)[0]
    bgr = cv2.cvtColor((rgb * 255 + 0.5).astype(np.uint8), cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 92])  # a JPEG keeps the data URL small
    assert ok
    src = "data:image/jpeg;base64," + base64.b64encode(buf.tobytes()).decode()
    server = start(
        ServeOptions(backend=args.backend), port=free_port(), ray_options=RayOptions(log_to_driver=False)
    )
    try:
        # the data URL goes in the fragment: it stays in the browser (a request line is limited)
        url = f"{server.url}/#" + urllib.parse.urlencode({"src": src, "name": "rainy.jpg"})
        with tempfile.TemporaryDirectory(prefix="chromium-") as tmp:
            print(f"page: {screenshot(url, args.out, Path(tmp))}")
    finally:
        server.stop()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
