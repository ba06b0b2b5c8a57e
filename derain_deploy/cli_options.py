"""Click options that several commands share, defined once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from .backends import registry
from .image_size import DEFAULT_MAX_PIXELS

PRECISIONS = registry.precisions()  # every precision some registered backend offers


def max_pixels_option(help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--max-pixels``: the limit read from image headers before decoding (0: none)."""
    return click.option("--max-pixels", type=click.IntRange(min=0), default=DEFAULT_MAX_PIXELS,
                        show_default=True, help=help)


def backend_option(help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--backend auto|<a registered backend>``."""
    return click.option("--backend", type=click.Choice(["auto", *registry.names()]), default="auto",
                        show_default=True, help=help)
