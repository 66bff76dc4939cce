"""ground: the moments of a video where a natural-language query happens, and a saliency curve.

With a trained grounding head in the profile's ``ground_head`` role (``vidagent.grounding.head``,
trained by ``vidagent train-ground``), the head reads the frozen CLIP's last layers for the
clips of the asked span, computed on demand (``ClipEncoder.encode_images(...,
hidden_states=True)``, one frame per clip) and kept in memory per (video, CLIP) so that more
queries on the same video reuse them. Without one, a zero-shot fallback scores the indexed frame
embeddings against the query's CLIP text embedding, smooths the curve and grows its peaks into
spans (as ``retrieve`` does). Every row says which: ``data.method`` is ``head`` or ``zero_shot``.

Rows are moments, best first (span, score: the head's foreground probability or the smoothed
CLIP score). The top row also carries the saliency curve over the span, resampled to at most
``CURVE_POINTS`` points and min-max scaled to 0-1: ``data.saliency`` with ``saliency_start``
and ``saliency_step`` (seconds).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from vidagent.core.errors import VidagentError
from vidagent.core.evidence import Evidence
from vidagent.core.spans import checked_span
from vidagent.grounding.features import ClipFeatureMemory
from vidagent.media.store import FrameRows
from vidagent.tools.base import ToolContext, ToolSpec
from vidagent.tools.retrieve import peaks_to_spans, smooth

CURVE_POINTS = 32


class GroundInput(BaseModel):
    query: str = Field(
        min_length=1,
        max_length=300,
        description="The event or moment to find, in plain words.",
        json_schema_extra={"words": "phrase"},
    )
    span: tuple[float, float] | None = Field(default=None, description="Only inside [start, end] seconds.")
    k: int = Field(default=5, ge=1, le=20, description="How many moments to return.")


def _curve(times: np.ndarray, values: np.ndarray, start: float, end: float) -> dict[str, object]:
    """The saliency curve resampled on at most CURVE_POINTS points over [start, end], scaled 0-1."""
    points = int(min(CURVE_POINTS, max(1, round(end - start))))
    step = (end - start) / points
    grid = start + (np.arange(points) + 0.5) * step
    sampled = np.interp(grid, times, values) if len(times) > 1 else np.full(points, float(values[0]))
    low, high = float(sampled.min()), float(sampled.max())
    scaled = (sampled - low) / (high - low) if high > low else np.zeros_like(sampled)
    return {
        "saliency": [round(float(v), 2) for v in scaled],
        "saliency_start": round(start, 3),
        "saliency_step": round(step, 3),
    }


def _with_curve(rows: list[dict], curve: dict[str, object]) -> Evidence:
    if rows:
        rows[0]["data"] = {**rows[0]["data"], **curve}
    return Evidence.from_rows(rows)


def _head_features(
    ctx: ToolContext, video: Path, video_id: str, head, times: np.ndarray, wanted: np.ndarray
) -> np.ndarray:
    """Features of the clips ``wanted`` (indices into ``times``), computing the missing ones once."""
    from vidagent.grounding.head import vision_features
    from vidagent.media.video import Video

    encoder = ctx.index.encoder
    cfg = head.config
    memory = ctx.shared("ground.clip_features", ClipFeatureMemory).clips(
        (video_id, encoder.model_id, cfg.clip_seconds, cfg.num_layers, cfg.pool_grid)
    )
    missing = [int(i) for i in wanted if int(i) not in memory]
    if missing:
        with Video.open(video) as opened:
            frames = opened.sample_at(times[missing], short_side=encoder.input_size)
        if not len(frames):
            raise VidagentError(f"{video}: no frame decodes in the asked span")
        computed = vision_features(encoder, frames.frames, cfg)
        memory.update(zip(missing[: len(computed)], computed, strict=True))
    have = [int(i) for i in wanted if int(i) in memory]
    return np.stack([memory[i] for i in have])


def _ground_with_head(ctx: ToolContext, video: Path, args: GroundInput) -> Evidence:
    from vidagent.grounding.head import check_compatible, clip_grid, text_features
    from vidagent.media.video import Video

    head = ctx.hub.get("ground_head").model
    encoder = ctx.index.encoder
    check_compatible(head.config, encoder)
    video_id = ctx.index.video_id(video)
    with Video.open(video) as opened:
        duration = float(opened.duration)
    start, end = checked_span(video, args.span, duration)
    cfg = head.config
    times = clip_grid(duration, cfg.clip_seconds)
    first = int(start // cfg.clip_seconds)
    last = max(first, min(len(times) - 1, int(np.ceil(end / cfg.clip_seconds)) - 1))
    wanted = np.arange(first, last + 1)
    clips = _head_features(ctx, video, video_id, head, times, wanted)
    text = text_features(encoder, [args.query], cfg)[0]
    offset = first * cfg.clip_seconds
    prediction = head.predict(clips, text, duration=min(end, duration) - offset)
    rows = []
    for s, e, p in prediction.moments[: args.k]:
        s, e = max(s + offset, start), min(e + offset, end)
        if e <= s:
            continue
        rows.append(
            {
                "tool": "ground",
                "start": s,
                "end": e,
                "score": float(p),
                "video": video_id,
                "data": {"method": "head"},
            }
        )
    centres = times[wanted[: len(prediction.saliency)]]
    return _with_curve(rows, _curve(centres, prediction.saliency, start, end))


def _ground_zero_shot(ctx: ToolContext, video: Path, args: GroundInput) -> Evidence:
    index = ctx.index
    rows = index.frames(video, fps=ctx.fps, seek=ctx.seek)
    video_id = index.video_id(video)
    duration = float(ctx.store.video(video_id)["meta"]["duration"])  # type: ignore[index]
    start, end = checked_span(video, args.span, duration)
    keep = (rows.timestamps >= start) & (rows.timestamps <= end)
    rows = FrameRows(rows.timestamps[keep], rows.indices[keep], rows.embeddings[keep])
    if not len(rows):
        return Evidence.empty()
    encoder = index.encoder
    scores = encoder.scores(encoder.encode_texts([args.query])[0], rows.embeddings)
    curve = smooth(scores)
    records = []
    for s, e, peak in peaks_to_spans(rows.timestamps, curve, args.k, step=1.0 / ctx.fps, duration=duration):
        s, e = max(s, start), min(e, end)
        records.append(
            {
                "tool": "ground",
                "start": s,
                "end": max(e, s),
                "score": float(curve[peak]),
                "video": video_id,
                "frame_index": int(rows.indices[peak]),
                "data": {"method": "zero_shot"},
            }
        )
    return _with_curve(records, _curve(rows.timestamps, curve, start, end))


def _head_version(ctx: ToolContext) -> str:
    """The head's id plus its weights' size and mtime (a retrained head never reuses old results)."""
    loaded = ctx.hub.get("ground_head")
    weights = Path(loaded.source) / "model.safetensors"
    stat = weights.stat() if weights.is_file() else None
    return f"{loaded.spec.id}@{stat.st_size}-{stat.st_mtime_ns}" if stat else str(loaded.spec.id)


def ground(ctx: ToolContext, video: Path, args: GroundInput) -> Evidence:
    if ctx.hub.available("ground_head"):
        import vidagent.grounding.head  # noqa: F401  (registers the hub's `ground_head` loader)

        model_id = f"{ctx.index.encoder.model_id}+head:{_head_version(ctx)}"
        return ctx.cached("ground", video, model_id, args, lambda: _ground_with_head(ctx, video, args))
    return _ground_zero_shot(ctx, video, args)


TOOL = ToolSpec(
    name="ground",
    description=(
        "Find when an event or action described in words happens (temporal grounding): time spans "
        "with scores, plus a per-second saliency curve."
    ),
    input_model=GroundInput,
    run=ground,
    roles=("clip",),
)
