"""read_text: on-screen text (OCR) with RapidOCR (PP-OCR detection + recognition, ONNX Runtime).

Frames are sampled at ``fps`` (lowered so that at most ``MAX_FRAMES`` frames are read) at a short
side of at most ``SHORT_SIDE`` pixels, and each is read by RapidOCR (``rapidocr-onnxruntime``
ships its PP-OCR weights; nothing is downloaded). Lines below ``min_confidence`` are dropped.

PP-OCR's recogniser (trained mostly on Chinese, which has no spaces) often runs words together,
above all in capitals: "PLATFORM 9 EXIT" comes back as "PLATFORM9EXIT". So the spaces are put
back from the picture (:func:`spaced`): the line is cut out of the frame and split into ink and
background (Otsu); the runs of empty columns between letters are its gaps, measured at the slant
(up to ``max(SLANTS)``, for italics) that empties the most columns. A gap at least ``WORD_GAP``
text heights wide and ``SPACE_OVER_MEDIAN`` heights wider than the line's median gap (so
letter-spaced text is not split) is a space, put between the two characters the recogniser
placed on either side of it (``return_word_box``: where its CTC decoder emitted each character).
A line whose ink is not clean enough to trust (Otsu separability below ``MIN_SEPARATION``, or a
gap beside fewer than ``MIN_GAPPED`` of its characters: text over a busy picture) keeps the
recogniser's spacing. No space goes before closing punctuation, after opening brackets, inside
numbers such as 10:45 or 3.5, or next to wide (CJK) characters; the recogniser's own spaces stay.

The same text seen on consecutive sampled frames is one finding: a line joins an open run when
its normalised text (case-folded, whitespace collapsed) is at least ``SIMILAR`` alike
(difflib ratio; OCR misreads a letter now and then) and the run was seen on one of the last
``1 + GAP`` sampled frames. A run becomes one Evidence row: the span from half a sampling
period before its first sighting to half a period after its last, its best reading as ``text``
(data, never instructions), that reading's confidence as ``score``, its box (x1, y1, x2, y2 in
the video's pixels) and frame, ``data.seen``, the number of sampled frames it was read on, and
``data.colour``, its ink's colour name (the median colour of the ink pixels the same Otsu split
finds, named by hue, or black/grey/white when unsaturated; left out when ink and background do
not part), so "the word written in red" can be told from the one in white.

Results are stored as text rows (tool ``read_text``; searchable with ``Store.search_texts``)
per (video, OCR version, settings), so a video is read once per settings.
"""

from __future__ import annotations

import difflib
import importlib.metadata
import re
import threading
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from vidagent.core.errors import VidagentError
from vidagent.core.evidence import Evidence
from vidagent.core.spans import checked_span
from vidagent.media.video import Video
from vidagent.tools.base import ToolContext, ToolSpec

MAX_FRAMES = 300  # frames read per call at most (the sampling rate is lowered to fit)
SHORT_SIDE = 720  # frames are read at most this big (text stays legible, detection stays fast)
SIMILAR = 0.8  # difflib ratio above which two readings are the same text
GAP = 1  # sampled frames a run may miss (motion blur, a misread) and still go on
WORD_GAP = 0.3  # a gap between letters this many text heights wide (or wider) may be a space ...
SPACE_OVER_MEDIAN = 0.2  # ... when it is also this many text heights wider than the line's median gap
SLANTS = (0.0, 0.1, 0.2, 0.3)  # italic slants (dx / dy) tried when measuring gaps
MIN_SEPARATION = 0.7  # Otsu separability (between-class / total variance) below which ink is not trusted
MIN_GAPPED = 0.5  # share of neighbouring characters that must show a gap for a line's gaps to be trusted
SPACING = "ink-gaps-1"  # names the spacing rule in the stored rows' settings: change it with the rule or its constants
NO_SPACE_BEFORE = frozenset(".,:;!?%)]}")
NO_SPACE_AFTER = frozenset("([{")

_engine: Any = None
_engine_lock = threading.Lock()


class ReadTextInput(BaseModel):
    span: tuple[float, float] | None = Field(default=None, description="Only inside [start, end] seconds.")
    fps: float = Field(default=1.0, gt=0, le=5, description="Frames read per second.")
    min_confidence: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="Drop lines read with less confidence.",
        json_schema_extra={"planner": False},
    )


@dataclass(frozen=True)
class Line:
    """One text line read on one frame."""

    text: str
    confidence: float
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in the video's pixels
    t: float
    frame_index: int
    colour: str | None = None  # the ink's colour name ("white", "yellow", ...), when ink and background part


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
    """(text, confidence, 4x2 corner points) of each line on one RGB frame, words spaced (see the module doc)."""
    engine = ocr_engine()
    frame = np.ascontiguousarray(image[:, :, ::-1])  # RapidOCR expects OpenCV's BGR order
    lines = []
    with _engine_lock:  # RapidOCR keeps per-call state on the engine
        found, _ = engine(frame, return_word_box=True)
        for points, text, confidence, *positions in found or []:
            if float(confidence) < min_confidence:
                continue
            points = np.asarray(points, dtype=np.float32).reshape(4, 2)
            text = str(text)
            if len(positions) >= 2:  # per-character boxes and characters
                text = spaced(engine, frame, points, text, positions[0], positions[1])
            text = re.sub(r" {2,}", " ", text).strip()
            if text:
                lines.append((text, float(confidence), points))
    return lines


def spaced(
    engine: Any, frame: np.ndarray, points: np.ndarray, text: str, char_boxes: list[Any], chars: list[str]
) -> str:
    """``text`` with a space in each word gap of its line's ink that the recogniser read over.

    ``frame`` is the BGR frame, ``points`` the line's corners, ``char_boxes`` and ``chars``
    RapidOCR's per-character boxes (frame pixels) and characters (``return_word_box``).
    """
    import cv2  # installed with rapidocr-onnxruntime

    if len(chars) < 2 or len(chars) != len(char_boxes) or "".join(map(str, chars)) != text:
        return text
    crop, matrix = _line_crop(frame, points)
    height, width = crop.shape[:2]
    if width == 0 or height >= 1.5 * width:  # a vertical line: RapidOCR reads it turned a quarter
        return text
    ink = _ink(cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY))
    if ink is None or len(ink) < 4:  # no clear ink, or too small to measure a gap
        return text
    gaps = _gaps(ink)
    if not gaps:
        return text
    widths = [end - start for start, end in gaps]
    threshold = max(WORD_GAP * len(ink), float(np.median(widths)) + SPACE_OVER_MEDIAN * len(ink))
    corners = np.array(
        [np.mean(np.asarray(box, dtype=np.float32).reshape(-1, 2), axis=0) for box in char_boxes]
    )
    centres = cv2.perspectiveTransform(corners.astype(np.float32)[None], matrix)[0, :, 0]
    where = _space_positions(chars, centres, gaps, threshold)
    if where and _turned(engine, crop):  # RapidOCR placed the characters on the crop turned upside down
        where = _space_positions(
            chars, centres, [(width - end, width - start) for start, end in gaps], threshold
        )
    if not where:
        return text
    return "".join((" " if k in where else "") + char for k, char in enumerate(chars))


def _line_crop(frame: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The line cut out of the frame and straightened exactly as RapidOCR cuts it, and the transform used."""
    import cv2

    width = int(max(np.linalg.norm(points[0] - points[1]), np.linalg.norm(points[2] - points[3])))
    height = int(max(np.linalg.norm(points[0] - points[3]), np.linalg.norm(points[1] - points[2])))
    target = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float32)
    matrix = cv2.getPerspectiveTransform(points.astype(np.float32), target)
    crop = cv2.warpPerspective(
        frame, matrix, (width, height), borderMode=cv2.BORDER_REPLICATE, flags=cv2.INTER_CUBIC
    )
    return crop, matrix


def ink_colour(image: np.ndarray, points: np.ndarray) -> str | None:
    """The colour name of a line's ink on an RGB frame (the median of its ink pixels, named by
    :func:`colour_name`); None when ink and background are not clearly apart."""
    import cv2

    crop, _ = _line_crop(image, points)
    if crop.size == 0:
        return None
    mask = _ink_mask(cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY))
    if mask is None or mask.sum() < 4:
        return None
    return colour_name(np.median(crop[mask.astype(bool)], axis=0))


COLOUR_HUES = (
    (15, "red"),
    (40, "orange"),
    (70, "yellow"),
    (165, "green"),
    (200, "cyan"),
    (260, "blue"),
    (290, "purple"),
    (345, "pink"),
    (360, "red"),
)  # upper bound of each hue range, degrees


def colour_name(rgb: np.ndarray) -> str:
    """A plain colour name for an RGB triple: black, grey or white when unsaturated, else by hue."""
    r, g, b = (float(v) / 255.0 for v in rgb[:3])
    high, low = max(r, g, b), min(r, g, b)
    if high < 0.25:
        return "black"
    if (high - low) / high < 0.25:
        return "white" if high > 0.7 else "grey"
    if high == r:
        hue = (60 * (g - b) / (high - low)) % 360
    elif high == g:
        hue = 60 * (b - r) / (high - low) + 120
    else:
        hue = 60 * (r - g) / (high - low) + 240
    return next(name for bound, name in COLOUR_HUES if hue < bound)


def _ink(gray: np.ndarray) -> np.ndarray | None:
    """Ink mask of a grey line crop (rows the text covers only); None when ink and background are not clearly apart."""
    ink = _ink_mask(gray)
    if ink is None:
        return None
    rows = ink.sum(axis=1)
    covered = np.flatnonzero(rows > 0.1 * rows.max())
    return ink[covered[0] : covered[-1] + 1]


def _ink_mask(gray: np.ndarray) -> np.ndarray | None:
    """Ink mask of a grey line crop; None when ink and background are not clearly apart."""
    import cv2

    if gray.size == 0:
        return None
    threshold, bright = cv2.threshold(gray, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    values = gray.astype(np.float64)
    dark = values <= threshold
    share = float(dark.mean())
    if not 0 < share < 1:
        return None
    separation = share * (1 - share) * (values[dark].mean() - values[~dark].mean()) ** 2 / values.var()
    if separation < MIN_SEPARATION:
        return None
    border = np.concatenate([bright[0], bright[-1], bright[:, 0], bright[:, -1]])
    ink = bright != int(border.mean() > 0.5)  # the background is what the crop's border mostly is
    return ink if ink.any() else None


def _gaps(ink: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of each run of empty columns between the first and last inked one, at the emptiest slant."""
    import cv2

    height, width = ink.shape
    best: list[tuple[int, int]] = []
    best_empty = -1
    for slant in SLANTS:  # shear about the middle row: a character's centre column stays put
        shear = np.array([[1, slant, -slant * (height - 1) / 2], [0, 1, 0]], dtype=np.float32)
        inked = cv2.warpAffine(ink.astype(np.uint8), shear, (width, height), flags=cv2.INTER_NEAREST).any(
            axis=0
        )
        columns = np.flatnonzero(inked)
        if len(columns) == 0:
            continue
        first, last = columns[0], columns[-1]
        steps = np.diff(inked[first : last + 1].astype(np.int8))
        starts = np.flatnonzero(steps == -1) + first + 1
        ends = np.flatnonzero(steps == 1) + first + 1
        gaps = [(int(a), int(b)) for a, b in zip(starts, ends, strict=True)]
        empty = sum(b - a for a, b in gaps)
        if empty > best_empty:
            best, best_empty = gaps, empty
    return best


def _space_positions(
    chars: list[str], centres: np.ndarray, gaps: list[tuple[int, int]], threshold: float
) -> set[int]:
    """Indices of the characters to put a space before; empty when too few characters show a gap to trust."""
    widest: dict[int, int] = {}  # k: the widest gap between characters k - 1 and k
    for start, end in gaps:
        k = int(np.sum(centres < (start + end) / 2))
        if 0 < k < len(chars):
            widest[k] = max(widest.get(k, 0), end - start)
    neighbours = [k for k in range(1, len(chars)) if chars[k - 1] != " " and chars[k] != " "]
    if not neighbours or sum(k in widest for k in neighbours) < MIN_GAPPED * len(neighbours):
        return set()
    return {
        k
        for k in neighbours
        if widest.get(k, 0) >= threshold
        and _may_split(chars[k - 2] if k >= 2 else "", chars[k - 1], chars[k])
    }


def _may_split(earlier: str, before: str, after: str) -> bool:
    """Whether a space may go between ``before`` and ``after`` (``earlier`` precedes ``before``)."""
    if any(unicodedata.east_asian_width(c) in ("W", "F") for c in (before, after)):
        return False  # CJK text runs on without spaces
    if after in NO_SPACE_BEFORE or before in NO_SPACE_AFTER:
        return False
    return not (before in ".,:" and earlier.isdigit() and after.isdigit())  # 10:45, 3.5, 1,000


def _turned(engine: Any, crop: np.ndarray) -> bool:
    """Whether RapidOCR's angle classifier turns this line crop upside down before reading it."""
    classifier = getattr(engine, "text_cls", None)
    if classifier is None or not getattr(engine, "use_cls", False):
        return False
    _, results, _ = classifier([crop])
    label, score = results[0]
    return "180" in str(label) and float(score) > float(getattr(classifier, "cls_thresh", 0.9))


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


def read_video(
    video: Video, span: tuple[float, float], fps: float, min_confidence: float
) -> tuple[list[list[Line]], float]:
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
                box = (
                    float(points[:, 0].min() * scale_x),
                    float(points[:, 1].min() * scale_y),
                    float(points[:, 0].max() * scale_x),
                    float(points[:, 1].max() * scale_y),
                )
                lines.append(Line(text, confidence, box, float(t), int(index), ink_colour(image, points)))
            frames.append(lines)
    return frames, 1.0 / fps


def run_rows(runs: list[list[Line]], step: float, span: tuple[float, float]) -> list[dict[str, Any]]:
    """One stored text row per run, ordered by start, then top to bottom."""
    rows = []
    for lines in runs:
        best = max(lines, key=lambda line: line.confidence)
        start = max(span[0], lines[0].t - step / 2)
        end = min(span[1], lines[-1].t + step / 2)
        rows.append(
            {
                "start": start,
                "end": max(end, start),
                "text": best.text,
                "score": best.confidence,
                "data": {
                    "box": [round(v, 1) for v in best.box],
                    "frame_index": best.frame_index,
                    "best_t": round(best.t, 3),
                    "seen": len(lines),
                    **(
                        {"colour": colour}
                        if (colour := _most_common([line.colour for line in lines]))
                        else {}
                    ),
                },
            }
        )
    rows.sort(key=lambda r: (r["start"], r["data"]["box"][1], r["data"]["box"][0]))
    return rows


def _most_common(values: list[str | None]) -> str | None:
    named = [v for v in values if v]
    return max(set(named), key=named.count) if named else None


def to_evidence(rows: list[dict[str, Any]], video_id: str) -> Evidence:
    records = []
    for row in rows:
        data = dict(row.get("data", {}))
        box, frame_index = data.pop("box", None), data.pop("frame_index", -1)
        records.append(
            {
                "tool": "read_text",
                "start": row["start"],
                "end": row["end"],
                "score": row["score"],
                "text": row["text"],
                "video": video_id,
                "box": box,
                "frame_index": frame_index,
                "data": data,
            }
        )
    return Evidence.from_rows(records)


def read_text(ctx: ToolContext, video: Path, args: ReadTextInput) -> Evidence:
    video_id = ctx.store.content_hash(video)
    with Video.open(video) as opened:
        span = checked_span(video, args.span, opened.duration)
        settings = ctx.store.settings_key(
            {
                "span": [round(span[0], 3), round(span[1], 3)],
                "fps": args.fps,
                "min_confidence": args.min_confidence,
                "max_frames": MAX_FRAMES,
                "short_side": SHORT_SIDE,
                "similar": SIMILAR,
                "gap": GAP,
                "spacing": SPACING,
                "ink_colour": 1,
            }
        )
        with ctx.store.filling(video_id, "read_text", ocr_version(), settings):
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
