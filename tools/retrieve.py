"""retrieve: the moments of a video that best match a text query (CLIP / SigLIP).

The query's text embedding is scored against the indexed frame embeddings, the per-frame
curve is smoothed over time, and each of the ``k`` highest peaks grows into a span over the
adjacent frames that stay close to the peak. Each span is one Evidence row: the span, the
peak's smoothed score, and the best frame inside it. With tiny random weights the scores are
meaningless; the plumbing is what the tests prove.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from vidagent.core.evidence import Evidence
from vidagent.core.spans import checked_span
from vidagent.media.index import parse_sampling, sampling_key
from vidagent.media.store import FrameRows
from vidagent.tools.base import ToolContext, ToolSpec


class RetrieveInput(BaseModel):
    query: str = Field(
        min_length=1,
        max_length=300,
        description="What to look for, in plain words.",
        json_schema_extra={"words": "phrase"},
    )
    span: tuple[float, float] | None = Field(default=None, description="Only inside [start, end] seconds.")
    k: int = Field(default=5, ge=1, le=50, description="How many moments to return.")


def smooth(scores: np.ndarray, window: int = 3) -> np.ndarray:
    """Centred moving average over ``window`` samples (edges use the samples they have)."""
    window = min(window, len(scores) - (1 - len(scores) % 2))  # odd and no longer than the curve
    if window <= 1:  # np.convolve(mode="same") would return the longer of the two
        return scores.astype(np.float32)
    kernel = np.ones(window, dtype=np.float64)
    summed = np.convolve(scores, kernel, mode="same")
    counts = np.convolve(np.ones(len(scores)), kernel, mode="same")
    return (summed / counts).astype(np.float32)


def peaks_to_spans(
    times: np.ndarray, curve: np.ndarray, k: int, *, step: float, duration: float, keep: float = 0.5
) -> list[tuple[float, float, int]]:
    """Grow the ``k`` highest peaks of ``curve`` into non-overlapping spans.

    A span extends from its peak over neighbours scoring at least
    ``peak - keep * (peak - median)``. Returns (start s, end s, peak position), best first.
    """
    if len(curve) == 0:
        return []
    median = float(np.median(curve))
    taken = np.zeros(len(curve), dtype=bool)
    spans = []
    for peak in np.argsort(-curve, kind="stable"):
        if len(spans) == k:
            break
        if taken[peak]:
            continue
        floor = curve[peak] - keep * (curve[peak] - median)
        left = right = int(peak)
        while left > 0 and not taken[left - 1] and curve[left - 1] >= floor:
            left -= 1
        while right < len(curve) - 1 and not taken[right + 1] and curve[right + 1] >= floor:
            right += 1
        taken[left : right + 1] = True
        start = max(0.0, _stretch(times, left, step)[0])
        end = min(duration, _stretch(times, right, step)[1])
        spans.append((start, max(end, start), int(peak)))
    return spans


def _stretch(times: np.ndarray, i: int, step: float) -> tuple[float, float]:
    """The stretch of time the frame at ``i`` stands for.

    A frame of its own (exact frames on the grid): half a step either side. A frame that several
    grid points share is a keyframe (keyframe mode; or a frame repeated by sampling faster than
    the video): it stands for its group of pictures, from its own time to the next sampled
    keyframe (the last one: as many steps as grid points share it). Encoders put keyframes at
    scene cuts, so a group of pictures is where a picture holds; with a perfect encoder this
    lifts R1@0.5 on keyframe frames from 19 to 89 on x264's default GOPs (evals/BENCHMARKS.md).
    """
    t = float(times[i])
    first = int(np.searchsorted(times, t, side="left"))  # the run of rows showing this frame
    last = int(np.searchsorted(times, t, side="right"))
    if last - first == 1:
        return t - step / 2, t + step / 2
    return t, float(times[last]) if last < len(times) else t + (last - first) * step


def rank_moments(
    rows: FrameRows,
    scores: np.ndarray,
    k: int,
    *,
    duration: float,
    fps: float,
    tool: str,
    video_id: str | None,
) -> Evidence:
    """Per-frame scores -> top-k spans as Evidence (shared with the library search)."""
    curve = smooth(scores)
    spans = peaks_to_spans(rows.timestamps, curve, k, step=1.0 / fps, duration=duration)
    records = []
    for start, end, peak in spans:
        inside = np.flatnonzero((rows.timestamps >= start) & (rows.timestamps <= end))
        best = int(inside[np.argmax(scores[inside])]) if len(inside) else peak
        records.append(
            {
                "tool": tool,
                "start": start,
                "end": end,
                "score": float(curve[peak]),
                "frame_index": int(rows.indices[best]),
                "video": video_id,
                "data": {
                    "best_t": round(float(rows.timestamps[best]), 3),
                    "frame_score": float(scores[best]),
                },
            }
        )
    return Evidence.from_rows(records)


def retrieve(ctx: ToolContext, video: Path, args: RetrieveInput) -> Evidence:
    index = ctx.index
    rows = index.frames(video, fps=ctx.fps, seek=ctx.seek)
    duration = float(ctx.store.video(index.video_id(video))["meta"]["duration"])  # type: ignore[index]
    if args.span is not None:
        start, end = checked_span(video, args.span, duration)
        keep = (rows.timestamps >= start) & (rows.timestamps <= end)
        rows = FrameRows(rows.timestamps[keep], rows.indices[keep], rows.embeddings[keep])
    encoder = index.encoder
    scores = encoder.scores(encoder.encode_texts([args.query])[0], rows.embeddings)
    return rank_moments(
        rows, scores, args.k, duration=duration, fps=ctx.fps, tool="retrieve", video_id=index.video_id(video)
    )


def search_library(ctx: ToolContext, query: str, k: int = 10) -> Evidence:
    """The best moments for ``query`` across every video indexed with the active CLIP (one frame
    set per video: the context's sampling where the video has it, else exact frames, densest first)."""
    index = ctx.index
    encoder = index.encoder
    text = encoder.encode_texts([query])[0]
    found = []
    for video_id, (fps, sampling) in _one_frame_set_per_video(ctx, encoder.model_id).items():
        rows = ctx.store.frames(video_id, encoder.model_id, sampling)
        if not len(rows):
            continue
        meta = ctx.store.video(video_id)["meta"]  # type: ignore[index]
        found.append(
            rank_moments(
                rows,
                encoder.scores(text, rows.embeddings),
                k,
                duration=float(meta["duration"]),
                fps=fps,
                tool="retrieve",
                video_id=video_id,
            )
        )
    return Evidence.merge(found).top(k)


def _one_frame_set_per_video(ctx: ToolContext, model_id: str) -> dict[str, tuple[float, str]]:
    """video id -> (fps, sampling key) of the frame set to search: a video indexed at several
    samplings (exact and keyframe, or two rates) would otherwise answer once per frame set.
    Preferred: the context's own sampling, then exact frames, then the higher rate."""
    wanted = sampling_key(ctx.fps, ctx.seek)
    chosen: dict[str, tuple[tuple[bool, bool, float], str]] = {}
    for entry in ctx.store.frame_sets(model_id):
        fps, seek = parse_sampling(entry["sampling"])
        rank = (entry["sampling"] == wanted, seek == "exact", fps)
        if entry["video_id"] not in chosen or rank > chosen[entry["video_id"]][0]:
            chosen[entry["video_id"]] = (rank, entry["sampling"])
    return {video_id: (rank[2], sampling) for video_id, (rank, sampling) in chosen.items()}


TOOL = ToolSpec(
    name="retrieve",
    description="Find the moments (time spans) of the video that best match a text description.",
    input_model=RetrieveInput,
    run=retrieve,
    roles=("clip",),
)
