"""The one span rule: whole video for None, end clamped, everything else outside is an error."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vidagent.core.errors import SpanOutOfRange
from vidagent.core.spans import checked_span

VIDEO = Path("clip.mp4")


def test_no_span_is_the_whole_video() -> None:
    assert checked_span(VIDEO, None, 12.5) == (0.0, 12.5)


def test_a_span_inside_is_kept_and_its_end_clamped() -> None:
    assert checked_span(VIDEO, (1, 4), 10.0) == (1.0, 4.0)
    assert checked_span(VIDEO, [0.0, 10.0], 10.0) == (0.0, 10.0)
    assert checked_span(VIDEO, (8.5, 99.0), 10.0) == (8.5, 10.0)


@pytest.mark.parametrize(
    "span",
    [
        (3.0, 3.0),  # empty
        (5.0, 2.0),  # backwards
        (-1.0, 2.0),  # starts before the video
        (-3.0, -1.0),
        (10.0, 12.0),  # starts at the end
        (11.0, 12.0),  # starts after it
        (math.nan, 2.0),
        (1.0, math.nan),
    ],
)
def test_a_span_not_inside_is_an_error(span: tuple[float, float]) -> None:
    with pytest.raises(SpanOutOfRange):
        checked_span(VIDEO, span, 10.0)


def test_the_error_names_the_video_and_both_ranges() -> None:
    with pytest.raises(SpanOutOfRange) as info:
        checked_span(VIDEO, (12, 14.5), 10.0)
    assert str(info.value) == "clip.mp4: span 12-14.5s is not inside the video (0-10.00s)"
    assert info.value.path == "clip.mp4"


@given(
    start=st.floats(-100, 100, allow_nan=False),
    end=st.floats(-100, 100, allow_nan=False),
    duration=st.floats(0.01, 100, allow_nan=False),
)
def test_a_checked_span_lies_inside_the_video(start: float, end: float, duration: float) -> None:
    inside = 0 <= start < duration and end > start
    try:
        lo, hi = checked_span(VIDEO, (start, end), duration)
    except SpanOutOfRange:
        assert not inside
    else:
        assert inside
        assert (lo, hi) == (start, min(end, duration)) and 0 <= lo < hi <= duration
