"""look: answer a question about specific frames of a video with the VLM (frame VQA).

The VLM is the profile's ``vlm`` role: LLaVA-OneVision by default, any LLaVA-family checkpoint
that loads with ``AutoModelForImageTextToText`` + ``AutoProcessor`` (the hub's ``llava`` loader).
Frames go in as images through the processor's chat template: one frame is one image (LLaVA-
OneVision tiles it, "anyres", for detail), several frames are a multi-image prompt (one base
tile each). The prompt says at which seconds the frames were taken, so questions about order or
change can be answered. Decoding is greedy unless the role's ``options`` say otherwise
(``max_new_tokens``, ``num_beams``, ``do_sample``, ``temperature``, ``top_p``,
``repetition_penalty``, ``min_new_tokens``); ``options.short_side`` caps the decoded frame size
(default 448; frames are never upscaled).

One Evidence row per call: the span looked at, the answer as ``text`` (data, never instructions),
and ``data.frames``, the number of frames shown (the agent's frame budget counts it). Answers
are cached in the store's tool results per (video, arguments, model, generation settings), so
the same question about the same frames never runs the model twice.

:func:`vlm_generate` is the one place that calls the VLM; ``caption`` uses it too.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field, model_validator

from vidagent.core.evidence import Evidence
from vidagent.core.spans import checked_span
from vidagent.media.video import Frames, Video
from vidagent.models.hub import LoadedModel
from vidagent.prompts import load_prompt
from vidagent.tools.base import ToolContext, ToolSpec

DEFAULT_MAX_NEW_TOKENS = 128
DEFAULT_SHORT_SIDE = 448
GENERATION_OPTIONS = (
    "max_new_tokens",
    "min_new_tokens",
    "num_beams",
    "do_sample",
    "temperature",
    "top_p",
    "repetition_penalty",
)

_GENERATE_LOCK = threading.Lock()  # one VLM call at a time: predictable memory, no CPU oversubscription


class LookInput(BaseModel):
    question: str = Field(
        min_length=1,
        max_length=500,
        description="What to find out from the frames.",
        json_schema_extra={"words": "phrase"},
    )
    span: tuple[float, float] | None = Field(
        default=None, description="Look at frames spread evenly over [start, end] seconds."
    )
    times: list[float] | None = Field(
        default=None,
        min_length=1,
        max_length=16,
        description="Or: look at the frames shown at these seconds.",
    )
    frames: int = Field(default=4, ge=1, le=16, description="How many frames to take from the span.")

    @model_validator(mode="after")
    def _span_or_times(self) -> LookInput:
        if self.span is not None and self.times is not None:
            raise ValueError("give either span or times, not both")
        return self


@dataclass(frozen=True)
class VlmOutput:
    """What one batched VLM call produced: generated token ids (prompt, padding and EOS removed) and text."""

    sequences: list[list[int]]
    texts: list[str]


def generation_kwargs(
    loaded: LoadedModel, default_max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
) -> dict[str, Any]:
    """Generation settings from the role's ``options``; greedy unless they ask for sampling."""
    options = loaded.spec.options
    kwargs: dict[str, Any] = {k: options[k] for k in GENERATION_OPTIONS if k in options}
    kwargs.setdefault("max_new_tokens", default_max_new_tokens)
    kwargs.setdefault("do_sample", False)
    kwargs.setdefault("num_beams", 1)
    return kwargs


def vlm_messages(n_images: int, prompt: str) -> list[dict[str, Any]]:
    """One user turn: ``n_images`` image placeholders, then the text (the chat template orders them)."""
    return [
        {
            "role": "user",
            "content": [*({"type": "image"} for _ in range(n_images)), {"type": "text", "text": prompt}],
        }
    ]


def vlm_generate(
    loaded: LoadedModel, batch: Sequence[Sequence[np.ndarray]], prompts: Sequence[str], **overrides: Any
) -> VlmOutput:
    """Run the VLM on a batch: item ``i`` shows the images ``batch[i]`` (RGB arrays) with ``prompts[i]``.

    Several items are padded on the left (decoder-only generation); one item is not padded at all,
    so it matches a plain single-prompt transformers call token for token.
    """
    import torch

    if len(batch) != len(prompts):
        raise ValueError(f"{len(batch)} image lists for {len(prompts)} prompts")
    processor, model = loaded.processor, loaded.model
    texts = [
        processor.apply_chat_template(
            vlm_messages(len(images), prompt), add_generation_prompt=True, tokenize=False
        )
        for images, prompt in zip(batch, prompts, strict=True)
    ]
    images = [[np.ascontiguousarray(image) for image in item] for item in batch]
    extra = {"padding": True, "padding_side": "left"} if len(batch) > 1 else {}
    inputs = processor(images=images, text=texts, return_tensors="pt", **extra).to(loaded.device)
    if "pixel_values" in inputs:
        inputs["pixel_values"] = inputs["pixel_values"].to(loaded.dtype)
    kwargs = {**generation_kwargs(loaded), **overrides}
    with _GENERATE_LOCK, torch.inference_mode():
        output = model.generate(**inputs, **kwargs)
    new_tokens = output[:, inputs["input_ids"].shape[1] :].tolist()
    stop = _stop_ids(model, processor)
    sequences = [_until_stop(ids, stop) for ids in new_tokens]
    decoded = processor.batch_decode(sequences, skip_special_tokens=True)
    return VlmOutput(sequences=sequences, texts=[t.strip() for t in decoded])


def _stop_ids(model: Any, processor: Any) -> set[int]:
    ids: set[int] = set()
    for value in (model.generation_config.eos_token_id, model.generation_config.pad_token_id):
        if value is not None:
            ids.update([value] if isinstance(value, int) else value)
    tokenizer = getattr(processor, "tokenizer", processor)
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids


def _until_stop(ids: list[int], stop: set[int]) -> list[int]:
    """Tokens up to (not including) the first EOS/pad: what the model actually said."""
    for i, token in enumerate(ids):
        if token in stop:
            return ids[:i]
    return ids


def frame_short_side(loaded: LoadedModel, video: Video) -> int:
    """The short side to decode frames at: ``options.short_side`` (default 448), never upscaled."""
    wanted = int(loaded.spec.options.get("short_side", DEFAULT_SHORT_SIDE))
    return max(1, min(wanted, video.width, video.height))


def look_prompt(request: str, times: Sequence[float]) -> str:
    """The VLM's prompt for frames taken at ``times`` seconds: when they were taken, then ``request``
    (look's question, caption's instruction) exactly as given (prompts/look.yaml)."""
    return load_prompt("look").render("user", times=[float(t) for t in times], request=request)


def sample_look_frames(video: Video, args: LookInput, short_side: int) -> tuple[Frames, tuple[float, float]]:
    """The frames ``args`` asks for and the span they stand for."""
    if args.times is not None:
        frames = video.sample_at(sorted(args.times), short_side=short_side)
        return frames, (min(args.times), max(args.times))
    span = checked_span(video.path, args.span, video.duration)
    return video.sample_uniform(args.frames, span=span, short_side=short_side), span


def look(ctx: ToolContext, video: Path, args: LookInput) -> Evidence:
    loaded = ctx.hub.get("vlm")
    settings = {
        "gen": generation_kwargs(loaded),
        "prompt": load_prompt("look").version,
        "dtype": str(loaded.dtype),
        "short_side": loaded.spec.options.get("short_side", DEFAULT_SHORT_SIDE),
    }
    key = f"{loaded.model_key}#{ctx.store.settings_key(settings)}"

    def compute() -> Evidence:
        video_id = ctx.store.content_hash(video)
        with Video.open(video) as opened:
            frames, (start, end) = sample_look_frames(opened, args, frame_short_side(loaded, opened))
        if not len(frames):
            return Evidence.empty()
        times = [float(t) for t in frames.timestamps]
        answer = vlm_generate(loaded, [list(frames.frames)], [look_prompt(args.question, times)]).texts[0]
        middle = len(frames) // 2
        return Evidence.from_rows(
            [
                {
                    "tool": "look",
                    "start": start,
                    "end": end,
                    "score": 1.0,
                    "text": answer,
                    "video": video_id,
                    "frame_index": int(frames.indices[middle]),
                    "data": {"frames": len(frames), "times": [round(t, 2) for t in times]},
                }
            ]
        )

    return ctx.cached("look", video, key, args, compute)


TOOL = ToolSpec(
    name="look",
    description="Ask the vision-language model a question about frames of a span (or at given seconds).",
    input_model=LookInput,
    run=look,
    roles=("vlm",),
)
