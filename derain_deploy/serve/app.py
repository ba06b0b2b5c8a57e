"""The Ray Serve deployment behind ``derain-serve``: one replica opens one backend and answers

- ``POST /v1/derain``: an image body in, the derained image out (same format, or ``Accept``'s);
- ``GET /healthz`` (the replica answers), ``GET /readyz`` (its backend is open), ``GET /`` (the page).

Concurrent requests are batched by ``serve.batch``; frames of different sizes in one batch go
to the backend in separate calls, one per size. A backend failure fails only the frames it
concerns: a batch that fails is run again frame by frame.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from importlib import resources

import numpy as np
from ray import serve
from ray.serve import metrics
from starlette.requests import Request
from starlette.responses import Response

from ..backends.base import Backend
from .codec import RequestError, decode_body, encode_body, response_type
from .options import ServeOptions

logger = logging.getLogger("ray.serve")
ROUTES = {
    "/": ("GET", "HEAD"),
    "/healthz": ("GET", "HEAD"),
    "/readyz": ("GET", "HEAD"),
    "/v1/derain": ("POST",),
}
PAGE = resources.files("derain_deploy.serve").joinpath("page/index.html")


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """A one-line JSON error body."""
    body = json.dumps({"error": " ".join(message.split()), "status": status})
    return Response(body + "\n", status_code=status, media_type="application/json", headers=headers)


def json_response(status: int, data: dict[str, object]) -> Response:
    return Response(json.dumps(data) + "\n", status_code=status, media_type="application/json")


def run_frames(backend: Backend, frames: list[np.ndarray]) -> list[tuple[np.ndarray | Exception, int]]:
    """Each CHW frame's output (or the exception that failed it) and the size of the backend
    call that made it. Frames of one size go in one call; a failed call is retried frame by
    frame, so that one bad frame fails alone."""
    results: list[tuple[np.ndarray | Exception, int]] = [(RuntimeError("not run"), 0)] * len(frames)
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, frame in enumerate(frames):
        groups.setdefault(frame.shape, []).append(i)
    for indices in groups.values():
        try:
            out = backend(np.stack([frames[i] for i in indices]))
            for j, i in enumerate(indices):
                results[i] = (out[j], len(indices))
        except Exception as e:
            if len(indices) == 1:
                results[indices[0]] = (e, 1)
                continue
            for i in indices:
                try:
                    results[i] = (backend(frames[i][None])[0], 1)
                except Exception as single:
                    results[i] = (single, 1)
    return results


@serve.deployment
class DerainService:
    """One replica: opens its backend in the background (``/readyz`` says when), then derains."""

    def __init__(self, options: ServeOptions) -> None:
        self.options = options
        self.backend: Backend | None = None
        self.open_error: str | None = None
        self.derain.set_max_batch_size(options.max_batch)
        self.derain.set_batch_wait_timeout_s(options.batch_wait_ms / 1000.0)
        self.requests = metrics.Counter(
            "derain_requests", description="derain-serve requests by status", tag_keys=("status",)
        )
        self.latency = metrics.Histogram(
            "derain_request_ms",
            description="derain-serve time per /v1/derain request (ms)",
            boundaries=[5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000],
        )
        self.batch_size = metrics.Histogram(
            "derain_batch_size",
            description="frames in the backend call each request ran in",
            boundaries=[1, 2, 4, 8, 16, 32],
        )
        threading.Thread(target=self._open, name="derain-open", daemon=True).start()

    def _open(self) -> None:
        try:
            self.backend = self.options.open_backend()
            logger.info("derain-serve: backend open: %s", self.backend.info.describe())
        except Exception as e:  # reported by /readyz and every request, never a crash loop
            self.open_error = " ".join(str(e).split()) or type(e).__name__
            logger.error("derain-serve: the backend did not open: %s", self.open_error)

    def check_health(self) -> None:
        """Ray Serve's health check: the replica is alive even while its backend opens."""

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.01)
    async def derain(self, frames: list[np.ndarray]) -> list[tuple[np.ndarray | Exception, int]]:
        assert self.backend is not None
        results = await asyncio.to_thread(run_frames, self.backend, frames)
        for _, size in results:
            self.batch_size.observe(size)
        return results

    async def __call__(self, request: Request) -> Response:
        start = time.perf_counter()
        path = request.url.path.rstrip("/") or "/"
        allowed = ROUTES.get(path)
        if allowed is None:
            response = error_response(
                404, f"no such path {path}; try POST /v1/derain, GET /healthz, /readyz, /"
            )
        elif request.method not in allowed:
            response = error_response(
                405,
                f"{request.method} is not allowed on {path}; use {' or '.join(allowed)}",
                headers={"Allow": ", ".join(allowed)},
            )
        elif path == "/v1/derain":
            return await self._derain_request(request, start)
        elif path == "/healthz":
            response = json_response(200, {"status": "ok"})
        elif path == "/readyz":
            response = self._ready()
        else:
            response = Response(PAGE.read_bytes(), media_type="text/html; charset=utf-8")
        return response

    def _ready(self) -> Response:
        if self.backend is not None:
            info = self.backend.info
            return json_response(
                200,
                {
                    "ready": True,
                    "backend": info.name,
                    "device": info.device,
                    "precision": info.precision,
                    "threads": info.details.get("threads"),
                    "chosen_because": info.details.get("chosen_because"),
                },
            )
        if self.open_error is not None:
            return json_response(
                503, {"ready": False, "error": f"the backend did not open: {self.open_error}"}
            )
        return json_response(503, {"ready": False, "status": "opening the backend"})

    async def _derain_request(self, request: Request, start: float) -> Response:
        body = await request.body()
        status, size, batch = 200, "?", 0
        try:
            response, size, batch = await self._derain_body(request, body)
        except RequestError as e:
            status, response = e.status, error_response(e.status, str(e))
        except Exception as e:  # a backend failure: this request only
            status = 500
            response = error_response(500, f"the backend failed on this image: {' '.join(str(e).split())}")
        ms = (time.perf_counter() - start) * 1000
        response.headers["X-Derain-Server-Ms"] = f"{ms:.1f}"
        self.requests.inc(tags={"status": str(status)})
        if status == 200:
            self.latency.observe(ms)
        logger.info(
            "derain-serve: POST /v1/derain %d: %d bytes in, %s, %s bytes out, batch %d, %.1f ms",
            status,
            len(body),
            size,
            response.headers.get("content-length", "?"),
            batch,
            ms,
        )
        return response

    async def _derain_body(self, request: Request, body: bytes) -> tuple[Response, str, int]:
        if self.backend is None:
            why = (
                f"the backend did not open: {self.open_error}"
                if self.open_error
                else "the backend is opening"
            )
            raise RequestError(503, why)
        decoded = await asyncio.to_thread(decode_body, body, self.options.max_pixels)
        out_type = response_type(request.headers.get("accept"), decoded.media_type)
        h, w = decoded.rgb.shape[:2]
        output, batch = await self.derain(np.ascontiguousarray(decoded.rgb.transpose(2, 0, 1)))
        if isinstance(output, Exception):
            raise output
        data = await asyncio.to_thread(encode_body, output.transpose(1, 2, 0), decoded.meta, out_type)
        info = self.backend.info
        headers = {
            "X-Derain-Backend": f"{info.name}@{info.device}",
            "X-Derain-Precision": info.precision,
            "X-Derain-Batch-Size": str(batch),
            "X-Derain-Size": f"{w}x{h}",
        }
        return Response(data, media_type=out_type, headers=headers), f"{w}x{h}", batch
