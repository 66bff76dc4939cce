"""caption: describe a span of a video from several frames with the VLM; dense captions for indexing.

``caption(span)`` samples ``frames`` frames evenly over the span and asks the profile's ``vlm``
(see :mod:`vidagent.tools.look`) for a short description, as one multi-image prompt. The
caption is one Evidence row: the span, the caption as ``text`` and ``data.frames``.

:func:`caption_video` is the dense mode used by ``vidagent index --captions-every SECONDS``: one
caption per ``every_s`` seconds of the whole video, batched through the VLM
(``options.batch_size``, default 1).

Captions live in the store's text table (``put_texts``/``texts``, tool ``caption``), keyed by
(video, model, settings) where the settings hold the span or the dense grid, the frame count,
the prompt and the generation settings. A stored set is returned as it is, so the VLM never
captions the same thing twice, and every caption is found by ``Store.search_texts``
(``vidagent texts QUERY``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from vidagent.core.evidence import Evidence
from vidagent.core.spans import checked_span
from vidagent.media.video import Video
from vidagent.models.hub import LoadedModel
from vidagent.prompts import load_prompt
from vidagent.tools.base import ToolContext, ToolSpec
from vidagent.tools.look import (
    DEFAULT_SHORT_SIDE,
    frame_short_side,
    generation_kwargs,
    look_prompt,
    vlm_generate,
)

DEFAULT_MAX_NEW_TOKENS = 96


class CaptionInput(BaseModel):
    span: tuple[float, float] | None = Field(
        default=None, description="Describe [start, end] seconds (default: the whole video)."
    )
    frames: int = Field(default=6, ge=1, le=16, description="How many frames the model sees.")


def caption_instruction(loaded: LoadedModel) -> str:
    """What the VLM is asked to do: the role's ``options.caption_prompt``, else prompts/caption.yaml's."""
    options = loaded.spec.options
    if "caption_prompt" in options:
        return str(options["caption_prompt"])
    return load_prompt("caption").render("instruction")


def caption_prompt(loaded: LoadedModel, times: list[float]) -> str:
    return look_prompt(caption_instruction(loaded), times)


def _settings(ctx: ToolContext, loaded: LoadedModel, **shape: Any) -> str:
    """The store's settings key: what, besides the model, shaped the captions."""
    return ctx.store.settings_key(
        {
            **shape,
            "prompt": caption_instruction(loaded),
            "gen": generation_kwargs(loaded, DEFAULT_MAX_NEW_TOKENS),
            "short_side": loaded.spec.options.get("short_side", DEFAULT_SHORT_SIDE),
            "dtype": str(loaded.dtype),
        }
    )


def _evidence(rows: list[dict[str, Any]], video_id: str) -> Evidence:
    return Evidence.from_rows(
        [
            {
                "tool": "caption",
                "start": r["start"],
                "end": r["end"],
                "score": r.get("score", 1.0),
                "text": r["text"],
                "video": video_id,
                "data": r.get("data", {}),
            }
            for r in rows
        ]
    )


def _caption_windows(
    loaded: LoadedModel,
    video: Video,
    windows: list[tuple[float, float]],
    frames: int,
    progress: Callable[[int, int], None] | None = None,
) -> list[dict[str, Any]]:
    """One caption row per window, ``options.batch_size`` windows per VLM call."""
    short_side = frame_short_side(loaded, video)
    batch_size = max(1, int(loaded.spec.options.get("batch_size", 1)))
    gen = generation_kwargs(loaded, DEFAULT_MAX_NEW_TOKENS)
    rows: list[dict[str, Any]] = []
    for first in range(0, len(windows), batch_size):
        batch, prompts, shown = [], [], []
        for start, end in windows[first : first + batch_size]:
            sampled = video.sample_uniform(frames, span=(start, end), short_side=short_side)
            if not len(sampled):  # past the last decodable frame (a truncated file)
                continue
            times = [float(t) for t in sampled.timestamps]
            batch.append(list(sampled.frames))
            prompts.append(caption_prompt(loaded, times))
            shown.append((start, end, times))
        if batch:
            texts = vlm_generate(loaded, batch, prompts, **gen).texts
            for (start, end, times), text in zip(shown, texts, strict=True):
                rows.append(
                    {
                        "start": start,
                        "end": end,
                        "text": text,
                        "score": 1.0,
                        "data": {"frames": len(times), "times": [round(t, 2) for t in times]},
                    }
                )
        if progress:
            progress(min(first + batch_size, len(windows)), len(windows))
    return rows


def caption(ctx: ToolContext, video: Path, args: CaptionInput) -> Evidence:
    loaded = ctx.hub.get("vlm")
    video_id = ctx.store.content_hash(video)
    with Video.open(video) as opened:
        start, end = checked_span(opened.path, args.span, opened.duration)
        settings = _settings(ctx, loaded, span=[round(start, 3), round(end, 3)], frames=args.frames)
        rows = ctx.store.texts(video_id, "caption", loaded.model_key, settings)
        if rows is None:
            rows = _caption_windows(loaded, opened, [(start, end)], args.frames)
            ctx.store.put_texts(video_id, "caption", loaded.model_key, settings, rows)
    return _evidence(rows, video_id)


def caption_windows(duration: float, every_s: float) -> list[tuple[float, float]]:
    """``[0, every_s), [every_s, 2 every_s), …`` up to ``duration``; a last sliver under 1/4 joins its neighbour."""
    if not every_s > 0:
        raise ValueError(f"every_s must be positive, got {every_s}")
    edges = [k * every_s for k in range(int(duration // every_s) + 1)]
    if duration - edges[-1] > every_s / 4 or len(edges) == 1:
        edges.append(duration)
    else:
        edges[-1] = duration
    return [(a, b) for a, b in itertools.pairwise(edges) if b > a]


def caption_video(
    ctx: ToolContext,
    video: str | Path,
    every_s: float = 10.0,
    *,
    frames: int = 4,
    progress: Callable[[int, int], None] | None = None,
) -> Evidence:
    """Dense captions: one per ``every_s`` seconds of the whole video, stored and searchable."""
    if not 1 <= frames <= 16:
        raise ValueError(f"frames must be 1-16, got {frames}")
    loaded = ctx.hub.get("vlm")
    video = Path(video)
    video_id = ctx.store.content_hash(video)
    with Video.open(video) as opened:
        ctx.store.add_video(video_id, video, opened.meta.to_dict())
        settings = _settings(ctx, loaded, every_s=float(every_s), frames=frames)
        rows = ctx.store.texts(video_id, "caption", loaded.model_key, settings)
        if rows is None:
            rows = _caption_windows(
                loaded, opened, caption_windows(opened.duration, every_s), frames, progress
            )
            ctx.store.put_texts(video_id, "caption", loaded.model_key, settings, rows)
    return _evidence(rows, video_id)


TOOL = ToolSpec(
    name="caption",
    description="Describe in words what happens in a span of the video (from several frames).",
    input_model=CaptionInput,
    run=caption,
    roles=("vlm",),
)
