"""Fixtures for the stream tests (helpers live in stream_helpers.py)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest
from stream_helpers import indexed_frames

from derain_deploy.streams import write_test_video


@pytest.fixture
def tone_video(tmp_path: Path) -> Path:
    """8 frames of 32x48 at 24000/1001 fps (time base 1/24000) with an AAC tone, in MP4."""
    return write_test_video(
        tmp_path / "clip.mp4",
        indexed_frames(8),
        fps=Fraction(24000, 1001),
        time_base=Fraction(1, 24000),
        audio=True,
    )
