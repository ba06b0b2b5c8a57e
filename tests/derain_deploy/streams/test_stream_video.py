"""Video sources and sinks on tiny generated videos (identity model: output = input)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from stream_helpers import corrupt_packet, indexed_frames, probe, run_identity

from derain_deploy.streams import (
    StreamError,
    VideoSink,
    VideoSource,
    open_sink,
    open_source,
    write_test_video,
)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".part" in p.name)


def test_mp4_with_audio_keeps_frames_timing_order_and_audio(tone_video: Path) -> None:
    source = open_source(tone_video)
    assert source.info.kind == "video" and source.info.has_audio
    assert source.info.fps == Fraction(24000, 1001) and source.info.time_base == Fraction(1, 24000)
    assert source.info.frames == 8
    sink = open_sink(source.info, None)
    assert run_identity(source, sink) == 8
    out = tone_video.with_name("clip.derained.mp4")
    assert sink.audio_copied is True  # AAC goes into MP4 as is
    before, after = probe(tone_video), probe(out)
    assert after["pts"] == before["pts"] == [1001 * i for i in range(8)]
    assert after["time_base"] == Fraction(1, 24000)
    assert after["rate"] == Fraction(24000, 1001)
    assert after["numbers"] == list(range(8))
    assert after["audio_codec"] == "aac"
    assert after["audio_start"] == pytest.approx(before["audio_start"], abs=1e-3)
    assert abs(after["audio_seconds"] - before["audio_seconds"]) <= before["audio_packet_seconds"]
    # and the audio lasts as long as the video, within one audio packet
    assert abs(after["audio_seconds"] - 8 * 1001 / 24000) <= after["audio_packet_seconds"]
    assert leftovers(tone_video.parent) == []


def test_audio_reencoded_to_aac_when_container_refuses_codec(tmp_path: Path) -> None:
    src = write_test_video(
        tmp_path / "alaw.mov", indexed_frames(8), fps=25, audio=True, audio_codec="pcm_alaw", sample_rate=8000
    )
    with av.open(str(tmp_path / "probe.mp4"), "w") as c:  # the premise: MP4 cannot hold A-law
        assert "pcm_alaw" not in c.supported_codecs
    (tmp_path / "probe.mp4").unlink(missing_ok=True)
    source = open_source(src)
    sink = open_sink(source.info, tmp_path / "out.mp4")
    run_identity(source, sink)
    assert sink.audio_copied is False
    before, after = probe(src), probe(tmp_path / "out.mp4")
    assert after["audio_codec"] == "aac"
    assert after["numbers"] == list(range(8)) and after["pts"] == before["pts"]
    assert abs(after["audio_seconds"] - before["audio_seconds"]) <= after["audio_packet_seconds"]


def test_matroska_copies_pcm_audio_and_keeps_millisecond_timing(tmp_path: Path) -> None:
    src = write_test_video(
        tmp_path / "pcm.mkv",
        indexed_frames(8),
        fps=Fraction(30000, 1001),
        audio=True,
        audio_codec="pcm_s16le",
    )
    source = open_source(src)
    sink = open_sink(source.info, None)
    run_identity(source, sink)
    out = tmp_path / "pcm.derained.mkv"
    before, after = probe(src), probe(out)
    assert sink.audio_copied is True and after["audio_codec"] == "pcm_s16le"
    assert after["pts"] == before["pts"] and len(after["pts"]) == 8
    assert after["numbers"] == list(range(8))
    assert after["audio_seconds"] == pytest.approx(before["audio_seconds"], abs=1e-6)


def test_variable_frame_rate_pts_are_kept(tmp_path: Path) -> None:
    src = tmp_path / "vfr.mp4"
    write_test_video(src, indexed_frames(6), fps=25, time_base=Fraction(1, 1000))
    # Re-time the frames irregularly through the sink itself, then check a second pass keeps them.
    source = open_source(src)
    sink = VideoSink(tmp_path / "irregular.mp4", source.info)
    gaps = [0, 40, 55, 200, 210, 400]
    for frame, pts in zip(source, gaps):
        frame.pts = pts
        sink.write(frame, frame.image)
    sink.close()
    source.close()
    second = open_source(tmp_path / "irregular.mp4")
    run_identity(second, open_sink(second.info, tmp_path / "again.mp4"))
    assert probe(tmp_path / "again.mp4")["pts"] == probe(tmp_path / "irregular.mp4")["pts"] == gaps


def test_odd_size_is_padded_not_cropped(tmp_path: Path) -> None:
    frames = [np.tile(np.linspace(0, 255, 47, dtype=np.uint8)[None, :, None], (31, 1, 3)) for _ in range(2)]
    src = write_test_video(tmp_path / "odd.mkv", frames, fps=10, codec="ffv1")
    source = open_source(src)
    assert (source.info.width, source.info.height) == (47, 31)
    run_identity(source, open_sink(source.info, None))
    out = probe(tmp_path / "odd.derained.mkv")
    assert (out["width"], out["height"]) == (48, 32)
    first = out["first"].astype(int)
    assert np.abs(first[:31, :47] - frames[0].astype(int)).max() <= 6
    assert np.abs(first[:, 47] - first[:, 46]).max() <= 6  # the padded column repeats the last one


def test_compare_writes_side_by_side_and_the_output(tone_video: Path) -> None:
    source = open_source(tone_video)
    sink = open_sink(source.info, None, compare=True)
    run_identity(source, sink)
    out, side = tone_video.with_name("clip.derained.mp4"), tone_video.with_name("clip.compare.mp4")
    assert probe(out)["numbers"] == list(range(8))
    info = probe(side)
    assert (info["width"], info["height"]) == (96, 32)
    assert len(info["pts"]) == 8 and info["audio_codec"] == "aac"
    assert np.abs(info["first"][:, :48].astype(int) - info["first"][:, 48:].astype(int)).max() <= 4


def test_abort_and_interruption_leave_nothing_at_the_final_path(tone_video: Path) -> None:
    source = open_source(tone_video)
    sink = open_sink(source.info, None)
    final = tone_video.with_name("clip.derained.mp4")
    with pytest.raises(KeyboardInterrupt):
        for frame in source:
            sink.write(frame, frame.image)
            assert not final.exists()  # frames go to a temporary file
            if frame.index == 3:
                raise KeyboardInterrupt
    sink.abort()
    source.close()
    assert not final.exists()
    assert leftovers(tone_video.parent) == []
    assert sorted(p.name for p in tone_video.parent.iterdir()) == ["clip.mp4"]


def test_never_overwrites_the_input(tone_video: Path, tmp_path: Path) -> None:
    info = open_source(tone_video).info
    with pytest.raises(StreamError, match="refusing to overwrite the input"):
        open_sink(info, tone_video)
    link = tmp_path / "link.mp4"
    link.symlink_to(tone_video)
    with pytest.raises(StreamError, match="refusing to overwrite the input"):
        open_sink(info, link)
    with pytest.raises(StreamError, match="refusing"):
        open_sink(info, tmp_path / "sub" / ".." / "clip.mp4")


@pytest.fixture
def corrupt_video(tmp_path: Path) -> Path:
    """8 PNG-coded frames in MOV with frame 3's data zeroed. PNG frames fail to decode reliably
    (H.264's decoder conceals most damage and returns a picture), which makes this the closest
    reliable stand-in for a corrupt frame in the middle of a video."""
    good = write_test_video(tmp_path / "png.mov", indexed_frames(8), fps=25, codec="png")
    return corrupt_packet(good, 3)


def test_corrupt_frame_stops_with_its_index(corrupt_video: Path) -> None:
    source = open_source(corrupt_video)
    seen = []
    with pytest.raises(StreamError) as err:
        seen.extend(frame.index for frame in source)
    assert seen == [0, 1, 2]
    message = str(err.value)
    assert "corrupt frame 3 at 0.120 s" in message and "--skip-bad-frames" in message
    assert "\n" not in message


def test_skip_bad_frames_counts_and_keeps_timing(corrupt_video: Path, tmp_path: Path) -> None:
    source = open_source(corrupt_video, skip_bad_frames=True)
    sink = open_sink(source.info, tmp_path / "skipped.mp4")
    assert run_identity(source, sink) == 7
    assert source.bad_frames == [3]
    out = probe(tmp_path / "skipped.mp4")
    assert out["numbers"] == [0, 1, 2, 4, 5, 6, 7]
    before = probe(corrupt_video.with_name("png.mov"))["pts"]
    assert out["pts"] == before[:3] + before[4:]


def test_damaged_h264_frame_is_named_by_its_position(tmp_path: Path) -> None:
    """H.264 with a damaged packet: the bad frame is named by its presentation position (the
    decoder reports it in decode order) and the good frames keep their own indices."""
    rng = np.random.default_rng(0)
    frames = [np.clip(rng.normal(16 + 28 * i, 20, (32, 48, 3)), 0, 255).astype(np.uint8) for i in range(8)]
    good = write_test_video(tmp_path / "noise.mp4", frames, fps=25)
    bad = corrupt_packet(good, 3)
    with av.open(str(bad)) as c:
        damaged_pts = [p.pts for p in c.demux(video=0) if p.size][3]
        position = round(damaged_pts * c.streams.video[0].time_base * 25)
    source = VideoSource(bad, skip_bad_frames=True)
    indices = [f.index for f in source]
    if not source.bad_frames:
        pytest.skip("this FFmpeg build concealed the damage without reporting it")
    assert source.bad_frames == [position]
    assert indices == [i for i in range(8) if i != position]


@pytest.mark.parametrize(
    ("content", "name", "pattern"),
    [
        (None, "missing.mp4", "no such file"),
        (b"this is not a video at all" * 10, "text.mp4", "cannot open video"),
        (b"", "empty.mkv", "cannot open video"),
    ],
)
def test_bad_inputs_give_one_line_errors(
    tmp_path: Path, content: bytes | None, name: str, pattern: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(StreamError, match=pattern) as err:
        open_source(path)
    assert "\n" not in str(err.value)


def test_truncated_mp4_is_refused(tone_video: Path) -> None:
    data = tone_video.read_bytes()
    cut = tone_video.with_name("cut.mp4")
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(StreamError) as err:
        source = open_source(cut)
        list(source)
    assert "cut.mp4" in str(err.value) and "\n" not in str(err.value)


def test_audio_only_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tone.m4a"
    with av.open(str(path), "w") as c:
        s = c.add_stream("aac", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 8000, 0
        c.mux(s.encode(frame))
        c.mux(s.encode(None))
    with pytest.raises(StreamError, match="no video stream"):
        open_source(path)


def test_unwritable_output_folder(tone_video: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    info = open_source(tone_video).info
    with pytest.raises(StreamError, match="cannot create output folder") as err:
        open_sink(info, blocker / "sub" / "out.mp4")
    assert "\n" not in str(err.value)


def test_video_output_needs_an_h264_container(tone_video: Path, tmp_path: Path) -> None:
    info = open_source(tone_video).info
    with pytest.raises(StreamError, match=r"cannot write H\.264"):
        open_sink(info, tmp_path / "out.webm")


def test_display_rotation_is_applied(tmp_path: Path) -> None:
    """A phone video stored 48x32 with a 90 degree (counterclockwise) display rotation comes
    out upright, 32x48, the stored top-left corner at the bottom left."""
    path = tmp_path / "phone.mp4"
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 48, 32, "yuv420p"
        s.set_display_rotation(90)
        for i in range(3):
            a = np.zeros((32, 48, 3), np.uint8)
            a[:8, :8] = 255
            vf = av.VideoFrame.from_ndarray(a, format="rgb24")
            vf.pts = i
            c.mux(s.encode(vf))
        c.mux(s.encode(None))
    source = open_source(path)
    assert (source.info.width, source.info.height) == (32, 48)
    image = next(iter(source)).image
    assert image.shape == (48, 32, 3)
    assert image[-8:, :8].mean() > 0.9 and image[:8, :8].mean() < 0.1
    sink = open_sink(source.info, None)
    run_identity(open_source(path), sink)
    out = probe(tmp_path / "phone.derained.mp4")
    assert (out["width"], out["height"]) == (32, 48)


def truncated_after(path: Path, packets: int) -> Path:
    """A copy of ``path`` cut at the start of video packet ``packets``: the header still
    announces every frame, but only the first ``packets`` demux."""
    with av.open(str(path)) as c:
        starts = [p.pos for p in c.demux(video=0) if p.size]
    cut = path.with_name("cut" + path.suffix)
    cut.write_bytes(path.read_bytes()[: starts[packets]])
    return cut


@pytest.mark.parametrize("codec", ["libx264", "mjpeg"])
def test_frames_missing_from_a_damaged_file_are_an_error(tmp_path: Path, codec: str) -> None:
    good = write_test_video(tmp_path / "clip.mkv", indexed_frames(8), fps=25, codec=codec)
    cut = truncated_after(good, 5)
    source = open_source(cut)
    assert source.info.frames == 8  # Matroska stores no count: duration x rate
    with pytest.raises(StreamError) as err:
        list(source)
    message = str(err.value)
    assert "decoded 5 of 8 frames announced by the container (frames 5-7 missing)" in message
    assert "cut.mkv" in message and "--skip-bad-frames" in message and "\n" not in message


def test_skip_bad_frames_counts_missing_frames(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    good = write_test_video(tmp_path / "clip.mkv", indexed_frames(8), fps=25)
    source = open_source(truncated_after(good, 5), skip_bad_frames=True)
    sink = open_sink(source.info, tmp_path / "out.mp4")
    assert run_identity(source, sink) == 5
    assert source.bad_frames == [5, 6, 7]
    assert "3 frames missing" in caplog.text


def test_one_frame_short_of_duration_x_rate_is_tolerated(tmp_path: Path) -> None:
    """Duration x average rate is an estimate (variable rates round): one frame short passes."""
    good = write_test_video(tmp_path / "clip.mkv", indexed_frames(8), fps=25)
    source = open_source(truncated_after(good, 7))
    assert len(list(source)) == 7 and source.bad_frames == []


def test_aborted_video_leaves_no_folder_it_made(tmp_path: Path) -> None:
    """A video output's folders are made at open; a run that fails takes them away again
    (an existing folder stays)."""
    source_video = write_test_video(tmp_path / "in.mp4", indexed_frames(2), fps=25)
    source = open_source(source_video)
    sink = open_sink(source.info, tmp_path / "new" / "deeper" / "out.mp4")
    sink.write(next(iter(source)), np.zeros((source.info.height, source.info.width, 3), np.float32))
    sink.abort()
    source.close()
    assert not (tmp_path / "new").exists() and tmp_path.is_dir()
