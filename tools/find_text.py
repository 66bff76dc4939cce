"""find_text: when something is said or shown, by searching the video's transcript and on-screen text.

The video's speech (``transcribe``, the whole audio track) and on-screen text (``read_text``,
1 frame/s) are read once with those tools' default settings, which ``vidagent index`` also
uses, so an indexed video is searched without running a model, and a later ``transcribe`` or
``read_text`` call on it is a cache hit. The rows are then searched with
:class:`vidagent.media.text_search.TextSearch`: keywords (FTS5) and meaning (MiniLM embeddings), fused.

Each hit is one Evidence row (tool ``find_text``): the text of the segment or line, its span, the
fused score, and in ``data`` where it came from (``source``: speech or screen), how it matched
and, for speech matched by keyword, the span of the whole segment (``segment``) while the row's
own span is narrowed to the matching words (Whisper's word times), so "when is Oxford said"
gets the second the word is spoken, not the segment's 5 s.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from vidagent.core.evidence import Evidence
from vidagent.core.question_words import lemma
from vidagent.media.text_search import RRF_K, TextHit, TextSearch
from vidagent.models.sentence_embedders import embedder_for
from vidagent.tools.base import ToolContext, ToolSpec

SOURCES = {"speech": ("transcribe",), "screen": ("read_text",), "any": ("transcribe", "read_text")}
SOURCE_OF_TOOL = {"transcribe": "speech", "read_text": "screen"}


class FindTextInput(BaseModel):
    query: str = Field(
        min_length=1,
        max_length=200,
        description="The words said or shown to find.",
        json_schema_extra={"words": "phrase"},
    )
    source: Literal["any", "speech", "screen"] = Field(
        default="any", description="speech (what is said), screen (text shown) or any."
    )
    k: int = Field(
        default=5, ge=1, le=20, description="How many matches at most.", json_schema_extra={"planner": False}
    )


def read_video_texts(
    ctx: ToolContext, video: Path, sources: tuple[str, ...] = ("transcribe", "read_text")
) -> dict[str, int]:
    """Transcribe and read the video once (default settings; stored), for search. Rows per tool."""
    from vidagent.tools.read_text import ReadTextInput, read_text
    from vidagent.tools.transcribe import TranscribeInput, transcribe

    counts = {}
    if "transcribe" in sources and ctx.hub.available("asr"):
        counts["transcribe"] = len(transcribe(ctx, video, TranscribeInput()))
    if "read_text" in sources:
        counts["read_text"] = len(read_text(ctx, video, ReadTextInput()))
    return counts


def index_texts(ctx: ToolContext, video: Path, *, speech: bool = True, text: bool = True) -> dict[str, int]:
    """What ``vidagent index`` adds to the frames: the speech and on-screen text rows, embedded for search."""
    sources = (("transcribe",) if speech else ()) + (("read_text",) if text else ())
    if not sources:
        return {}
    counts = read_video_texts(ctx, video, sources)
    search = TextSearch(ctx.store, embedder_for(ctx.hub))
    search.embed_rows(ctx.store.text_rows(video_id=ctx.store.content_hash(video), tools=sources))
    return counts


def matched_words_span(hit: TextHit, query: str) -> tuple[float, float] | None:
    """The span of a speech row's words that match the query's words (by lemma), if any."""
    words = hit.row["data"].get("_words") or []
    wanted = {lemma(w) for w in re.findall(r"\w+", query.casefold())}
    times = [
        (float(start), float(end))
        for word, start, end in words
        if any(lemma(w) in wanted for w in re.findall(r"\w+", str(word).casefold()))
    ]
    if not times:
        return None
    return min(t[0] for t in times), max(t[1] for t in times)


def hit_row(hit: TextHit, query: str) -> dict[str, Any]:
    row = hit.row
    start, end = float(row["start"]), float(row["end"])
    data: dict[str, Any] = {
        "source": SOURCE_OF_TOOL.get(row["tool"], row["tool"]),
        "matched_by": hit.matched_by,
        "cosine": round(hit.cosine, 3),
    }
    if hit.keyword_rank is not None and (words := matched_words_span(hit, query)) is not None:
        data["segment"] = [start, end]
        start, end = words
    for key in ("box", "frame_index"):
        if key in row["data"]:
            data[key] = row["data"][key]
    return {
        "tool": "find_text",
        "start": start,
        "end": end,
        "score": round(hit.score * (RRF_K + 1) / 2, 4),
        "text": row["text"],
        "video": row["video_id"],
        "box": data.pop("box", None),
        "frame_index": data.pop("frame_index", -1),
        "data": data,
    }


def find_text(ctx: ToolContext, video: Path, args: FindTextInput) -> Evidence:
    tools = SOURCES[args.source]
    read_video_texts(ctx, video, tools)
    search = TextSearch(ctx.store, embedder_for(ctx.hub))
    hits = search.search(args.query, video_id=ctx.store.content_hash(video), tools=tools, k=args.k)
    return Evidence.from_rows([hit_row(hit, args.query) for hit in hits])


TOOL = ToolSpec(
    name="find_text",
    description="Find when given words are said (speech) or shown on screen (text), with their times.",
    input_model=FindTextInput,
    run=find_text,
    roles=(),
)
