"""read_text: on-screen text (OCR) with RapidOCR (PP-OCR detection + recognition, ONNX Runtime).

Frames are sampled at ``fps`` (lowered so that at most ``MAX_FRAMES`` frames are read) at a short
side of at most ``SHORT_SIDE`` pixels, and each is read by RapidOCR (``rapidocr-onnxruntime``
ships its PP-OCR weights; nothing is downloaded). Lines below ``min_confidence`` are dropped.

The same text seen on consecutive sampled frames is one finding: a line joins an open run when
its normalised text (case-folded, whitespace collapsed) is at least ``SIMILAR`` alike
(difflib ratio; OCR misreads a letter now and then) and the run was seen on one of the last
``1 + GAP`` sampled frames. A run becomes one Evidence row: the span from half a sampling
period before its first sighting to half a period after its last, its best reading as ``text``
(data, never instructions), that reading's confidence as ``score``, its box (x1, y1, x2, y2 in
the video's pixels) and frame, and ``data.seen``, the number of sampled frames it was read on.

Results are stored as text rows (tool ``read_text``; searchable with ``Store.search_texts``)
per (video, OCR version, settings), so a video is read once per settings.
"""

from __future__ import annotations

import difflib
import importlib.metadata
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from vidagent.errors import SpanOutOfRange, VidagentError
from vidagent.evidence import Evidence
from vidagent.tooling import ToolContext, ToolSpec
from vidagent.video import Video

MAX_FRAMES = 300  # frames read per call at most (the sampling rate is lowered to fit)
SHORT_SIDE = 720  # frames are read at most this big (text stays legible, detection stays fast)
SIMILAR = 0.8  # difflib ratio above which two readings are the same text
GAP = 1  # sampled frames a run may miss (motion blur, a misread) and still go on

_engine: Any = None
_engine_lock = threading.Lock()


class ReadTextInput(BaseModel):
    span: tuple[float, float] | None = Field(default=None, description="Only inside [start, end] seconds.")
    fps: float = Field(default=1.0, gt=0, le=5, description="Frames read per second.")
    min_confidence: float = Field(default=0.5, ge=0, le=1, description="Drop lines read with less confidence.",
                                  json_schema_extra={"planner": False})


@dataclass(frozen=True)
class Line:
    """One text line read on one frame."""

    text: str
    confidence: float
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in the video's pixels
    t: float
    frame_index: int


@dataclass
class _Run:
    key: str
    lines: list[Line] = field(default_factory=list)
    last: int = 0  # position of the last sampled frame it was seen on

    @property
    def best(self) -> Line:
        return max(self.lines, key=lambda line: line.confidence)


def ocr_version() -> str:
    try:
        return "rapidocr-onnxruntime-" + importlib.metadata.version("rapidocr-onnxruntime")
    except importlib.metadata.PackageNotFoundError:
        return "rapidocr-onnxruntime"


def ocr_engine() -> Any:
    """The process-wide RapidOCR engine (its ONNX sessions load once, ~1 s)."""
    global _engine
    with _engine_lock:
        if _engine is None:
            try:
                from rapidocr_onnxruntime import RapidOCR
            except ImportError as error:
                raise VidagentError(
                    "read_text needs the rapidocr-onnxruntime package: pip install rapidocr-onnxruntime"
                ) from error
            # "max": never upscale the frame before detection (PP-OCR's default scales the short side to 736)
            _engine = RapidOCR(det_limit_type="max", det_limit_side_len=960)
        return _engine


def read_frame(image: np.ndarray, min_confidence: float = 0.0) -> list[tuple[str, float, np.ndarray]]:
    """(text, confidence, 4x2 corner points) of each line on one RGB frame."""
    engine = ocr_engine()
    with _engine_lock:  # RapidOCR keeps per-call state on the engine
        found, _ = engine(np.ascontiguousarray(image[:, :, ::-1]))  # it expects OpenCV's BGR order
    lines = []
    for points, text, confidence in found or []:
        text = str(text).strip()
        if text and float(confidence) >= min_confidence:
            lines.append((text, float(confidence), np.asarray(points, dtype=np.float32).reshape(4, 2)))
    return lines


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().casefold()


def similarity(a: str, b: str) -> float:
    return 1.0 if a == b else difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def merge_lines(frames: list[list[Line]], gap: int = GAP, similar: float = SIMILAR) -> list[list[Line]]:
    """Group the lines of consecutive sampled frames that read the same text (see the module doc)."""
    runs: list[_Run] = []
    open_runs: list[_Run] = []
    for position, lines in enumerate(frames):
        open_runs = [r for r in open_runs if position - r.last <= gap + 1]
        taken: set[int] = set()
        for line in sorted(lines, key=lambda item: -item.confidence):
            key = normalise(line.text)
            best, best_rank = None, (similar, -1.0)
            for i, run in enumerate(open_runs):
                if i in taken:
                    continue
                rank = (similarity(run.key, key), _iou(run.lines[-1].box, line.box))
                if rank[0] >= similar and rank >= best_rank:
                    best, best_rank = i, rank
            if best is None:
                run = _Run(key=key)
                runs.append(run)
                open_runs.append(run)
                best = len(open_runs) - 1
            run = open_runs[best]
            run.lines.append(line)
            run.last = position
            taken.add(best)
    return [run.lines for run in runs]


def read_video(video: Video, span: tuple[float, float], fps: float, min_confidence: float) -> tuple[list[list[Line]], float]:
    """OCR lines per sampled frame, and the sampling period used."""
    fps = min(fps, MAX_FRAMES / max(span[1] - span[0], 1e-9))
    short_side = min(SHORT_SIDE, video.width, video.height)
    scale_x = scale_y = 1.0
    frames: list[list[Line]] = []
    for chunk in video.iter_chunks(fps=fps, span=span, short_side=short_side, chunk_size=16):
        height, width = chunk.frames.shape[1:3]
        scale_x, scale_y = video.width / width, video.height / height
        for image, t, index in zip(chunk.frames, chunk.timestamps, chunk.indices, strict=True):
            lines = []
            for text, confidence, points in read_frame(image, min_confidence):
                box = (float(points[:, 0].min() * scale_x), float(points[:, 1].min() * scale_y),
                       float(points[:, 0].max() * scale_x), float(points[:, 1].max() * scale_y))
                lines.append(Line(text, confidence, box, float(t), int(index)))
            frames.append(lines)
    return frames, 1.0 / fps


def run_rows(runs: list[list[Line]], step: float, span: tuple[float, float]) -> list[dict[str, Any]]:
    """One stored text row per run, ordered by start, then top to bottom."""
    rows = []
    for lines in runs:
        best = max(lines, key=lambda line: line.confidence)
        start = max(span[0], lines[0].t - step / 2)
        end = min(span[1], lines[-1].t + step / 2)
        rows.append({
            "start": start, "end": max(end, start), "text": best.text, "score": best.confidence,
            "data": {"box": [round(v, 1) for v in best.box], "frame_index": best.frame_index,
                     "best_t": round(best.t, 3), "seen": len(lines)},
        })
    rows.sort(key=lambda r: (r["start"], r["data"]["box"][1], r["data"]["box"][0]))
    return rows


def to_evidence(rows: list[dict[str, Any]], video_id: str) -> Evidence:
    records = []
    for row in rows:
        data = dict(row.get("data", {}))
        box, frame_index = data.pop("box", None), data.pop("frame_index", -1)
        records.append({"tool": "read_text", "start": row["start"], "end": row["end"], "score": row["score"],
                        "text": row["text"], "video": video_id, "box": box, "frame_index": frame_index,
                        "data": data})
    return Evidence.from_rows(records)


def read_text(ctx: ToolContext, video: Path, args: ReadTextInput) -> Evidence:
    video_id = ctx.store.content_hash(video)
    with Video.open(video) as opened:
        duration = opened.duration
        if args.span is None:
            span = (0.0, duration)
        else:
            start, end = args.span
            if not (end > start and start < duration and end > 0):
                raise SpanOutOfRange(video, f"span {start:g}-{end:g}s is not inside the video (0-{duration:.2f}s)")
            span = (max(start, 0.0), min(end, duration))
        settings = ctx.store.settings_key({
            "span": [round(span[0], 3), round(span[1], 3)], "fps": args.fps, "min_confidence": args.min_confidence,
            "max_frames": MAX_FRAMES, "short_side": SHORT_SIDE, "similar": SIMILAR, "gap": GAP,
        })
        rows = ctx.store.texts(video_id, "read_text", ocr_version(), settings)
        if rows is None:
            frames, step = read_video(opened, span, args.fps, args.min_confidence)
            rows = run_rows(merge_lines(frames), step, span)
            ctx.store.put_texts(video_id, "read_text", ocr_version(), settings, rows)
    return to_evidence(rows, video_id)


TOOL = ToolSpec(
    name="read_text",
    description="Read the text shown on screen (signs, captions, scoreboards) and when it is visible.",
    input_model=ReadTextInput,
    run=read_text,
    roles=(),
)
