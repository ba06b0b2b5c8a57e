"""What one ``derain-serve`` replica runs: the backend to open and the request limits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..backends.base import Backend
from ..image_size import DEFAULT_MAX_PIXELS
from ..job import JobOptions, prepare_backend


@dataclass(frozen=True)
class ServeOptions:
    """The backend (as ``derain-run`` opens it) and the batching and size limits of a replica."""

    backend: str = "auto"
    device: str = "auto"
    precision: str | None = None
    model: str | None = None
    tile: int | None = None  # frames larger than tile x tile are tiled (derain-run --tile)
    max_batch: int = 8  # frames of the same size per backend call
    batch_wait_ms: float = 10.0  # how long a batch waits to fill
    max_pixels: int | None = DEFAULT_MAX_PIXELS  # larger images get 413 (None or 0: no limit)
    # opens the backend instead of derain-run's way (tests: a backend that fails on demand)
    backend_factory: Callable[[ServeOptions], Backend] | None = None

    def open_backend(self) -> Backend:
        """The backend ``derain-run`` would open for these options (tiling included)."""
        if self.backend_factory is not None:
            return self.backend_factory(self)
        return prepare_backend(
            JobOptions(
                backend=self.backend,
                device=self.device,
                precision=self.precision,
                model=self.model,
                tile=self.tile,
                progress=False,
            )
        )
