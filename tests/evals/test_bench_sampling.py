"""The sampling and keyframe_retrieval benchmarks' own parts: the files they write, what they compare."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.synth import write_video
from vidagent.evals.benchmarks.keyframe_retrieval import top_moment
from vidagent.evals.benchmarks.sampling import ENCODINGS, ours, repeat_video, requests, write_encoded_video
from vidagent.media.video import Video


def test_a_repeated_video_plays_its_source_again_and_again(tmp_path: Path) -> None:
    """The 60 minute RSS case is the 1 minute file repeated: it must decode as that, to the end."""
    source = write_video(tmp_path / "one.mp4", fps=10, seconds=2, size=(64, 48), gop=10, noise=30)
    long = repeat_video(source, tmp_path / "three.mp4", 3)
    with Video.open(source) as one, Video.open(long) as three:
        assert three.duration == pytest.approx(3 * one.duration, abs=0.05)
        first = one.sample_at([0.25, 1.55])
        later = three.sample_at([2.25, 3.55, 4.25, 5.55])
    np.testing.assert_array_equal(later.frames[:2], first.frames)
    np.testing.assert_array_equal(later.frames[2:], first.frames)
    np.testing.assert_allclose(later.timestamps, [2.2, 3.5, 4.2, 5.5], atol=1e-6)


@pytest.mark.parametrize("encoding", ["h264 gop1s", "h264 gop10s B"])
def test_the_synthetic_files_have_the_gop_and_b_frames_they_claim(tmp_path: Path, encoding: str) -> None:
    import av

    path = write_encoded_video(tmp_path / "v.mp4", (128, 96), 12, encoding)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        packets = [p for p in container.demux(stream) if p.size]
    keys = [p.pts * stream.time_base for p in packets if p.is_keyframe]
    gap = 1.0 if encoding == "h264 gop1s" else 10.0
    assert np.diff(np.array(keys, float)).max() == pytest.approx(gap, abs=0.05)  # pts, B-frame delay aside
    reordered = any(p.pts != p.dts for p in packets)  # B-frames: decode order differs from display order
    assert reordered == (ENCODINGS[encoding]["b_frames"] > 0)


def test_ours_returns_the_presentation_times_it_decoded(tmp_path: Path) -> None:
    path = write_video(tmp_path / "v.mp4", fps=10, seconds=4, size=(64, 48), gop=20)
    asked = requests(4.0)
    assert len(asked["1 fps"]) == 4 and len(asked["uniform 32"]) == 32 and len(asked["span 2 s @5 fps"]) == 10
    np.testing.assert_allclose(ours()(path, asked["1 fps"]), [0.5, 1.5, 2.5, 3.5])
    np.testing.assert_allclose(
        ours(seek="keyframe")(path, asked["1 fps"]), [0.0, 2.0, 2.0, 2.0]
    )  # keys 0, 2 s


def test_the_perfect_encoder_finds_the_window_it_can_see() -> None:
    times = np.array([0, 0, 4, 4, 4, 4, 8, 8, 8, 8], float)  # keyframes at 0, 4 and 8 s
    moment, hit = top_moment(times, [[3.0, 6.0]])
    assert hit and moment[:2] == [4.0, 8.0]  # the 4 s keyframe's group of pictures
    moment, hit = top_moment(times, [[1.0, 3.0]])  # shown between keyframes: no frame sees it
    assert not hit
