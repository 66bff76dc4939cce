"""Fast frames: the exact reader's skipping, parallel decoding and keyframe seeking.

Every exact result is checked pixel for pixel against the plainest reference there is: decode
every frame of the file with PyAV, nothing skipped, and take the one shown at each time.
"""

from __future__ import annotations

import itertools
import warnings
from pathlib import Path

import av
import numpy as np
import pytest

from tests.synth import damaged_copy, frame_numbers, irregular_times, truncated_copy, write_video
from vidagent.media import video as video_module
from vidagent.media.fast_readers import split_at_keyframes
from vidagent.media.ray_engine import keyframe_chunks
from vidagent.media.sample_videos import sample_video
from vidagent.media.video import DamagedVideoWarning, Frames, TruncatedVideoWarning, Video, target_times


def decode_everything(path: Path) -> tuple[np.ndarray, list[np.ndarray], list[bool]]:
    """Every frame of ``path`` in presentation order: times (s), RGB arrays, keyframe flags."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        start = stream.start_time or 0
        decoded = [
            (float((f.pts - start) * stream.time_base), f.to_ndarray(format="rgb24"), bool(f.key_frame))
            for f in container.decode(stream)
        ]
    decoded.sort(key=lambda row: row[0])
    return np.array([row[0] for row in decoded]), [row[1] for row in decoded], [row[2] for row in decoded]


def shown_reference(path: Path, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The frames shown at ``times`` (last pts <= t, the first before it) and their times."""
    pts, arrays, _ = decode_everything(path)
    rows = np.maximum(np.searchsorted(pts, np.asarray(times) + 1e-6, side="right") - 1, 0)
    return np.stack([arrays[r] for r in rows]), pts[rows]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """B-frames (libx264's default here), short and long keyframe intervals, VFR, no index
    (MPEG-TS), HEVC where the encoder is present, and a real camera video with B-frames."""
    root = tmp_path_factory.mktemp("fast")
    out = {
        "bframes_gop12": write_video(root / "b12.mp4", seconds=6, gop=12, noise=20),
        "bframes_gop100": write_video(root / "b100.mp4", seconds=6, gop=100, noise=20),
        "no_bframes": write_video(root / "nob.mp4", seconds=6, gop=25, options=None, noise=20),
        "vfr_mkv": write_video(root / "vfr.mkv", pts_seconds=irregular_times(5.0)),
        "mpegts": write_video(root / "ts.ts", seconds=5, gop=25),
        "bikes": sample_video("bikes"),
    }
    if "libx265" in av.codecs_available:
        out["hevc"] = write_video(root / "hevc.mp4", seconds=4, codec="libx265", gop=25)
    return out


REQUESTS = [{"fps": 1.0}, {"fps": 3.0}, {"n": 8}, {"n": 32}, {"fps": 25.0}]


@pytest.mark.parametrize("workers", [1, 2, 3])
@pytest.mark.parametrize(
    "name", ["bframes_gop12", "bframes_gop100", "no_bframes", "vfr_mkv", "mpegts", "bikes", "hevc"]
)
def test_exact_frames_equal_decoding_everything(files: dict[str, Path], name: str, workers: int) -> None:
    if name not in files:
        pytest.skip("no libx265 in this PyAV build")
    path = files[name]
    with Video.open(path, backend="pyav", workers=workers) as video:
        for request in REQUESTS:
            times = target_times((0.0, video.duration), **request)
            got = video.sample_at(times)
            frames, stamps = shown_reference(path, times)
            np.testing.assert_array_equal(got.frames, frames, err_msg=f"{name} {request}")
            np.testing.assert_allclose(got.timestamps, stamps, atol=1e-6)
        shuffled = np.random.default_rng(0).uniform(0, video.duration, 20)  # any order, repeats
        got = video.sample_at(np.concatenate([shuffled, shuffled[:3]]))
        frames, _ = shown_reference(path, np.concatenate([shuffled, shuffled[:3]]))
        np.testing.assert_array_equal(got.frames, frames)


def test_skipping_skips_and_streams_agree(files: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """At 1 fps most frames of a B-frame video are skipped (non-reference ones, and whole tails
    of groups of pictures), and chunked streaming returns what one read returns."""
    modes: list[str] = []
    choose = video_module._PyAVReader._skip_mode
    monkeypatch.setattr(
        video_module._PyAVReader, "_skip_mode", lambda self, p: modes.append(choose(self, p)) or modes[-1]
    )
    path = files["bframes_gop12"]
    with Video.open(path, backend="pyav", workers=1) as video:
        one = video.sample_fps(1.0)
        assert modes.count("NONKEY") > 0 and modes.count("NONREF") > 0
        assert modes.count("DEFAULT") < len(modes) / 2
        streamed = Frames.concat(list(video.iter_chunks(fps=1.0, chunk_size=2)))
    np.testing.assert_array_equal(streamed.frames, one.frames)
    np.testing.assert_array_equal(streamed.timestamps, one.timestamps)


def test_a_skip_that_was_wrong_is_decoded_again(
    files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """If a packet's duration lies, a frame shown at a target can be skipped; the reader notices
    (a skipped frame lies between the frame it holds and the target), decodes that stretch again
    with nothing skipped, and after MAX_SKIP_MISSES misses stops skipping for good."""
    monkeypatch.setattr(
        video_module._PyAVReader,
        "_skip_mode",
        lambda self, p: "DEFAULT" if self._strict or not self._skipping or p.is_keyframe else "NONREF",
    )
    path = files["bframes_gop100"]
    times = target_times((0.0, 6.0), fps=7.0)
    with Video.open(path, backend="pyav", workers=1) as video:
        got = video.sample_at(times)
        reader = video._reader
        assert isinstance(reader, video_module._PyAVReader)
        assert reader._misses == video_module.MAX_SKIP_MISSES and not reader._skipping
    frames, stamps = shown_reference(path, times)
    np.testing.assert_array_equal(got.frames, frames)
    np.testing.assert_allclose(got.timestamps, stamps, atol=1e-6)


def test_parallel_returns_the_sequential_frames_in_order(tmp_path: Path) -> None:
    path = write_video(tmp_path / "long.mp4", fps=10, seconds=40, size=(64, 48), gop=20)
    with Video.open(path, workers=1) as one, Video.open(path, workers=3) as three:
        for request in ({"fps": 1.0}, {"fps": 4.0}, {"n": 9}):
            a = Frames.concat(list(one.iter_chunks(**request, chunk_size=16)))
            b = Frames.concat(list(three.iter_chunks(**request, chunk_size=16)))
            np.testing.assert_array_equal(a.frames, b.frames)
            np.testing.assert_array_equal(a.timestamps, b.timestamps)
            np.testing.assert_array_equal(a.indices, b.indices)
        assert len(three._reader._readers) == 3  # the reads did split


def test_split_at_keyframes_balances_contiguous_runs() -> None:
    keys = np.arange(0.0, 60.0, 2.0)
    times = target_times(60.0, fps=1.0)
    runs = split_at_keyframes(times, keys, 3, fps=25.0)
    assert len(runs) == 3 and np.array_equal(np.concatenate(runs), times)
    assert max(map(len, runs)) - min(map(len, runs)) <= 2
    for before, run in itertools.pairwise(runs):  # a keyframe between runs: none depends on another
        assert np.searchsorted(keys, run[0], side="right") > np.searchsorted(keys, before[-1], side="right")
    assert split_at_keyframes(times, None, 3, fps=25.0) == [times]  # no index: one run
    assert len(split_at_keyframes(times[:5], np.array([0.0]), 3, fps=25.0)) == 1  # one keyframe: one run


def test_ray_chunks_start_at_keyframes() -> None:
    grid = target_times(100.0, fps=1.0)
    todo = np.arange(len(grid))
    keys = np.arange(0.0, 100.0, 10.0)
    chunks = keyframe_chunks(todo, grid, keys, 32)
    assert np.array_equal(np.concatenate(chunks), todo) and max(map(len, chunks)) <= 32
    for chunk in chunks[1:]:
        first = grid[chunk[0]]
        assert np.searchsorted(keys, first, side="right") > np.searchsorted(keys, first - 1.0, side="right")
    assert [len(c) for c in keyframe_chunks(todo, grid, None, 32)] == [32, 32, 32, 4]


@pytest.mark.parametrize("workers", [1, 2])
def test_parallel_and_skipping_keep_the_damage_and_truncation_rules(tmp_path: Path, workers: int) -> None:
    cfr = write_video(tmp_path / "cfr.mp4", fps=25.0, seconds=4, gop=25, noise=30)
    damaged = damaged_copy(cfr, tmp_path / "damaged.mp4", 1.2, 1.6)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Video.open(damaged, workers=workers) as video:
            frames = video.sample_fps(5.0)
    said = [str(w.message) for w in caught if issubclass(w.category, DamagedVideoWarning)]
    assert len(said) == 1 and "damaged at 1.20-1.60s" in said[0] and len(frames) == 20
    whole = write_video(
        tmp_path / "whole.mp4", seconds=4, gop=25, noise=30, options={"movflags": "faststart"}
    )
    half = truncated_copy(whole, tmp_path / "half.mp4", 0.5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Video.open(half, workers=workers) as video:
            frames = video.sample_fps(5.0)
    assert 0 < len(frames) < 20
    assert frame_numbers(frames.frames) == sorted(frame_numbers(frames.frames))
    assert any(issubclass(w.category, TruncatedVideoWarning) for w in caught)


# --- keyframe seeking ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["bframes_gop12", "bframes_gop100", "no_bframes", "mpegts", "bikes"])
def test_keyframe_mode_returns_the_nearest_keyframe_at_its_true_time(
    files: dict[str, Path], name: str
) -> None:
    path = files[name]
    pts, arrays, key = decode_everything(path)
    key_times = pts[np.array(key)]
    with Video.open(path, seek="keyframe") as video:
        assert video.seek == "keyframe" and video.backend == "pyav"
        times = np.concatenate([target_times((0.0, video.duration), fps=2.0), [0.1, video.duration * 0.7]])
        got = video.sample_at(times)
    assert len(got) == len(times)
    for t, stamp, frame in zip(times, got.timestamps, got.frames, strict=True):
        row = int(np.flatnonzero(np.isclose(pts, stamp, atol=1e-6))[0])
        assert key[row], f"{stamp} is not a keyframe"
        np.testing.assert_array_equal(frame, arrays[row])  # the true time says which frame it is
        assert abs(stamp - t) <= np.abs(key_times - t).min() + 1e-6  # the nearest keyframe


def test_keyframe_mode_decodes_each_keyframe_once(
    files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from vidagent.media import fast_readers

    decoded: list[float] = []
    decode = fast_readers.KeyframeReader._decode_key
    monkeypatch.setattr(
        fast_readers.KeyframeReader, "_decode_key", lambda self, s: decoded.append(s) or decode(self, s)
    )
    pts, _, key = decode_everything(files["bframes_gop100"])
    assert len(pts[np.array(key)]) == 2  # two keyframes in 6 s
    with Video.open(files["bframes_gop100"], seek="keyframe") as video:
        frames = video.sample_fps(5.0)
    assert len(frames) == 30 and len(decoded) == 2
    np.testing.assert_allclose(sorted(set(frames.timestamps)), pts[np.array(key)])


@pytest.mark.parametrize("name", ["bframes_gop12", "no_bframes", "bikes"])
def test_close_keyframes_are_decoded_in_one_pass_each_once(
    files: dict[str, Path], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dense targets: the keyframes go through one pass (frame threads), each packet sent once,
    and the frames are those a seek per keyframe gives."""
    from vidagent.media import fast_readers

    sent: list[int] = []
    passes: list[list[int]] = []
    frames_of, decode_pass = fast_readers.KeyframeReader._frames_of, fast_readers.KeyframeReader._decode_pass
    monkeypatch.setattr(
        fast_readers.KeyframeReader,
        "_frames_of",
        lambda self, packet, drain=True: sent.append(packet.pts) or frames_of(self, packet, drain),
    )
    monkeypatch.setattr(
        fast_readers.KeyframeReader, "_decode_pass", lambda self, w: passes.append(w) or decode_pass(self, w)
    )
    with Video.open(files[name], seek="keyframe") as video:
        times = target_times((0.0, video.duration), fps=4.0)
        in_passes = video.sample_at(times)
    assert passes and len(passes[0]) > 2
    assert len(sent) == len(set(sent)) == len(set(in_passes.timestamps))  # each keyframe sent once
    monkeypatch.setattr(fast_readers, "SCAN_REACH", 0)  # a seek and a drain per keyframe
    sent.clear()
    with Video.open(files[name], seek="keyframe") as video:
        one_by_one = video.sample_at(times)
    np.testing.assert_array_equal(in_passes.timestamps, one_by_one.timestamps)
    np.testing.assert_array_equal(in_passes.frames, one_by_one.frames)


def test_seek_and_workers_are_checked(files: dict[str, Path]) -> None:
    path = files["bikes"]
    with pytest.raises(ValueError, match="seek must be one of"):
        Video.open(path, seek="nearest")
    with pytest.raises(ValueError, match="keyframe seeking is PyAV's"):
        Video.open(path, backend="decord", seek="keyframe")
    with pytest.raises(ValueError, match="workers must be at least 1"):
        Video.open(path, workers=0)
    with Video.open(path) as video:
        assert video.keyframes is not None and len(video.keyframes) == 6
        with pytest.raises(ValueError, match="ascending"):
            list(video.iter_at([2.0, 1.0]))
