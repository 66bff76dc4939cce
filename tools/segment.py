"""segment: pixel masks of one object, on single frames (SAM) or propagated through a span (SAM 2).

The object is given as a ``prompt`` alone (``'dog.'``: the track of that prompt seen on the most
sampled frames, inside ``span`` when there is one), as a track of ``detect_track`` (``track_id``
with the ``prompt`` that produced it; tracks are read from object memory, or detected once with
detect_track's default settings), or as a ``box`` (x1, y1, x2, y2 in the video's pixels) on the
frame at ``t`` seconds.

* Without ``span``: SAM (``SamModel``, box prompts, one mask per box) on the track's sampled
  frames with the track's own boxes (at most ``MAX_FRAMES``, evenly spread), or on the frame at
  ``t`` with ``box``. Masks come from ``processor.post_process_masks``; the score is SAM's
  predicted IoU.
* With ``span``: SAM 2 video (``Sam2VideoModel``) seeded with the box (for a track: its
  best-scoring sighting inside the span) and propagated to every frame of ``span`` sampled at
  ``fps``: forward from the seed to the end of the span, then, in a second session fed the
  frames in reverse order, back to its start. The score is the sigmoid of SAM 2's object score.

Memory stays bounded on long spans: frames are decoded in chunks of ``CHUNK`` and streamed to
the model one at a time (``model(inference_session=..., frame=...)``: transformers' streaming
mode; the whole video is never loaded or put on the device); after each frame the session
drops the pixels of earlier frames and the outputs of frames older than SAM 2 ever looks back
(``max(num_maskmem, max_object_pointers_in_encoder)`` frames; the seed frame's conditioning
output is kept), and each chunk's masks go to the store (bit-packed, compressed) at once, so
only per-frame numbers stay in memory.

Masks are stored with ``Store.put_masks`` at the resolution the frames were decoded at (long
side at most the model's input size) and referenced by ``mask_ref``. Evidence: one row per
frame: its time, score, the mask's bounding box (video pixels), ``mask_ref`` and data: ``area``
(fraction of the frame) and ``centroid`` (x, y as fractions of the width and height); then one
summary row per object spanning its frames, with data: ``frames``, ``area`` (first, last),
``area_change`` (last / first area), ``dx`` and ``dy`` (centroid displacement, fractions of the
frame; positive is right / down), so "does it move left, does it get bigger?" is answered
without opening a mask.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field, model_validator

from vidagent.core.errors import SpanOutOfRange, VidagentError
from vidagent.core.evidence import Evidence
from vidagent.core.spans import checked_span
from vidagent.media.video import Video, target_times
from vidagent.models.hub import LoadedModel
from vidagent.tools.base import ToolContext, ToolSpec
from vidagent.tools.detect_track import DetectInput, tracks_for

TOOL_NAME = "segment"
MAX_FRAMES = 64  # masks per object without a span (a long track is subsampled evenly)
MAX_SPAN_FRAMES = 600  # frames propagated through at most (the rate is lowered to fit)
CHUNK = 8  # frames decoded (and SAM images batched) at a time


class TrackNotFound(VidagentError):
    """The track id is not among the tracks detect_track found for the prompt."""


class SegmentInput(BaseModel):
    prompt: str | None = Field(
        default=None,
        max_length=500,
        json_schema_extra={"words": "objects", "planner_required": True},
        description="The object, e.g. 'dog.' (its most-seen track), or the detect_track prompt of track_id.",
    )
    track_id: int | None = Field(
        default=None, ge=1, description="A track id from detect_track (give its prompt too)."
    )
    box: tuple[float, float, float, float] | None = Field(  # for API callers: plans name the object
        default=None,
        description="x1, y1, x2, y2 in video pixels, on the frame at t (instead of a track).",
        json_schema_extra={"planner": False},
    )
    t: float | None = Field(
        default=None,
        ge=0,
        description="Seconds: the frame the box is on.",
        json_schema_extra={"planner": False},
    )
    span: tuple[float, float] | None = Field(
        default=None,
        description="Follow the object through [start, end] seconds (SAM 2); default: its own frames.",
    )
    fps: float = Field(default=2.0, gt=0, le=10, description="Masks per second inside span.")

    @model_validator(mode="after")
    def _one_object(self) -> SegmentInput:
        by_track = self.track_id is not None or self.prompt is not None
        by_box = self.box is not None or self.t is not None
        if by_track == by_box:
            raise ValueError("give either track_id with its prompt, or box with t")
        if by_track and not self.prompt:
            raise ValueError(
                "give the prompt: the object to segment (e.g. 'dog.'), or with track_id the prompt "
                "detect_track found the track with"
            )
        if by_box:
            if self.box is None or self.t is None:
                raise ValueError("box and t go together (t: the second the box is on)")
            x1, y1, x2, y2 = self.box
            if not (x2 > x1 and y2 > y1):
                raise ValueError(f"box {list(self.box)} must be x1, y1, x2, y2 with x2 > x1 and y2 > y1")
        if self.span is not None and not self.span[1] > self.span[0]:
            raise ValueError(f"span end must be after its start, got {self.span[0]:g}-{self.span[1]:g}s")
        return self


@dataclass(frozen=True)
class Target:
    """What to segment: box prompts (video pixels) at times, and how to name the object."""

    times: np.ndarray  # float64 (N,)
    boxes: np.ndarray  # float32 (N, 4)
    track_id: int  # -1 for a caller's box


@dataclass(frozen=True)
class MaskRow:
    t: float
    frame_index: int
    score: float
    mask: np.ndarray  # bool (h, w) at the decoded size


# --- SAM on single frames ------------------------------------------------------------------------
def decode_short_side(video: Video, longest: int) -> int | None:
    """The short side that makes the long side at most ``longest`` (None: decode at full size)."""
    short, long = min(video.width, video.height), max(video.width, video.height)
    if long <= longest:
        return None
    return max(1, math.floor(longest * short / long))


def _on_device(inputs: Any, loaded: LoadedModel) -> Any:
    inputs = inputs.to(loaded.device)
    for key in ("pixel_values", "input_boxes"):
        if key in inputs:
            inputs[key] = inputs[key].to(loaded.dtype)
    return inputs


def sam_masks(
    loaded: LoadedModel, frames: np.ndarray, boxes: np.ndarray
) -> tuple[list[np.ndarray], np.ndarray]:
    """SAM with one box prompt per frame (boxes in the frames' pixels): (bool masks, predicted IoUs)."""
    import torch

    processor = loaded.processor
    inputs = processor(
        images=list(frames), input_boxes=[[list(map(float, b))] for b in boxes], return_tensors="pt"
    )
    sizes, reshaped = inputs["original_sizes"], inputs["reshaped_input_sizes"]
    with torch.inference_mode():
        outputs = loaded.model(**_on_device(inputs, loaded), multimask_output=False)
    masks = processor.post_process_masks(outputs.pred_masks.float().cpu(), sizes, reshaped)
    scores = outputs.iou_scores.float().cpu().numpy().reshape(len(frames), -1)[:, 0]
    return [m[0, 0].numpy().astype(bool) for m in masks], scores


def _chunks(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def segment_frames(loaded: LoadedModel, video: Video, target: Target) -> Iterator[list[MaskRow]]:
    """SAM masks for each (time, box) of ``target``, a chunk of frames at a time."""
    longest = int(loaded.processor.image_processor.size.get("longest_edge", 1024))
    short_side = decode_short_side(video, longest)
    for part in _chunks(len(target.times), CHUNK):
        frames = video.sample_at(target.times[part], short_side=short_side)
        if not len(frames):
            return
        height, width = frames.frames.shape[1:3]
        scale = np.array([width / video.width, height / video.height] * 2, dtype=np.float32)
        masks, scores = sam_masks(loaded, frames.frames, target.boxes[part][: len(frames)] * scale)
        yield [
            MaskRow(float(t), int(i), float(s), m)
            for t, i, s, m in zip(frames.timestamps, frames.indices, scores, masks, strict=True)
        ]


# --- SAM 2 through a span ------------------------------------------------------------------------
def _prune(session: Any, frame_idx: int, keep: int) -> None:
    """Forget what SAM 2 no longer looks at: earlier frames' pixels, outputs older than ``keep`` frames."""
    frames = session.processed_frames or {}
    for old in [k for k in frames if k < frame_idx]:
        del frames[old]
    for outputs in session.output_dict_per_obj.values():
        stale = outputs["non_cond_frame_outputs"]
        for old in [k for k in stale if k <= frame_idx - keep]:
            del stale[old]


def propagate(
    loaded: LoadedModel, video: Video, times: Sequence[float], box: Sequence[float], short_side: int | None
) -> Iterator[list[MaskRow]]:
    """SAM 2 seeded with ``box`` (video pixels) on the frame at ``times[0]``, streamed through ``times`` in order."""
    import torch

    model, processor = loaded.model, loaded.processor
    config = model.config
    keep = max(int(config.num_maskmem), int(config.max_object_pointers_in_encoder)) + 1
    session = processor.init_video_session(inference_device=loaded.device, dtype=loaded.dtype)
    position = 0
    times = np.asarray(times, dtype=np.float64)
    for part in _chunks(len(times), CHUNK):
        frames = video.sample_at(times[part], short_side=short_side)
        if not len(frames):
            return
        height, width = frames.frames.shape[1:3]
        rows = []
        for image, t, index in zip(frames.frames, frames.timestamps, frames.indices, strict=True):
            inputs = processor(images=image, return_tensors="pt")
            if position == 0:
                scale = np.array([width / video.width, height / video.height] * 2)
                processor.add_inputs_to_inference_session(
                    session,
                    frame_idx=0,
                    obj_ids=1,
                    input_boxes=[[[float(v) for v in np.asarray(box) * scale]]],
                    original_size=(height, width),
                )
            with torch.inference_mode():
                out = model(
                    inference_session=session,
                    frame_idx=position,
                    frame=inputs["pixel_values"][0].to(loaded.device, loaded.dtype),
                )
            mask = processor.post_process_masks(
                [out.pred_masks.float().cpu()], original_sizes=[(height, width)], binarize=True
            )[0]
            score = float(torch.sigmoid(out.object_score_logits.float()).reshape(-1)[0])
            rows.append(MaskRow(float(t), int(index), score, mask[0, 0].numpy().astype(bool)))
            _prune(session, position, keep)
            position += 1
        yield rows


def propagate_span(
    loaded: LoadedModel,
    video: Video,
    span: tuple[float, float],
    fps: float,
    seed_t: float,
    seed_box: Sequence[float],
) -> Iterator[list[MaskRow]]:
    """Forward from the seed to the span's end, then backward to its start (seed frame once)."""
    grid = target_times(span, fps=fps)
    longest = int(loaded.processor.image_processor.size.get("height", 1024))
    short_side = decode_short_side(video, longest)
    forward = [seed_t, *[t for t in grid if t > seed_t + 1e-6]]
    backward = [seed_t, *[t for t in grid[::-1] if t < seed_t - 1e-6]]
    yield from propagate(loaded, video, forward, seed_box, short_side)
    if len(backward) > 1:
        for i, rows in enumerate(propagate(loaded, video, backward, seed_box, short_side)):
            yield rows[1:] if i == 0 else rows


# --- the tool ------------------------------------------------------------------------------------
def mask_stats(mask: np.ndarray) -> tuple[float, list[float] | None, list[float] | None]:
    """(area as a fraction of the frame, centroid (x, y) as fractions, bounding box in mask pixels)."""
    ys, xs = np.nonzero(mask)
    if not len(xs):
        return 0.0, None, None
    height, width = mask.shape
    centroid = [float((xs.mean() + 0.5) / width), float((ys.mean() + 0.5) / height)]
    return (
        float(len(xs) / mask.size),
        centroid,
        [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)],
    )


def _most_seen(tracks: Sequence[dict[str, Any]], span: tuple[float, float] | None) -> dict[str, Any] | None:
    """The track seen on the most sampled frames (inside ``span``), ties to the higher mean score."""

    def seen(track: dict[str, Any]) -> int:
        times = np.asarray(track["t"], dtype=np.float64)
        return int(len(times) if span is None else np.count_nonzero((times >= span[0]) & (times <= span[1])))

    counted = [(seen(track), float(track["mean_score"]), track) for track in tracks]
    counted = [item for item in counted if item[0] > 0]
    return max(counted, key=lambda item: item[:2])[2] if counted else None


def _target(ctx: ToolContext, video: Path, args: SegmentInput) -> Target:
    """The box prompts: the caller's box, or the track's boxes (its best sighting in the span with one)."""
    if args.box is not None and args.t is not None:
        return Target(np.array([args.t]), np.array([args.box], dtype=np.float32), -1)
    _, tracks, _ = tracks_for(ctx, video, DetectInput(prompt=args.prompt or ""))
    if args.track_id is None:  # the prompt alone: its most-seen track (inside the span, when there is one)
        track = _most_seen(tracks, args.span)
        if track is None:
            where = f" inside {args.span[0]:g}-{args.span[1]:g}s" if args.span else ""
            raise TrackNotFound(f"detect_track found no {args.prompt!r}{where}: nothing to segment")
        args = args.model_copy(update={"track_id": int(track["track_id"])})
    track = next((tr for tr in tracks if tr["track_id"] == args.track_id), None)
    if track is None:
        known = ", ".join(str(tr["track_id"]) for tr in tracks[:20]) or "none"
        raise TrackNotFound(
            f"detect_track found no track {args.track_id} for {args.prompt!r} (its tracks: {known})"
        )
    boxes = np.array(track["box"], dtype=np.float32)
    times = np.array(track["t"], dtype=np.float64)
    if args.span is not None:  # seed SAM 2 with the best sighting inside the span
        inside = np.flatnonzero((times >= args.span[0]) & (times <= args.span[1]))
        if not len(inside):
            raise SpanOutOfRange(
                video,
                f"track {args.track_id} is not seen inside {args.span[0]:g}-{args.span[1]:g}s "
                f"(seen {track['first_seen']:g}-{track['last_seen']:g}s)",
            )
        best = inside[np.argmax(np.array(track["score"])[inside])]
        return Target(times[[best]], boxes[[best]], int(track["track_id"]))
    if len(times) > MAX_FRAMES:
        pick = np.unique(np.linspace(0, len(times) - 1, MAX_FRAMES).round().astype(int))
        times, boxes = times[pick], boxes[pick]
    return Target(times, boxes, int(track["track_id"]))


def _rows(
    ctx: ToolContext, video_id: str, key: str, target: Target, chunks: Iterator[list[MaskRow]], video: Video
) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for chunk in chunks:
        stored = []
        for row in chunk:
            mask_id = f"{TOOL_NAME}-{key}-{len(records):05d}"
            area, centroid, bbox = mask_stats(row.mask)
            height, width = row.mask.shape
            scale = (video.width / width, video.height / height) * 2
            box = None if bbox is None else [round(v * f, 1) for v, f in zip(bbox, scale, strict=True)]
            data: dict[str, Any] = {"area": round(area, 4)}
            if centroid is not None:
                data["centroid"] = [round(v, 3) for v in centroid]
            records.append(
                {
                    "tool": TOOL_NAME,
                    "start": row.t,
                    "end": row.t,
                    "score": row.score,
                    "frame_index": row.frame_index,
                    "box": box,
                    "track_id": target.track_id,
                    "mask_ref": mask_id,
                    "video": video_id,
                    "data": data,
                }
            )
            stored.append((mask_id, row.t, row.mask))
        ctx.store.put_masks(video_id, stored)
    records.sort(key=lambda r: r["start"])
    return records


def summary(records: Sequence[dict[str, Any]], track_id: int, video_id: str) -> dict[str, Any] | None:
    """One row over an object's frames: how its area and centroid change from first to last."""
    if not records:
        return None
    first, last = records[0], records[-1]
    seen = [r for r in records if "centroid" in r["data"]]
    data: dict[str, Any] = {
        "summary": True,
        "frames": len(records),
        "area": [first["data"]["area"], last["data"]["area"]],
    }
    data["area_change"] = (
        round(last["data"]["area"] / first["data"]["area"], 3) if first["data"]["area"] > 0 else None
    )
    if len(seen) >= 2:
        (x0, y0), (x1, y1) = seen[0]["data"]["centroid"], seen[-1]["data"]["centroid"]
        data["dx"], data["dy"] = round(x1 - x0, 3), round(y1 - y0, 3)
    return {
        "tool": TOOL_NAME,
        "start": first["start"],
        "end": last["end"],
        "score": float(np.mean([r["score"] for r in records])),
        "track_id": track_id,
        "video": video_id,
        "data": data,
    }


def segment(ctx: ToolContext, video: Path, args: SegmentInput) -> Evidence:
    role = "segmenter" if args.span is None else "video_segmenter"
    loaded = ctx.hub.get(role)
    models = (
        loaded.model_key if args.prompt is None else f"{loaded.model_key}+{ctx.hub.get('detector').spec.id}"
    )

    def compute() -> Evidence:
        video_id = ctx.store.content_hash(video)
        key = ctx.store.settings_key(
            {"video": video_id, "models": models, "args": args.model_dump(mode="json")}
        )
        target = _target(ctx, video, args)
        with Video.open(video) as opened:
            if args.span is None:
                chunks = segment_frames(loaded, opened, target)
            else:
                span = checked_span(video, args.span, opened.duration)
                seed_t = float(target.times[0])
                if not span[0] - 1e-6 <= seed_t <= span[1] + 1e-6:
                    raise SpanOutOfRange(
                        video,
                        f"t={seed_t:g}s (the box's frame) is not inside the span {span[0]:g}-{span[1]:g}s",
                    )
                fps = min(args.fps, MAX_SPAN_FRAMES / max(span[1] - span[0], 1e-9))
                chunks = propagate_span(loaded, opened, span, fps, seed_t, target.boxes[0])
            records = _rows(ctx, video_id, key, target, chunks, opened)
        head = summary(records, target.track_id, video_id)
        return Evidence.from_rows(([head] if head else []) + records)

    return ctx.cached(TOOL_NAME, video, models, args, compute)


TOOL = ToolSpec(
    name=TOOL_NAME,
    description="Pixel masks of one object (named: 'dog.'; a detect_track track; or a box at a time), optionally followed "
    "through a span: per-frame area and centroid, and how they change (moves left? grows?).",
    input_model=SegmentInput,
    run=segment,
    roles=("segmenter", "video_segmenter", "detector"),
)
