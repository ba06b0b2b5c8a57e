from __future__ import annotations

import pytest

from derain_deploy.build.profiles import (
    DEFAULT_MAX,
    DEFAULT_MIN,
    DEFAULT_OPT,
    Profile,
    ProfileError,
    make_profile,
    parse_shape,
)


def test_parse_shape() -> None:
    assert parse_shape("1x3x480x640") == (1, 3, 480, 640)
    assert parse_shape("2X3X37X53") == (2, 3, 37, 53)
    assert parse_shape((1, 3, 8, 8)) == (1, 3, 8, 8)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1x3x480", "3 dimensions"),
        ("1x3x480x640x2", "5 dimensions"),
        ("1x3x0x640", "zero or negative"),
        ("1x3x-4x640", "zero or negative"),
        ("1x4x480x640", "4 channels"),
        ("1x3xabcx640", "integers"),
        ("", "integers"),
        ("1x3x16385x640", "at most 16384"),
        ("65x3x64x64", "batch 65 is over 64"),
    ],
)
def test_parse_shape_rejects(text: str, message: str) -> None:
    with pytest.raises(ProfileError, match=message):
        parse_shape(text)


def test_profile_order() -> None:
    with pytest.raises(ProfileError, match="min 2x3x64x64 exceeds opt"):
        Profile((2, 3, 64, 64), (1, 3, 64, 64), (4, 3, 64, 64))
    with pytest.raises(ProfileError, match="exceeds"):
        make_profile(min="1x3x512x512", max="1x3x256x256")
    with pytest.raises(ProfileError, match="opt 1x3x720x1280 exceeds max"):
        make_profile(opt="1x3x720x1280", max="1x3x480x640")


def test_make_profile_defaults_and_static() -> None:
    p = make_profile()
    assert (p.min, p.opt, p.max) == (DEFAULT_MIN, DEFAULT_OPT, DEFAULT_MAX) and not p.static
    small = make_profile(max="1x3x256x256")  # the default opt is clamped into range
    assert small.opt == (1, 3, 256, 256)
    s = make_profile(shape="1x3x480x640")
    assert s.static and s.min == (1, 3, 480, 640)
    with pytest.raises(ProfileError, match="not both"):
        make_profile(shape="1x3x480x640", min="1x3x64x64")
    assert make_profile(min="1x3x32x32", opt="2x3x64x64", max="4x3x128x128").to_dict() == {
        "min": [1, 3, 32, 32],
        "opt": [2, 3, 64, 64],
        "max": [4, 3, 128, 128],
    }
