"""vidagent.media.video: probing, sampling (both backends agree), streaming, and every bad-input kind."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from tests.synth import (
    damaged_copy,
    frame_numbers,
    irregular_times,
    truncated_copy,
    write_audio_only,
    write_video,
    write_y4m_header,
    write_zero_frame_video,
)
from vidagent.core.errors import (
    AbsurdDimensions,
    CorruptVideo,
    EmptyVideo,
    NotAMediaFile,
    NoVideoStream,
    SpanOutOfRange,
    VidagentError,
    VideoError,
    VideoNotFound,
)
from vidagent.media.sample_videos import SAMPLE_VIDEOS, sample_video
from vidagent.media.video import (
    DamagedVideoWarning,
    Frames,
    TruncatedVideoWarning,
    Video,
    check_dimensions,
    decord_available,
    target_times,
)

BACKENDS = [
    "pyav",
    pytest.param(
        "decord", marks=pytest.mark.skipif(not decord_available(), reason="decord is not installed")
    ),
]
needs_decord = pytest.mark.skipif(not decord_available(), reason="decord is not installed")

FPS = 25.0
CFR_TIMES = [i / FPS for i in range(100)]  # the synthetic CFR video: 4 s, frame i at i / 25 s
VFR_TIMES = irregular_times(3.0)


def shown(pts: list[float], times: np.ndarray) -> list[int]:
    """Which frame is on screen at each time: the last one whose pts <= t (the first before it)."""
    return np.maximum(np.searchsorted(pts, np.asarray(times) + 1e-6, side="right") - 1, 0).tolist()


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("videos")
    return {
        "cfr": write_video(root / "cfr.mp4", fps=FPS, seconds=4, gop=25),
        "long": write_video(root / "long.mp4", fps=10, seconds=30, size=(64, 48), gop=20),
        "vfr_mp4": write_video(root / "vfr.mp4", pts_seconds=VFR_TIMES),
        "vfr_mkv": write_video(root / "vfr.mkv", pts_seconds=VFR_TIMES),
    }


# --- sample videos and metadata ------------------------------------------------------------

REAL = {  # name: (width, height, fps, duration, frame_count, has_audio)
    "bikes": (640, 272, 25.0, 10.0, 250, False),
    "bigbuckbunny": (1280, 720, 25.0, 5.28, 132, True),
    "carphone": (176, 144, 30000 / 1001, 4.004, 120, False),
    "announcement": (640, 272, 10.0, 9.0, 90, True),  # vidagent's own, in vidagent/data
}


def test_sample_videos_are_listed() -> None:
    assert set(SAMPLE_VIDEOS) == set(REAL)
    with pytest.raises(VidagentError, match="unknown sample video"):
        sample_video("nope")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(REAL))
def test_metadata_of_real_samples(name: str, backend: str) -> None:
    width, height, fps, duration, count, has_audio = REAL[name]
    with Video.open(sample_video(name), backend=backend) as video:
        meta = video.meta
        assert video.backend == backend
    assert (meta.width, meta.height, meta.frame_count, meta.has_audio) == (width, height, count, has_audio)
    assert meta.fps == pytest.approx(fps) and meta.duration == pytest.approx(duration)
    assert (meta.codec, meta.rotation) == ("h264", 0) and "mp4" in meta.container
    assert meta.to_dict()["path"] == str(sample_video(name))
    assert (video.width, video.height, video.fps, video.duration, video.frame_count) == (
        width, height, meta.fps, meta.duration, count,
    )  # fmt: skip


def test_rotation_is_reported_and_frames_stay_as_stored(tmp_path: Path) -> None:
    path = write_video(tmp_path / "rot.mp4", seconds=0.4, rotation=90)
    with Video.open(path, backend="pyav") as video:
        assert video.meta.rotation == 90
        assert video.sample_uniform(2).frames.shape == (2, 96, 128, 3)


# --- target times --------------------------------------------------------------------------


def test_target_times_take_segment_centres() -> None:
    np.testing.assert_allclose(target_times(10.0, fps=1), np.arange(10) + 0.5)
    np.testing.assert_allclose(target_times((2.0, 4.0), n=4), [2.25, 2.75, 3.25, 3.75])
    np.testing.assert_allclose(target_times((0.0, 10.6), fps=1)[-1], 10.5)
    np.testing.assert_allclose(target_times((1.0, 1.2), fps=1), [1.1])  # shorter than half a period
    np.testing.assert_allclose(target_times(4.0, fps=2), target_times(4.0, n=8))
    for bad in ({}, {"fps": 1, "n": 2}, {"fps": 0}, {"n": 0}):
        with pytest.raises(ValueError):
            target_times(4.0, **bad)


# --- which frame comes back ----------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_sample_fps_uniform_and_span_return_the_shown_frames(videos: dict[str, Path], backend: str) -> None:
    with Video.open(videos["cfr"], backend=backend) as video:
        for frames, times in [
            (video.sample_fps(3.0), target_times(4.0, fps=3.0)),
            (video.sample_uniform(7), target_times(4.0, n=7)),
            (video.sample_fps(10.0, span=(1.0, 2.0)), target_times((1.0, 2.0), fps=10.0)),
            (video.sample_uniform(3, span=(0.0, 0.5)), target_times((0.0, 0.5), n=3)),
            (video.sample_uniform(2, span=(3.5, 99.0)), target_times((3.5, 4.0), n=2)),  # end clamped
        ]:
            expected = shown(CFR_TIMES, times)
            assert frame_numbers(frames.frames) == expected
            np.testing.assert_allclose(frames.timestamps, np.array(CFR_TIMES)[expected], atol=1e-6)
            assert frames.indices.tolist() == expected
            assert frames.frames.dtype == np.uint8 and frames.timestamps.dtype == np.float64
            assert frames.indices.dtype == np.int64 and len(frames) == len(times)


@pytest.mark.parametrize("backend", BACKENDS)
def test_sample_at_keeps_order_repeats_and_exact_boundaries(videos: dict[str, Path], backend: str) -> None:
    times = [3.99, 0.0, 0.04, 0.0399, 2.0, 2.0, 1.0, 4.0]
    with Video.open(videos["cfr"], backend=backend) as video:
        frames = video.sample_at(times)
        assert frame_numbers(frames.frames) == [99, 0, 1, 0, 50, 50, 25, 99]
        assert frames.indices.tolist() == [99, 0, 1, 0, 50, 50, 25, 99]
        again = video.sample_at(frames.timestamps)  # timestamps fed back give the same frames
        assert again.indices.tolist() == frames.indices.tolist()
        assert len(video.sample_at([])) == 0


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", ["vfr_mp4", "vfr_mkv"])
def test_vfr_uses_presentation_times(videos: dict[str, Path], kind: str, backend: str) -> None:
    times = np.random.default_rng(1).uniform(0, VFR_TIMES[-1], 40)
    with Video.open(videos[kind], backend=backend) as video:
        frames = video.sample_at(times)
    expected = shown(VFR_TIMES, times)
    assert frame_numbers(frames.frames) == expected
    np.testing.assert_allclose(frames.timestamps, np.array(VFR_TIMES)[expected], atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_sparse_and_backward_requests_on_a_long_video(videos: dict[str, Path], backend: str) -> None:
    pts = [i / 10 for i in range(300)]
    with Video.open(videos["long"], backend=backend) as video:
        sparse = target_times(30.0, fps=0.25)  # 4 s apart: PyAV seeks between targets
        assert frame_numbers(video.sample_fps(0.25).frames) == shown(pts, sparse)
        back = [25.0, 3.05, 3.1, 29.95, 0.0]
        assert frame_numbers(video.sample_at(back).frames) == shown(pts, back)
        assert frame_numbers(video.sample_at([12.34]).frames) == shown(pts, [12.34])


def test_pyav_seeks_only_when_it_skips_decoding(
    videos: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from vidagent.media import video as module

    seeks: list[float] = []
    restart = module._PyAVReader._restart_at
    monkeypatch.setattr(
        module._PyAVReader, "_restart_at", lambda self, s: seeks.append(s) or restart(self, s)
    )
    with Video.open(videos["long"], backend="pyav", workers=1) as video:  # keyframes every 2 s
        video.sample_fps(2.0)  # dense: one seek to the start, then sequential decoding
        assert seeks == [pytest.approx(0.25)]
        seeks.clear()
        chunks = list(video.iter_chunks(fps=2.0, chunk_size=5))  # chunks continue where the last ended
        assert len(chunks) == 12 and len(seeks) == 1
        seeks.clear()
        video.sample_fps(0.2)  # sparse: 5 s apart, a keyframe in between each time
        assert len(seeks) == 6


@pytest.mark.parametrize(("seek", "workers", "opens"), [("exact", 1, 1), ("exact", 2, 3), ("keyframe", 1, 2)])
def test_the_first_exact_reader_decodes_on_the_probes_container(
    videos: dict[str, Path], monkeypatch: pytest.MonkeyPatch, seek: str, workers: int, opens: int
) -> None:
    """Opening a file costs one demuxer, not two: the probe's container (its decoder on frame
    threads) serves the first exact reader. The parallel reader's split runs open their own,
    keyframe mode its own (one thread)."""
    import av

    from vidagent.media import video as module

    opened: list[str] = []
    real_open = av.open
    monkeypatch.setattr(module.av, "open", lambda *a, **k: opened.append(a[0]) or real_open(*a, **k))
    with Video.open(videos["long"], seek=seek, workers=workers) as video:  # 30 s, keyframes every 2 s
        frames = video.sample_fps(1.0)
    assert len(frames) == 30 and len(opened) == opens
    with Video.open(videos["long"], workers=1) as fresh:
        again = fresh.sample_at([0.0, 0.04, 7.5])  # the first frame, which the probe decoded, too
    with Video.open(videos["long"], backend="decord" if decord_available() else "pyav") as other:
        np.testing.assert_array_equal(again.frames, other.sample_at([0.0, 0.04, 7.5]).frames)


@pytest.mark.parametrize("backend", BACKENDS)
def test_short_side_resizes_on_decode(videos: dict[str, Path], backend: str) -> None:
    with Video.open(videos["cfr"], backend=backend) as video:
        frames = video.sample_uniform(4, short_side=48)
        assert frames.frames.shape == (4, 48, 64, 3)
        assert frame_numbers(frames.frames) == shown(CFR_TIMES, target_times(4.0, n=4))
    with Video.open(sample_video("bikes"), backend=backend) as video:
        assert video.sample_fps(0.5, short_side=224).frames.shape == (5, 224, 527, 3)


@pytest.mark.parametrize("backend", BACKENDS)
def test_iter_chunks_concatenated_equals_one_shot(videos: dict[str, Path], backend: str) -> None:
    with Video.open(videos["cfr"], backend=backend) as video:
        for request in ({"fps": 7.0}, {"n": 45, "span": (0.5, 3.5)}):
            chunks = list(video.iter_chunks(**request, short_side=48, chunk_size=8))
            assert all(0 < len(c) <= 8 for c in chunks)
            streamed = Frames.concat(chunks)
            if "fps" in request:
                one_shot = video.sample_fps(request["fps"], short_side=48)
            else:
                one_shot = video.sample_uniform(request["n"], span=request["span"], short_side=48)
            np.testing.assert_array_equal(streamed.frames, one_shot.frames)
            np.testing.assert_array_equal(streamed.timestamps, one_shot.timestamps)
            np.testing.assert_array_equal(streamed.indices, one_shot.indices)


# --- the two backends agree ----------------------------------------------------------------


@needs_decord
@pytest.mark.parametrize("name", ["bikes", "bigbuckbunny", "carphone", "cfr", "vfr_mp4", "vfr_mkv"])
def test_backends_return_the_same_timestamps(videos: dict[str, Path], name: str) -> None:
    path = sample_video(name) if name in REAL else videos[name]
    with Video.open(path, backend="pyav") as pyav_video, Video.open(path, backend="decord") as decord_video:
        period = 1 / pyav_video.fps
        times = np.random.default_rng(2).uniform(0, pyav_video.duration, 25)
        for request in (
            lambda v: v.sample_fps(3.0),
            lambda v: v.sample_uniform(17, short_side=32),
            lambda v: v.sample_at(times),
        ):
            a, b = request(pyav_video), request(decord_video)
            assert a.frames.shape == b.frames.shape
            assert np.abs(a.timestamps - b.timestamps).max() <= period
            if name in ("cfr", "vfr_mp4", "vfr_mkv"):
                assert frame_numbers(a.frames) == frame_numbers(b.frames)
            if name in REAL or name == "cfr":  # PyAV indices are round(t * fps): exact for CFR only
                assert a.indices.tolist() == b.indices.tolist()


@needs_decord
def test_decord_failure_falls_back_to_pyav(tmp_path: Path) -> None:
    path = write_video(tmp_path / "vfr.ts", pts_seconds=VFR_TIMES)  # decord cannot size VFR MPEG-TS
    with pytest.warns(UserWarning, match="decord failed"), Video.open(path, backend="decord") as video:
        assert video.backend == "pyav"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with Video.open(path) as video:  # "auto" switches silently
            assert video.backend == "pyav"
            times = [0.5, 1.0, 2.5]
            assert frame_numbers(video.sample_at(times).frames) == shown(VFR_TIMES, times)


# --- bad input -----------------------------------------------------------------------------


def test_bad_files_raise_specific_errors(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"  # FFmpeg would open any .txt as "tty" video
    text.write_text("hello\n" * 100)
    noise = tmp_path / "noise.mp4"
    noise.write_bytes(np.random.default_rng(0).bytes(20000))
    cut_headers = truncated_copy(sample_video("bikes"), tmp_path / "cut.mp4", 0.5)  # moov box is at the end
    cases = [
        (tmp_path / "missing.mp4", VideoNotFound),
        (tmp_path, VideoNotFound),
        (text, NotAMediaFile),
        (noise, NotAMediaFile),
        (write_audio_only(tmp_path / "sound.m4a"), NoVideoStream),
        (write_audio_only(tmp_path / "sound.wav"), NoVideoStream),
        (write_zero_frame_video(tmp_path / "zero.avi"), EmptyVideo),
        (write_y4m_header(tmp_path / "wide.y4m", 20000, 2), AbsurdDimensions),
        (write_y4m_header(tmp_path / "huge.y4m", 9000, 9000), AbsurdDimensions),
        (cut_headers, CorruptVideo),
    ]
    for path, error in cases:
        for backend in ("pyav", "auto"):
            with pytest.raises(error) as caught:
                Video.open(path, backend=backend)
            assert isinstance(caught.value, VideoError) and str(path) in str(caught.value)


@pytest.mark.parametrize(("width", "height"), [(0, 10), (10, 0), (-4, 4), (16385, 8), (9000, 9000)])
def test_absurd_dimensions(width: int, height: int) -> None:
    with pytest.raises(AbsurdDimensions, match=f"{width}x{height}"):
        check_dimensions("v.mp4", width, height)
    check_dimensions("v.mp4", 16384, 4096)


@pytest.mark.parametrize("backend", BACKENDS)
def test_spans_and_timestamps_outside_the_video(videos: dict[str, Path], backend: str) -> None:
    with Video.open(videos["cfr"], backend=backend) as video:
        with pytest.raises(SpanOutOfRange, match=r"span 5-6s .*0-4\.00s"):
            video.sample_fps(1.0, span=(5.0, 6.0))
        for span in [(2.0, 2.0), (3.0, 1.0), (4.0, 5.0), (-3.0, -1.0), (-5.0, 0.5)]:  # core.spans' rule
            with pytest.raises(SpanOutOfRange):
                video.sample_uniform(2, span=span)
            with pytest.raises(SpanOutOfRange):
                video.iter_chunks(n=2, span=span)  # checked at the call, before iterating
        for t in (-0.1, 4.5, float("nan")):
            with pytest.raises(SpanOutOfRange):
                video.sample_at([1.0, t])
        with pytest.raises(ValueError):
            video.sample_uniform(2, short_side=0)
    with pytest.raises(ValueError, match="closed"):
        video.sample_uniform(1)
    with pytest.raises(ValueError, match="backend"):
        Video.open(videos["cfr"], backend="opencv")


@pytest.fixture(scope="module")
def truncated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("truncated")
    out = {}
    for name, options in [("mp4", {"movflags": "faststart"}), ("mkv", {})]:
        whole = write_video(root / f"whole.{name}", fps=FPS, seconds=4, noise=30, options=options)
        out[name] = truncated_copy(whole, root / f"half.{name}", 0.5)
    return out


@pytest.mark.parametrize("backend", BACKENDS)
def test_damaged_middle_is_one_warning_naming_its_seconds_and_no_ffmpeg_lines(
    videos: dict[str, Path], tmp_path: Path, backend: str, capfd: pytest.CaptureFixture[str]
) -> None:
    """Packets at 1.2-1.6 s overwritten (keyframes every second): frames before decode exactly, the
    damaged stretch shows the last good frame, frames from the next keyframe on are exact again;
    one warning names 1.20-1.60 s and FFmpeg prints nothing (decord's log is quiet)."""
    damaged = damaged_copy(videos["cfr"], tmp_path / "damaged.mp4", 1.2, 1.6)
    times = target_times(4.0, fps=FPS)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Video.open(damaged, backend=backend) as video:
            frames = video.sample_fps(FPS)
            again = video.sample_at([1.3, 1.4])  # the same stretch again: no second warning
    said = [str(w.message) for w in caught if issubclass(w.category, DamagedVideoWarning)]
    assert said == [said[0]] and "damaged at 1.20-1.60s" in said[0] and str(damaged) in said[0]
    assert not [w for w in caught if issubclass(w.category, TruncatedVideoWarning)]
    assert len(frames) == len(times)  # nothing is dropped: the damaged stretch repeats the last good frame
    numbers = frame_numbers(frames.frames)
    assert numbers[:30] == shown(CFR_TIMES, times[:30])  # up to 1.2 s
    assert numbers[30:40] == [29] * 10 and np.allclose(frames.timestamps[30:40], 29 / FPS)
    assert numbers[50:] == shown(CFR_TIMES, times[50:])  # from the keyframe at 2 s
    assert frame_numbers(again.frames) == [29, 29]
    assert "[h264" not in capfd.readouterr().err


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", ["mp4", "mkv"])
def test_truncated_file_gives_partial_frames_and_a_warning(
    truncated: dict[str, Path], kind: str, backend: str
) -> None:
    path = truncated[kind]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Video.open(path, backend=backend) as video:
            assert video.duration == pytest.approx(4.0)  # the header still claims the whole video
            times = target_times(4.0, fps=5.0)
            frames = video.sample_fps(5.0)
            streamed = list(video.iter_chunks(fps=5.0, chunk_size=4))
            reordered = video.sample_at(times[::-1])
    missing = [w for w in caught if issubclass(w.category, TruncatedVideoWarning)]
    assert len(missing) == 3
    assert all(str(path) in str(w.message) for w in missing)
    assert 0 < len(frames) < len(times)
    assert f"{len(times) - len(frames)} of {len(times)} requested frames are missing" in str(
        missing[0].message
    )
    assert frame_numbers(frames.frames) == shown(CFR_TIMES, times[: len(frames)])
    np.testing.assert_array_equal(Frames.concat(streamed).frames, frames.frames)
    assert frame_numbers(reordered.frames) == frame_numbers(frames.frames)[::-1]
