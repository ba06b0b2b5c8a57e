"""The trainer's errors; their messages are one line."""

from __future__ import annotations


class TrainingError(RuntimeError):
    """Training stopped (non-finite loss, incompatible checkpoint); the message is one line."""


class TrainingInterruptedError(TrainingError):
    """Ctrl-C: a checkpoint was saved; ``--resume`` continues."""
