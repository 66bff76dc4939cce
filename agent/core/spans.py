"""The one rule for a time span a user or the planner asks for: what is inside a video and what is not."""

from __future__ import annotations

from collections.abc import Sequence
from os import PathLike

from vidagent.core.errors import SpanOutOfRange


def checked_span(
    video: str | PathLike[str], span: Sequence[float] | None, duration: float
) -> tuple[float, float]:
    """``span`` (start, end seconds) inside a video ``duration`` seconds long, ``end`` clamped to it.

    ``None`` is the whole video. A span that ends at or before its start, starts before 0 or at or
    after the end of the video (or holds a NaN) raises :class:`SpanOutOfRange` naming ``video``.
    """
    if span is None:
        return (0.0, float(duration))
    start, end = float(span[0]), float(span[1])
    if not (0.0 <= start < duration and end > start):
        raise SpanOutOfRange(video, f"span {start:g}-{end:g}s is not inside the video (0-{duration:.2f}s)")
    return (start, min(end, float(duration)))
