"""Segments: every frame in exactly one segment, in order; joined back with its timing and audio."""

from __future__ import annotations

from pathlib import Path

import pytest
from distributed_helpers import decoded, frame_number, grey_frames, write_video

from derain_deploy.distributed.segments import SegmentSource, join_segments, plan_segments
from derain_deploy.streams import open_sink
from derain_deploy.streams.base import StreamError


def cut_and_join(video: Path, tmp_path: Path, seconds: float) -> tuple[list[int], int, int]:
    """Write each segment as the identity (frame in = frame out), join; the frame numbers read."""
    segments = plan_segments(video, seconds)
    parts, starts, numbers = [], [], []
    for segment in segments:
        source = SegmentSource(video, segment)
        sink = open_sink(source.info, tmp_path / f"part{segment.index}.mp4", audio=False)
        for frame in source:
            numbers.append(frame_number(frame.image * 255))
            sink.write(frame, frame.image)
        sink.close()
        source.close()
        parts.append(tmp_path / f"part{segment.index}.mp4")
        starts.append(source.first_pts * source.info.time_base)
    joined = join_segments(parts, starts, tmp_path / "joined.mp4", str(video))
    return numbers, joined, len(segments)


def test_segments_cover_every_frame_once_in_order(tmp_path: Path) -> None:
    video = write_video(
        tmp_path / "in.mp4", grey_frames(11), fps=4, gop=4, audio=True
    )  # B-frames, keyframe every 4
    segments = plan_segments(video, 1.0)
    assert [(s.start_pts is None, s.frames) for s in segments] == [(True, 4), (False, 4), (False, 3)]
    numbers, joined, count = cut_and_join(video, tmp_path, 1.0)
    assert count == 3 and numbers == list(range(11)) and joined == 11
    frames, times, audio = decoded(tmp_path / "joined.mp4")
    _, in_times, in_audio = decoded(video)
    assert [frame_number(f) for f in frames] == list(range(11))
    assert times == in_times
    assert audio == pytest.approx(in_audio, abs=1e-3)


def test_short_video_or_long_segments_are_not_cut(tmp_path: Path) -> None:
    video = write_video(tmp_path / "in.mp4", grey_frames(6), fps=4, gop=4)
    assert len(plan_segments(video, 10.0)) == 1
    assert len(plan_segments(video, 1.0)) == 2  # a keyframe at frame 4


def test_join_refuses_segments_of_different_encodings(tmp_path: Path) -> None:
    a = write_video(tmp_path / "a.mp4", grey_frames(4), fps=4, gop=4)
    b = write_video(tmp_path / "b.mp4", grey_frames(4, h=48, w=64), fps=4, gop=4)
    with pytest.raises(StreamError, match="parameters differ"):
        join_segments([a, b], [0, 1], tmp_path / "joined.mp4")
    assert not (tmp_path / "joined.mp4").exists()


def _corrupt_png_video(tmp_path: Path) -> Path:
    """8 PNG-coded frames (every one a keyframe) at 4 fps with frame 5's data zeroed."""
    import sys

    sys.path.insert(0, str(Path(__file__).parents[1] / "streams"))
    from stream_helpers import corrupt_packet, indexed_frames

    from derain_deploy.streams import write_test_video

    good = write_test_video(tmp_path / "png.mov", indexed_frames(8), fps=4, codec="png")
    return corrupt_packet(good, 5)


def test_corrupt_frame_inside_a_segment(tmp_path: Path) -> None:
    """SegmentSource overrode VideoSource._bad with two parameters while the base calls it with
    three: a corrupt frame inside a segment raised TypeError instead of the frame's error."""
    video = _corrupt_png_video(tmp_path)
    inside = next(s for s in plan_segments(video, 1.0) if s.start_pts is not None)
    assert inside.frames == 4  # frames 4-7; frame 5 is the second of the segment
    with pytest.raises(StreamError, match=r"corrupt frame 5 at 1\.250 s"):  # named by its place in the file
        list(SegmentSource(video, inside))
    source = SegmentSource(video, inside, skip_bad_frames=True)
    assert [f.index for f in source] == [0, 2, 3] and source.bad_frames == [5]
