"""detect_track: open-vocabulary detection (GroundingDINO) and tracking (ByteTrack) of named objects.

The prompt names the objects, each label ending with "." ("person. bicycle."); it is normalised
(lower-case, whitespace collapsed, labels split at ``.`` ``,`` ``;`` ``?`` or new lines, repeats
dropped). Labels that do not fit the detector's text encoder (the least of the tokenizer's
``model_max_length``, ``config.max_text_len`` and the text tower's positions) are dropped from
the end with a warning naming them.

Frames are sampled at ``fps`` inside ``span`` (lowered so at most ``MAX_FRAMES`` are read),
decoded straight at the size the processor resizes to (its ``shortest_edge``, capped by
``longest_edge``; never upscaled), and go through ``GroundingDinoForObjectDetection`` in
batches. ``processor.post_process_grounded_object_detection`` turns the outputs into boxes in
the video's pixels (queries scoring above ``box_threshold``). Each box gets the label whose
phrase tokens score highest; a box whose best phrase scores at most ``text_threshold`` is
dropped.

Tracking is ByteTrack from the ``trackers`` package (``ByteTrackTracker``, the successor of
supervision's ``sv.ByteTrack``, which supervision 0.30 removed), one tracker per label so a
track never changes label, frame-rate aware (``frame_rate`` = the sampling rate; a lost track
survives ``LOST_SECONDS``). That tracker reports a new object only from its second sighting on;
the detection a track was spawned from is recovered (it is the tracklet's initial box) and
kept as the track's first sighting, and objects seen on one sampled frame only become tracks
of one frame when ``min_frames`` is 1 (so a one-frame video still has tracks). Track ids are
renumbered 1..N by first sighting.

Tracks are object memory: ``Store.put_tracks(video, model, settings, tracks)`` with every
sampled box; a repeated question with the same settings reads them back and runs no model.
Evidence: one row per track: its seen interval (half a sampling period either side), mean
score, the box and frame of its best (highest-scoring) sighting, the track id, and data: label,
count (tracks with that label), best score, sampled frames seen, and where the box centre
was first and last (x, y as fractions of the frame).
"""

from __future__ import annotations

import importlib.metadata
import math
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field, field_validator

from vidagent.core.errors import VidagentError
from vidagent.core.evidence import Evidence
from vidagent.core.spans import checked_span
from vidagent.media.video import Video, target_times
from vidagent.models.hub import LoadedModel
from vidagent.tools.base import ToolContext, ToolSpec

TOOL_NAME = "detect_track"
MAX_FRAMES = 600  # frames read per call at most (the sampling rate is lowered to fit)
BATCH_SIZE = 8  # frames per detector call (the role's `batch_size` option overrides it)
LOST_SECONDS = 2.0  # how long a track may go unseen and still continue
MIN_IOU = 0.1  # ByteTrack's association threshold
SETTINGS_VERSION = 1  # bump when stored tracks would change for the same inputs

Progress = Callable[[int, int], None]


class EmptyPrompt(VidagentError, ValueError):
    """The detection prompt names no object."""


def normalise_prompt(prompt: str) -> list[str]:
    """The labels of a prompt: lower-case, whitespace collapsed, split at . , ; ? and new lines, no repeats."""
    labels: list[str] = []
    for part in re.split(r"[.,;?\n]", prompt.lower()):
        label = " ".join(part.split())
        if label and label not in labels:
            labels.append(label)
    if not labels:
        raise EmptyPrompt(
            f"the detection prompt {prompt!r} names no object; give labels ending with '.', e.g. 'person. bicycle.'"
        )
    return labels


def prompt_text(labels: Sequence[str]) -> str:
    """GroundingDINO's text input: each label followed by '.', e.g. 'person. bicycle.'."""
    return " ".join(f"{label}." for label in labels)


class DetectInput(BaseModel):
    prompt: str = Field(
        min_length=1,
        max_length=500,
        description="The objects to find, each ending with '.', e.g. 'person. bicycle.'.",
        json_schema_extra={"words": "objects"},
    )
    span: tuple[float, float] | None = Field(default=None, description="Only inside [start, end] seconds.")
    fps: float = Field(default=2.0, gt=0, le=10, description="Frames examined per second.")
    box_threshold: float = Field(
        default=0.35,
        ge=0,
        le=1,
        description="Drop boxes scoring at most this.",
        json_schema_extra={"planner": False},
    )
    text_threshold: float = Field(
        default=0.25,
        ge=0,
        le=1,
        json_schema_extra={"planner": False},
        description="Drop boxes whose best label scores at most this.",
    )
    min_frames: int = Field(
        default=1,
        ge=1,
        le=20,
        description="Drop tracks seen on fewer sampled frames.",
        json_schema_extra={"planner": False},
    )

    @field_validator("prompt")
    @classmethod
    def _normalised(cls, value: str) -> str:
        return prompt_text(normalise_prompt(value))


@dataclass(frozen=True)
class FrameDetections:
    """The detections on one sampled frame (boxes in the video's pixels)."""

    t: float
    frame_index: int
    boxes: np.ndarray  # float32 (N, 4) x1, y1, x2, y2
    scores: np.ndarray  # float32 (N,)
    label_ids: np.ndarray  # int64 (N,)


# --- the detector ------------------------------------------------------------------------------
def text_budget(loaded: LoadedModel) -> int:
    """Tokens the detector's text side takes (special tokens included)."""
    config = loaded.model.config
    limits = [int(config.max_text_len), int(getattr(config.text_config, "max_position_embeddings", 1 << 30))]
    tokenizer_limit = getattr(loaded.processor.tokenizer, "model_max_length", None)
    if isinstance(tokenizer_limit, int) and tokenizer_limit < 1 << 30:
        limits.append(tokenizer_limit)
    return min(limits)


def fit_labels(labels: Sequence[str], tokenizer: Any, max_tokens: int) -> list[str]:
    """The leading labels whose prompt fits ``max_tokens``; warns naming whatever was dropped."""

    def length(candidate: Sequence[str]) -> int:
        return len(tokenizer(prompt_text(candidate), verbose=False)["input_ids"])

    kept: list[str] = []
    for label in labels:
        if length([*kept, label]) <= max_tokens:
            kept.append(label)
            continue
        if not kept:  # the first label alone is too long: keep its leading words
            words = label.split()
            while words and length([" ".join(words)]) > max_tokens:
                words.pop()
            if words:
                kept.append(" ".join(words))
        break
    if not kept:
        raise EmptyPrompt(f"no label of the prompt fits the detector's {max_tokens} text tokens")
    if kept != list(labels):
        dropped = [label for label in labels if label not in kept]
        if kept[-1] not in labels:  # a shortened first label
            dropped.insert(0, labels[0][len(kept[-1]) :].strip())
        warnings.warn(
            f"{TOOL_NAME}: the prompt is longer than the detector's text encoder takes ({max_tokens} tokens); "
            f"kept {prompt_text(kept)!r}, dropped: {', '.join(repr(d) for d in dropped)}",
            UserWarning,
            stacklevel=3,
        )
    return kept


def phrase_spans(input_ids: Sequence[int], tokenizer: Any) -> list[list[int]]:
    """Token positions of each phrase: the runs between [CLS], [SEP], padding and '.' / '?' tokens."""
    separators = {
        tokenizer.cls_token_id,
        tokenizer.sep_token_id,
        tokenizer.pad_token_id,
        *tokenizer.convert_tokens_to_ids([".", "?"]),
    }
    spans: list[list[int]] = []
    current: list[int] = []
    for position, token in enumerate(input_ids):
        if int(token) in separators:
            if current:
                spans.append(current)
            current = []
        else:
            current.append(position)
    if current:
        spans.append(current)
    return spans


def label_scores(probs: np.ndarray, spans: Sequence[Sequence[int]]) -> np.ndarray:
    """(N, L) phrase scores: for each box, the highest token probability inside each phrase."""
    if not spans:
        return np.zeros((len(probs), 0), np.float32)
    return np.stack([probs[:, list(span)].max(axis=1) for span in spans], axis=1)


MIN_DECODE_SIDE = 32  # pixels: the shortest side frames are decoded at (the processor resizes them anyway)


def decode_short_side(video: Video, image_processor: Any) -> int | None:
    """The short side to decode frames at: what the processor resizes to, never above the video's size."""
    size = getattr(image_processor, "size", None) or {}
    get = size.get if isinstance(size, dict) else lambda key, default=None: getattr(size, key, default)
    short, long = get("shortest_edge", None), get("longest_edge", None)
    if not short:
        return None
    side_short, side_long = min(video.width, video.height), max(video.width, video.height)
    if long:
        short = min(short, math.floor(long * side_short / side_long))
    # a 2000x100 or 16x2000 video: never decode a side down to a few pixels, where an image 3 or 4
    # pixels high reads as channels first to the processor (and 0 is no size at all)
    short = max(int(short), MIN_DECODE_SIDE)
    return short if short < side_short else None


def detect_frames(
    loaded: LoadedModel,
    frames: np.ndarray,
    labels: Sequence[str],
    video_size: tuple[int, int],
    box_threshold: float,
    text_threshold: float,
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """GroundingDINO on a batch of RGB frames: per frame (boxes in video pixels, scores, label ids)."""
    import torch

    processor, model = loaded.processor, loaded.model
    text = prompt_text(labels)
    inputs = processor(images=list(frames), text=[text] * len(frames), return_tensors="pt").to(loaded.device)
    inputs["pixel_values"] = inputs["pixel_values"].to(loaded.dtype)
    with torch.inference_mode():
        outputs = model(**inputs)
    outputs.logits = outputs.logits.float()
    outputs.pred_boxes = outputs.pred_boxes.float()
    width, height = video_size
    results = processor.post_process_grounded_object_detection(
        outputs,
        inputs["input_ids"],
        threshold=box_threshold,
        text_threshold=text_threshold,
        target_sizes=[(height, width)] * len(frames),
    )
    spans = phrase_spans(inputs["input_ids"][0].tolist(), processor.tokenizer)
    if len(spans) != len(labels):  # cannot tell the phrases apart: every box is the first label
        spans = [[p for span in spans for p in span]] if spans else []
    probs = torch.sigmoid(outputs.logits).cpu().numpy()
    found = []
    for i, result in enumerate(results):
        keep = probs[i].max(axis=1) > box_threshold  # the boxes post-processing kept, in its order
        per_label = label_scores(probs[i][keep], spans[: len(labels)])
        label_ids = per_label.argmax(axis=1) if per_label.shape[1] else np.zeros(int(keep.sum()), np.int64)
        best = per_label.max(axis=1) if per_label.shape[1] else np.zeros(int(keep.sum()), np.float32)
        named = best > text_threshold
        boxes = result["boxes"].float().cpu().numpy().reshape(-1, 4)
        scores = result["scores"].float().cpu().numpy().reshape(-1)
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
        found.append(
            (
                boxes[named].astype(np.float32),
                scores[named].astype(np.float32),
                label_ids[named].astype(np.int64),
            )
        )
    return found


# --- tracking ----------------------------------------------------------------------------------
def _byte_tracker(fps: float, threshold: float) -> Any:
    try:
        from trackers import ByteTrackTracker
    except ImportError as error:  # supervision 0.30 moved ByteTrack into `trackers`
        raise VidagentError(
            "detect_track needs the trackers package (ByteTrack): pip install trackers"
        ) from error
    return ByteTrackTracker(
        lost_track_buffer=round(LOST_SECONDS * 30),  # counted in 30 fps frames, scaled by frame_rate
        frame_rate=fps,
        track_activation_threshold=threshold,
        high_conf_det_threshold=threshold,
        minimum_consecutive_frames=1,
        minimum_iou_threshold=MIN_IOU,
    )


class _LabelTracks:
    """ByteTrack over the detections of one label, keeping each track's spawning detection."""

    def __init__(self, fps: float, threshold: float) -> None:
        self.tracker = _byte_tracker(fps, threshold)
        self.spawned: dict[int, tuple[Any, tuple[int, int]]] = {}  # id(tracklet) -> (tracklet, (frame, det))
        self.sightings: dict[int, list[tuple[int, int]]] = {}  # tracker id -> [(frame position, detection)]

    def update(self, position: int, boxes: np.ndarray, scores: np.ndarray, rows: np.ndarray) -> None:
        import supervision as sv

        detections = sv.Detections(
            xyxy=boxes.reshape(-1, 4).astype(np.float32),
            confidence=scores.astype(np.float32),
            data={"row": rows.astype(np.int64)},
        )
        before = {id(t) for t in self.tracker.tracks}
        out = self.tracker.update(detections)
        untracked = [i for i in range(len(out)) if out.tracker_id[i] < 0]
        for tracklet in self.tracker.tracks:
            if id(tracklet) in before or id(tracklet) in self.spawned or not untracked:
                continue
            origin = tracklet.get_state_bbox()
            nearest = min(untracked, key=lambda i: float(np.abs(out.xyxy[i] - origin).sum()))
            self.spawned[id(tracklet)] = (tracklet, (position, int(out.data["row"][nearest])))
            untracked.remove(nearest)
        for i in range(len(out)):
            tracker_id = int(out.tracker_id[i])
            if tracker_id < 0:
                continue
            if tracker_id not in self.sightings:
                self.sightings[tracker_id] = [self._origin(tracker_id)] if self._origin(tracker_id) else []
            self.sightings[tracker_id].append((position, int(out.data["row"][i])))

    def _origin(self, tracker_id: int) -> tuple[int, int] | None:
        for tracklet, origin in self.spawned.values():
            if tracklet.tracker_id == tracker_id:
                return origin
        return None

    def tracks(self) -> list[list[tuple[int, int]]]:
        """Sightings of every track, including objects seen on one sampled frame only."""
        found = [s for s in self.sightings.values() if s]
        found += [[origin] for tracklet, origin in self.spawned.values() if tracklet.tracker_id < 0]
        return found


def build_tracks(
    frames: Sequence[FrameDetections],
    labels: Sequence[str],
    fps: float,
    box_threshold: float,
    min_frames: int = 1,
) -> list[dict[str, Any]]:
    """Per-label ByteTrack over per-frame detections -> track records (ids 1..N by first sighting)."""
    found = []
    for label_id, label in enumerate(labels):
        state = _LabelTracks(fps, box_threshold)
        for position, frame in enumerate(frames):
            rows = np.flatnonzero(frame.label_ids == label_id)
            state.update(position, frame.boxes[rows], frame.scores[rows], rows)
        for sightings in state.tracks():
            sightings = sorted(set(sightings))
            if len(sightings) >= min_frames:
                found.append((label_id, label, sightings))
    records = []
    for label_id, label, sightings in found:
        times = [float(frames[p].t) for p, _ in sightings]
        scores = [float(frames[p].scores[r]) for p, r in sightings]
        best = int(np.argmax(scores))
        records.append(
            {
                "label": label,
                "label_id": label_id,
                "first_seen": round(times[0], 3),
                "last_seen": round(times[-1], 3),
                "t": [round(t, 3) for t in times],
                "frame_index": [int(frames[p].frame_index) for p, _ in sightings],
                "box": [[round(float(v), 1) for v in frames[p].boxes[r]] for p, r in sightings],
                "score": [round(s, 4) for s in scores],
                "best": best,
                "mean_score": round(float(np.mean(scores)), 4),
            }
        )
    records.sort(key=lambda r: (r["first_seen"], r["label_id"], r["box"][0][0], r["box"][0][1]))
    for number, record in enumerate(records, start=1):
        record["track_id"] = number
    return records


# --- the tool ----------------------------------------------------------------------------------
def settings_of(
    args: DetectInput, labels: Sequence[str], span: tuple[float, float], fps: float
) -> dict[str, Any]:
    """What shapes the stored tracks besides the video and the model."""
    return {
        "version": SETTINGS_VERSION,
        "prompt": prompt_text(labels),
        "span": [round(span[0], 3), round(span[1], 3)],
        "fps": round(fps, 6),
        "box_threshold": args.box_threshold,
        "text_threshold": args.text_threshold,
        "min_frames": args.min_frames,
        "tracker": f"bytetrack/lost={LOST_SECONDS}/iou={MIN_IOU}",
    }


def run_detector(
    loaded: LoadedModel,
    video: Video,
    labels: Sequence[str],
    span: tuple[float, float],
    fps: float,
    args: DetectInput,
    progress: Progress | None = None,
) -> list[FrameDetections]:
    """Sample, batch and detect: the detections of every sampled frame, in time order."""
    batch = int(loaded.spec.options.get("batch_size", BATCH_SIZE))
    total = len(target_times(span, fps=fps))
    short_side = decode_short_side(video, loaded.processor.image_processor)
    frames: list[FrameDetections] = []
    for chunk in video.iter_chunks(fps=fps, span=span, short_side=short_side, chunk_size=batch):
        found = detect_frames(
            loaded, chunk.frames, labels, (video.width, video.height), args.box_threshold, args.text_threshold
        )
        for (boxes, scores, label_ids), t, index in zip(found, chunk.timestamps, chunk.indices, strict=True):
            frames.append(FrameDetections(float(t), int(index), boxes, scores, label_ids))
        if progress is not None:
            progress(len(frames), total)
    return frames


def tracks_for(
    ctx: ToolContext, video: Path, args: DetectInput, progress: Progress | None = None
) -> tuple[str, list[dict[str, Any]], dict[str, Any]]:
    """(video id, tracks, settings) for these inputs, from object memory or by running the detector."""
    loaded = ctx.hub.get("detector")
    video_id = ctx.store.content_hash(video)
    with Video.open(video) as opened:
        ctx.store.add_video(video_id, video, opened.meta.to_dict())
        span = checked_span(video, args.span, opened.duration)
        fps = min(args.fps, MAX_FRAMES / max(span[1] - span[0], 1e-9))
        labels = fit_labels(normalise_prompt(args.prompt), loaded.processor.tokenizer, text_budget(loaded))
        settings = settings_of(args, labels, span, fps)
        key = ctx.store.settings_key(settings)
        tracks = ctx.store.tracks(video_id, loaded.model_key, key)
        if tracks is None:
            frames = run_detector(loaded, opened, labels, span, fps, args, progress)
            tracks = build_tracks(frames, labels, fps, args.box_threshold, args.min_frames)
            ctx.store.put_tracks(video_id, loaded.model_key, key, tracks)
    settings.update(width=opened.width, height=opened.height, labels=labels, span=span, step=1.0 / fps)
    return video_id, tracks, settings


def to_evidence(tracks: Sequence[dict[str, Any]], settings: dict[str, Any], video_id: str) -> Evidence:
    """One row per track (see the module doc)."""
    width, height = settings["width"], settings["height"]
    step, (lo, hi) = settings["step"], settings["span"]
    counts: dict[str, int] = {}
    for track in tracks:
        counts[track["label"]] = counts.get(track["label"], 0) + 1

    def centre(box: Sequence[float]) -> list[float]:
        return [round((box[0] + box[2]) / 2 / width, 3), round((box[1] + box[3]) / 2 / height, 3)]

    rows = []
    for track in tracks:
        best = track["best"]
        start = max(lo, track["first_seen"] - step / 2)
        rows.append(
            {
                "tool": TOOL_NAME,
                "start": start,
                "end": max(start, min(hi, track["last_seen"] + step / 2)),
                "score": track["mean_score"],
                "frame_index": track["frame_index"][best],
                "box": track["box"][best],
                "track_id": track["track_id"],
                "video": video_id,
                "data": {
                    "label": track["label"],
                    "count": counts[track["label"]],
                    "best": track["score"][best],
                    "frames": len(track["t"]),
                    "from": centre(track["box"][0]),
                    "to": centre(track["box"][-1]),
                },
            }
        )
    return Evidence.from_rows(rows)


def detect_track(
    ctx: ToolContext, video: Path, args: DetectInput, progress: Progress | None = None
) -> Evidence:
    video_id, tracks, settings = tracks_for(ctx, video, args, progress)
    return to_evidence(tracks, settings, video_id)


# --- rendering -----------------------------------------------------------------------------------
def render(
    video: Path,
    tracks: Sequence[dict[str, Any]],
    out: Path,
    *,
    step: float,
    span: tuple[float, float] | None = None,
    progress: Progress | None = None,
) -> Path:
    """Write ``out`` (H.264 mp4 at the video's frame rate): every frame of ``span`` with the tracks' boxes.

    A sampled box is shown on the frames within half a sampling period (``step``) of it; labels
    read ``#id label``; supervision's TraceAnnotator draws each track's path so far.
    """
    from fractions import Fraction

    import av
    import supervision as sv

    boxes, labels = sv.BoxAnnotator(thickness=2), sv.LabelAnnotator(text_scale=0.4, text_padding=3)
    trace = sv.TraceAnnotator(trace_length=60)
    times = np.array(sorted({t for track in tracks for t in track["t"]}), dtype=np.float64)
    by_time: dict[float, list[tuple[dict[str, Any], int]]] = {}
    for track in tracks:
        for k, t in enumerate(track["t"]):
            by_time.setdefault(t, []).append((track, k))
    with Video.open(video) as opened:
        lo, hi = checked_span(video, span, opened.duration)
        rate = opened.fps or 25.0
        total = len(target_times((lo, hi), fps=rate))
        with av.open(str(out), "w") as container:
            stream = container.add_stream("libx264", rate=Fraction(rate).limit_denominator(1000))
            stream.width, stream.height = opened.width - opened.width % 2, opened.height - opened.height % 2
            stream.pix_fmt = "yuv420p"
            done = 0
            for chunk in opened.iter_chunks(fps=rate, span=(lo, hi), chunk_size=16):
                for image, t in zip(chunk.frames, chunk.timestamps, strict=True):
                    shown: list[tuple[dict[str, Any], int]] = []
                    if len(times):
                        nearest = float(times[np.argmin(np.abs(times - t))])
                        if abs(nearest - t) <= step / 2 + 1e-6:
                            shown = by_time[nearest]
                    canvas = np.ascontiguousarray(image[:, :, ::-1])  # annotators draw in BGR
                    if shown:
                        detections = sv.Detections(
                            xyxy=np.array([track["box"][k] for track, k in shown], dtype=np.float32),
                            confidence=np.array([track["score"][k] for track, k in shown], dtype=np.float32),
                            class_id=np.array([track["label_id"] for track, _ in shown], dtype=int),
                            tracker_id=np.array([track["track_id"] for track, _ in shown], dtype=int),
                        )
                        canvas = boxes.annotate(canvas, detections)
                        canvas = trace.annotate(canvas, detections)
                        canvas = labels.annotate(
                            canvas,
                            detections,
                            labels=[f"#{track['track_id']} {track['label']}" for track, _ in shown],
                        )
                    frame = av.VideoFrame.from_ndarray(
                        np.ascontiguousarray(canvas[: stream.height, : stream.width, ::-1]), format="rgb24"
                    )
                    container.mux(stream.encode(frame))
                    done += 1
                if progress is not None:
                    progress(done, total)
            container.mux(stream.encode())
    return out


def trackers_version() -> str:
    try:
        return importlib.metadata.version("trackers")
    except importlib.metadata.PackageNotFoundError:
        return "missing"


TOOL = ToolSpec(
    name=TOOL_NAME,
    description="Find, track and count named objects ('person. bicycle.'): one row per tracked object with "
    "when it is seen, where (box) and how many of each label.",
    input_model=DetectInput,
    run=detect_track,
    roles=("detector",),
)
