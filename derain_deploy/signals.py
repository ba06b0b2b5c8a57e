"""SIGTERM and SIGHUP handled like Ctrl-C: raised in the main thread as :class:`Terminated`, a
KeyboardInterrupt, so that every cleanup that runs on Ctrl-C (sinks aborted, temporary files
removed) runs for them too."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from types import FrameType

SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


class Terminated(KeyboardInterrupt):
    """The process was asked to stop by ``signum``; it exits with 128 + ``signum``."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def exit_status(error: KeyboardInterrupt) -> int:
    """128 + the signal's number: 130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP."""
    return 128 + (error.signum if isinstance(error, Terminated) else signal.SIGINT)


def signal_name(error: KeyboardInterrupt) -> str:
    return signal.Signals(error.signum).name if isinstance(error, Terminated) else "SIGINT"


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise :class:`Terminated` once (a second signal
    during the cleanup is ignored, so that the cleanup finishes); the old handlers come back after."""
    raised = False

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal raised
        if not raised:
            raised = True
            raise Terminated(signum)

    previous = {s: signal.signal(s, handler) for s in SIGNALS}
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)
