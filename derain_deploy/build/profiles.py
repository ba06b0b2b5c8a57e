"""Input shapes and TensorRT optimization profiles: parsing and validation.

Default profile for video (dynamic export): batch 1..4, 64x64 up to 1080x1920, tuned for one
720p frame. Batch 1 is the latency case of live video; 720p is the most common real-time
stream size and sits in the middle of the range, so the kernels TensorRT times at ``opt`` are
reasonable for 480p and 1080p too; batch up to 4 lets offline video batch frames; 64x64 covers
tiles and thumbnails. Larger frames (4K) go through tiling or a custom ``--max``.
"""

from __future__ import annotations

from dataclasses import dataclass

Shape = tuple[int, int, int, int]

CHANNELS = 3
MAX_SIDE = 16384  # TensorRT's largest convolution input side; far beyond any camera frame
MAX_BATCH = 64
DEFAULT_MIN: Shape = (1, 3, 64, 64)
DEFAULT_OPT: Shape = (1, 3, 720, 1280)
DEFAULT_MAX: Shape = (4, 3, 1080, 1920)


class ProfileError(ValueError):
    """An invalid shape or profile; the message is one line."""


def parse_shape(text: str | Shape) -> Shape:
    """``"1x3x480x640"`` (or a 4-tuple) as a validated NCHW shape with 3 channels."""
    if isinstance(text, str):
        parts = text.lower().replace(",", "x").split("x")
        try:
            dims = tuple(int(p) for p in parts)
        except ValueError:
            raise ProfileError(f"shape {text!r} is not of the form NxCxHxW with integers") from None
    else:
        dims = tuple(int(d) for d in text)
    if len(dims) != 4:
        raise ProfileError(f"shape {text!r} has {len(dims)} dimensions; expected 4 (NxCxHxW)")
    if any(d <= 0 for d in dims):
        raise ProfileError(f"shape {text!r} has a zero or negative dimension")
    if dims[1] != CHANNELS:
        raise ProfileError(f"shape {text!r} has {dims[1]} channels; the model takes {CHANNELS} (RGB)")
    if dims[0] > MAX_BATCH:
        raise ProfileError(f"shape {text!r}: batch {dims[0]} is over {MAX_BATCH}")
    if max(dims[2:]) > MAX_SIDE:
        raise ProfileError(f"shape {text!r}: height and width must be at most {MAX_SIDE}")
    return dims  # type: ignore[return-value]


def shape_str(shape: Shape) -> str:
    return "x".join(str(d) for d in shape)


@dataclass(frozen=True)
class Profile:
    """One optimization profile: min <= opt <= max in every dimension."""

    min: Shape
    opt: Shape
    max: Shape

    def __post_init__(self) -> None:
        for a_name, b_name in (("min", "opt"), ("opt", "max")):
            a, b = getattr(self, a_name), getattr(self, b_name)
            if any(x > y for x, y in zip(a, b)):
                raise ProfileError(
                    f"profile {a_name} {shape_str(a)} exceeds {b_name} {shape_str(b)} in some dimension"
                )

    @property
    def static(self) -> bool:
        return self.min == self.opt == self.max

    def to_dict(self) -> dict[str, list[int]]:
        return {"min": list(self.min), "opt": list(self.opt), "max": list(self.max)}


def make_profile(
    shape: str | None = None, min: str | None = None, opt: str | None = None, max: str | None = None
) -> Profile:
    """A static profile from ``shape``, or a dynamic one from min/opt/max (missing ones from the
    video defaults; a missing ``opt`` is clamped into [min, max])."""
    if shape is not None:
        if min or opt or max:
            raise ProfileError("give either --shape (static) or --min/--opt/--max (dynamic), not both")
        s = parse_shape(shape)
        return Profile(s, s, s)
    lo = parse_shape(min) if min else DEFAULT_MIN
    hi = parse_shape(max) if max else DEFAULT_MAX
    clamped = tuple(sorted((a, b, c))[1] for a, b, c in zip(lo, DEFAULT_OPT, hi))
    mid = parse_shape(opt) if opt else clamped
    return Profile(lo, mid, hi)  # type: ignore[arg-type]
