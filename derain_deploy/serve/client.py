"""A client for ``derain-serve`` using the standard library only (no Ray, no requests)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request


class ServeRequestError(RuntimeError):
    """The service refused the image or failed on it: ``status`` and its one-line message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


def derain_bytes(url: str, data: bytes, accept: str | None = None, timeout: float = 300.0) -> bytes:
    """POST the image ``data`` to ``url`` (the service's base URL, e.g. http://127.0.0.1:8000,
    or its ``/v1/derain``) and return the derained image, in ``data``'s format or ``accept``'s
    (a media type such as ``image/png``)."""
    endpoint = url if url.rstrip("/").endswith("/v1/derain") else url.rstrip("/") + "/v1/derain"
    headers = {"Content-Type": "application/octet-stream"}
    if accept:
        headers["Accept"] = accept
    request = urllib.request.Request(endpoint, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.read()
    except urllib.error.HTTPError as e:
        body = e.read()
        try:
            message = str(json.loads(body)["error"])
        except (ValueError, KeyError, TypeError):
            message = body.decode("utf-8", "replace").strip()[:200] or e.reason
        raise ServeRequestError(e.code, message) from None
