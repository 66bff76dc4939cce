"""A synthetic temporal grounding set: coloured shapes on a background, during known spans.

Each video shows a textured background (its own colour) on which a few coloured shapes appear,
one at a time, each during a known span aligned to the 2 s clip grid (as QVHighlights' windows
are), drifting slowly. Each distinct shape of a video gets a query naming it ("a red circle");
sometimes the same shape appears twice, so that query has two windows. The set is written in
the QVHighlights JSONL format (``qid, query, vid, duration, relevant_windows,
relevant_clip_ids, saliency_scores``; every relevant clip scores 4 for all three annotators).

The query vocabulary is small and fixed (4 colours x 3 shapes): held-out data are *unseen
videos* with the *same* queries. That is what a head on a random-weight CLIP can learn: the
text features of a query are arbitrary but fixed per string, while the frames' patch tokens
still carry colour and shape.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 230),
    "yellow": (235, 205, 40),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
QUERIES: tuple[str, ...] = tuple(f"a {c} {s}" for c in COLOURS for s in SHAPES)
MARKER = "synthetic.json"


@dataclass(frozen=True)
class SynthSpec:
    """How many videos of what length; the same spec and seed always give the same set."""

    train_videos: int = 64
    val_videos: int = 24
    seconds: float = 40.0
    fps: float = 4.0
    size: int = 64  # square frames (the tiny CLIP centre-crops to a square)
    events: int = 3  # distinct shapes per video
    repeat_prob: float = 0.25  # chance that a video's first shape shows up a second time
    min_clips: int = 2
    max_clips: int = 6
    clip_seconds: float = 2.0
    seed: int = 0


@dataclass(frozen=True)
class Event:
    colour: str
    shape: str
    start: float  # seconds
    end: float
    x: float  # centre, as a fraction of the frame
    y: float
    radius: float  # fraction of the frame
    vx: float  # drift per second, fraction of the frame
    vy: float


@dataclass(frozen=True)
class SynthSet:
    train: Path
    val: Path
    videos: Path
    spec: SynthSpec


def plan_video(rng: np.random.Generator, spec: SynthSpec) -> list[Event]:
    """Non-overlapping events (distinct shape/colour pairs, one maybe twice) on the clip grid."""
    clips = round(spec.seconds / spec.clip_seconds)
    pairs = rng.choice(len(QUERIES), size=spec.events, replace=False)
    kinds = [QUERIES[i].split()[1:] for i in pairs]
    if rng.random() < spec.repeat_prob:
        kinds.append(kinds[0])
    for attempt in range(1000):
        if attempt == 500 and len(kinds) > spec.events:
            kinds.pop()  # the repeat does not fit: leave it out
        lengths = rng.integers(spec.min_clips, spec.max_clips + 1, size=len(kinds))
        free = clips - int(lengths.sum()) - (len(kinds) - 1)  # inner gaps need one clip each
        if free < 0:
            continue
        spaces = rng.multinomial(free, np.full(len(kinds) + 1, 1 / (len(kinds) + 1)))
        spaces[1:-1] += 1
        order = rng.permutation(len(kinds))
        events, at = [], int(spaces[0])
        for slot, kind_index in enumerate(order):
            colour, shape = kinds[kind_index]
            start, end = at, at + int(lengths[slot])
            events.append(
                Event(
                    colour,
                    shape,
                    start * spec.clip_seconds,
                    end * spec.clip_seconds,
                    x=float(rng.uniform(0.35, 0.65)),
                    y=float(rng.uniform(0.35, 0.65)),
                    radius=float(rng.uniform(0.2, 0.3)),
                    vx=float(rng.uniform(-0.01, 0.01)),
                    vy=float(rng.uniform(-0.01, 0.01)),
                )
            )
            at = end + int(spaces[slot + 1])
        return events
    raise ValueError("cannot fit the events into the video; make it longer or the events shorter")


def draw(canvas: np.ndarray, event: Event, t: float) -> None:
    """Draw ``event``'s shape at time ``t`` onto ``canvas`` (H, W, 3) in place."""
    size = canvas.shape[0]
    dt = t - event.start
    cx = np.clip(event.x + event.vx * dt, 0.25, 0.75) * size
    cy = np.clip(event.y + event.vy * dt, 0.25, 0.75) * size
    r = event.radius * size
    ys, xs = np.mgrid[0:size, 0:size] + 0.5
    if event.shape == "circle":
        inside = (xs - cx) ** 2 + (ys - cy) ** 2 <= r**2
    elif event.shape == "square":
        half = r * 0.85
        inside = (np.abs(xs - cx) <= half) & (np.abs(ys - cy) <= half)
    else:  # triangle, apex up
        top, bottom = cy - r, cy + r * 0.8
        frac = (ys - top) / (bottom - top)
        inside = (frac >= 0) & (frac <= 1) & (np.abs(xs - cx) <= frac * r)
    canvas[inside] = COLOURS[event.colour]


def write_video(
    path: Path,
    events: list[Event],
    spec: SynthSpec,
    rng: np.random.Generator,
    options: dict[str, str] | None = None,
) -> None:
    """Render the events over a textured background (H.264, ``spec.fps``; ``options`` for
    libx264, e.g. a fixed GOP, replace the default ``preset=ultrafast, crf=18``)."""
    size = spec.size
    base = rng.integers(60, 150, size=3)
    texture = rng.integers(-14, 15, size=(size, size, 1))
    frames = round(spec.seconds * spec.fps)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(spec.fps).limit_denominator(1000))
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.codec_context.options = options or {"preset": "ultrafast", "crf": "18"}
        for i in range(frames):
            t = i / spec.fps
            jitter = rng.integers(-4, 5, size=(size, size, 1))
            canvas = np.clip(base + texture + jitter, 0, 255).astype(np.uint8)
            for event in events:
                if event.start <= t < event.end:
                    draw(canvas, event, t)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(canvas, format="rgb24")))
        out.mux(stream.encode())


def records(vid: str, events: list[Event], spec: SynthSpec, first_qid: int) -> list[dict]:
    """QVHighlights-format rows: one query per distinct shape of the video."""
    rows = []
    kinds: dict[tuple[str, str], list[Event]] = {}
    for event in sorted(events, key=lambda e: e.start):
        kinds.setdefault((event.colour, event.shape), []).append(event)
    for n, ((colour, shape), shown) in enumerate(kinds.items()):
        windows = [[e.start, e.end] for e in shown]
        clip_ids = [
            c
            for e in shown
            for c in range(round(e.start / spec.clip_seconds), round(e.end / spec.clip_seconds))
        ]
        rows.append(
            {
                "qid": first_qid + n,
                "query": f"a {colour} {shape}",
                "vid": vid,
                "duration": spec.seconds,
                "relevant_windows": windows,
                "relevant_clip_ids": clip_ids,
                "saliency_scores": [[4, 4, 4]] * len(clip_ids),
            }
        )
    return rows


def make_synthetic_set(out_dir: str | Path, spec: SynthSpec | None = None) -> SynthSet:
    """Write (or reuse, when the same spec wrote it) videos/, train.jsonl and val.jsonl."""
    spec = spec or SynthSpec()
    out_dir = Path(out_dir)
    videos = out_dir / "videos"
    result = SynthSet(out_dir / "train.jsonl", out_dir / "val.jsonl", videos, spec)
    marker = out_dir / MARKER
    if marker.is_file() and json.loads(marker.read_text()) == asdict(spec):
        return result
    videos.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(spec.seed)
    qid = 0
    for split, count, path in (
        ("train", spec.train_videos, result.train),
        ("val", spec.val_videos, result.val),
    ):
        rows = []
        for i in range(count):
            vid = f"synth_{split}_{i:04d}"
            events = plan_video(rng, spec)
            write_video(videos / f"{vid}.mp4", events, spec, rng)
            made = records(vid, events, spec, qid)
            rows.extend(made)
            qid += len(made)
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    marker.write_text(json.dumps(asdict(spec), indent=2) + "\n")
    return result


__all__ = [
    "COLOURS",
    "QUERIES",
    "SHAPES",
    "Event",
    "SynthSet",
    "SynthSpec",
    "make_synthetic_set",
    "plan_video",
    "records",
    "write_video",
]
