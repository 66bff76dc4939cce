"""A synthetic VideoQA benchmark whose answers are known by construction.

:func:`write_synthetic` renders small H.264 videos (160x120, 12 s, 8 fps) of flat coloured
squares and circles (and words) on a plain grey background, and writes ``synthetic.jsonl``
next to them in the generic JSONL format (``load_task("synthetic", out_dir)``): ``{id, video,
question, options, answer, category}``, ``answer`` the index of the right option. Every
question is multiple choice and its answer is true in the pixels (``tests/evals/
test_synthetic.py`` checks that by decoding the frames). Each kind (the ``category``) tests one
skill and has a tool that should answer it:

- ``counting``: "How many red squares appear?" (1-4). Red squares appear at random times in
  the first half and stay; a red circle and/or a blue square are there as distractors,
  so both colour and shape matter. Expected tool: ``detect_track`` (count the tracks), or
  ``look`` at a late frame.
- ``colour``: "What colour is the ball?". One ball (circle) rolls across the frame; a square of
  another colour, which is also among the options, stands still. Expected tool: ``look``.
- ``order``: "Which appears first, the red square or the blue circle?". Each is shown for 3 s,
  the second 2-4 s after the first; sometimes a green square comes even earlier (it is not
  asked about). Expected tools: ``ground`` or ``detect_track`` (first-seen times), ``look``
  with frame times.
- ``when``: "When does the green square appear?", options the four 3 s quarters of the video
  ("0-3 s" ... "9-12 s"). The green square is shown 1.5-2 s inside one quarter; a green circle
  and a red square are shown in other quarters. Expected tool: ``ground`` (temporal grounding)
  or ``detect_track``.
- ``spatial``: "Is the red square left or right of the blue circle?". Both stand still on the
  same row for the whole video; a yellow circle is a distractor. Options "to the left", "to the
  right", "directly above". Expected tools: ``detect_track`` (boxes) or ``look``.
- ``reading``: "What word is shown?". A five-letter upper-case word in large dark type (PIL's
  default font, scaled) is shown for 4-6 s. Expected tool: ``read_text`` (OCR).

Determinism: the same ``seed`` and ``per_kind`` give byte-identical JSONL and the same frames.
Video names carry a digest of what they show, so a second call reuses the files already there
(written atomically, so a present file is complete) and a different seed never reuses a stale
one. Generation takes about a second for ``per_kind=2``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

WIDTH, HEIGHT = 160, 120
FPS = 8
SECONDS = 12
FRAMES = FPS * SECONDS
BACKGROUND = (200, 200, 200)
TEXT_COLOUR = (20, 20, 20)
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 230),
    "yellow": (235, 205, 40),
    "purple": (150, 60, 200),
}
WORDS = (
    "APPLE",
    "RIVER",
    "CLOUD",
    "TIGER",
    "LEMON",
    "PIANO",
    "HOUSE",
    "CHAIR",
    "TRAIN",
    "BREAD",
    "PLANT",
    "STONE",
)
KINDS = ("counting", "colour", "order", "when", "spatial", "reading")
JSONL_NAME = "synthetic.jsonl"
RENDER_VERSION = 1  # bump when the drawing changes, so old videos are not reused

# 4 x 3 grid of 40 px cells: shapes are placed at cell centres, so they never touch.
CELL = 40
CELLS = [
    (CELL // 2 + CELL * c, CELL // 2 + CELL * r) for r in range(HEIGHT // CELL) for c in range(WIDTH // CELL)
]


@dataclass(frozen=True)
class Item:
    """A shape (``square``/``circle``) or a ``word``, visible during frames ``[start, end)``."""

    kind: str
    colour: str  # a COLOURS name; the word itself for kind "word"
    x: int  # centre, pixels (at ``start`` for moving shapes)
    y: int
    size: int  # square side / circle diameter, pixels
    start: int  # frame index
    end: int  # frame index, exclusive
    vx: int = 0  # pixels per second (moving shapes)

    def centre_at(self, frame: int) -> tuple[float, float]:
        return self.x + self.vx * (frame - self.start) / FPS, float(self.y)


@dataclass(frozen=True)
class Question:
    id: str
    category: str
    question: str
    options: list[str]
    answer: int
    items: tuple[Item, ...]

    def digest(self) -> str:
        key = repr((RENDER_VERSION, WIDTH, HEIGHT, FPS, SECONDS, self.items))
        return hashlib.sha1(key.encode()).hexdigest()[:10]


def _frames(seconds: float) -> int:
    return round(seconds * FPS)


def _cells(rng: np.random.Generator, n: int) -> list[tuple[int, int]]:
    return [CELLS[i] for i in rng.choice(len(CELLS), size=n, replace=False)]


def _jitter(rng: np.random.Generator, cell: tuple[int, int]) -> tuple[int, int]:
    """A cell centre moved by up to 4 px (even, to stay on the 2x2 chroma grid)."""
    dx, dy = (2 * rng.integers(-2, 3, size=2)).tolist()
    return cell[0] + dx, cell[1] + dy


def _counting(rng: np.random.Generator, k: int) -> Question:
    count = int(rng.integers(1, 5))
    distractors = [("circle", "red"), ("square", "blue")]
    keep = rng.permutation(2)[: int(rng.integers(1, 3))]
    chosen = [distractors[i] for i in sorted(keep.tolist())]
    cells = _cells(rng, count + len(chosen))
    starts = sorted(rng.integers(0, _frames(6), size=count).tolist())
    items = [
        Item("square", "red", *_jitter(rng, cell), 18, start, FRAMES)
        for cell, start in zip(cells[:count], starts, strict=True)
    ]
    for (shape, colour), cell in zip(chosen, cells[count:], strict=True):
        start = int(rng.integers(0, _frames(6)))
        items.append(Item(shape, colour, *_jitter(rng, cell), 20, start, FRAMES))
    return Question(
        f"counting-{k}",
        "counting",
        "How many red squares appear?",
        ["1", "2", "3", "4"],
        count - 1,
        tuple(items),
    )


def _colour(rng: np.random.Generator, k: int) -> Question:
    names = list(COLOURS)
    ball, square = (names[i] for i in rng.choice(len(names), size=2, replace=False))
    others = [n for n in names if n not in (ball, square)]
    options = [ball, square, *(others[i] for i in rng.choice(len(others), size=2, replace=False))]
    options = [options[i] for i in rng.permutation(len(options))]
    ball_row, square_row = (40, 90) if rng.random() < 0.5 else (90, 40)
    leftwards = bool(rng.random() < 0.5)
    x0, vx = (140, -10) if leftwards else (20, 10)  # 120 px in 12 s
    items = (
        Item("circle", ball, x0, ball_row, 22, 0, FRAMES, vx),
        Item("square", square, int(2 * rng.integers(20, 61)), square_row, 20, 0, FRAMES),
    )
    return Question(f"colour-{k}", "colour", "What colour is the ball?", options, options.index(ball), items)


def _order(rng: np.random.Generator, k: int, first_is_square: bool) -> Question:
    first = int(rng.integers(_frames(0.5), _frames(3.5)))
    second = first + int(rng.integers(_frames(2), _frames(4) + 1))
    square_start, circle_start = (first, second) if first_is_square else (second, first)
    cells = _cells(rng, 3)
    items = [
        Item("square", "red", *_jitter(rng, cells[0]), 20, square_start, square_start + _frames(3)),
        Item("circle", "blue", *_jitter(rng, cells[1]), 22, circle_start, circle_start + _frames(3)),
    ]
    if rng.random() < 0.5:  # an earlier shape that the question does not ask about
        items.append(Item("square", "green", *_jitter(rng, cells[2]), 20, 0, first))
    options = ["the red square", "the blue circle", "both at the same time"]
    return Question(
        f"order-{k}",
        "order",
        "Which appears first, the red square or the blue circle?",
        options,
        0 if first_is_square else 1,
        tuple(items),
    )


QUARTER = SECONDS // 4


def _when(rng: np.random.Generator, k: int, quarter: int) -> Question:
    others = [q for q in range(4) if q != quarter]
    circle_quarter, red_quarter = (others[i] for i in rng.choice(3, size=2, replace=False))
    cells = _cells(rng, 3)
    items = []
    for (shape, colour), q, cell in zip(
        (("square", "green"), ("circle", "green"), ("square", "red")),
        (quarter, circle_quarter, red_quarter),
        cells,
        strict=True,
    ):
        start = _frames(q * QUARTER) + int(rng.integers(_frames(0.5), _frames(1) + 1))
        length = int(rng.integers(_frames(1.5), _frames(2) + 1))
        items.append(
            Item(
                shape, colour, *_jitter(rng, cell), 20, start, min(start + length, _frames((q + 1) * QUARTER))
            )
        )
    options = [f"{q * QUARTER}-{(q + 1) * QUARTER} s" for q in range(4)]
    return Question(f"when-{k}", "when", "When does the green square appear?", options, quarter, tuple(items))


def _spatial(rng: np.random.Generator, k: int, square_left: bool) -> Question:
    row = int(rng.choice([20, 60, 100]))
    left, right = sorted((2 * rng.choice(np.arange(8, 73), size=2, replace=False)).tolist())
    while right - left < 50:
        left, right = sorted((2 * rng.choice(np.arange(8, 73), size=2, replace=False)).tolist())
    square_x, circle_x = (left, right) if square_left else (right, left)
    other_row = 60 if row != 60 else 20
    items = (
        Item("square", "red", square_x, row, 20, 0, FRAMES),
        Item("circle", "blue", circle_x, row, 22, 0, FRAMES),
        Item("circle", "yellow", int(2 * rng.integers(10, 71)), other_row, 20, 0, FRAMES),
    )
    options = ["to the left", "to the right", "directly above"]
    return Question(
        f"spatial-{k}",
        "spatial",
        "Is the red square left or right of the blue circle?",
        options,
        0 if square_left else 1,
        items,
    )


def _reading(rng: np.random.Generator, k: int) -> Question:
    chosen = [WORDS[i] for i in rng.choice(len(WORDS), size=4, replace=False)]
    word = chosen[0]
    options = [chosen[i] for i in rng.permutation(4)]
    start = int(rng.integers(_frames(1), _frames(4) + 1))
    end = start + int(rng.integers(_frames(4), _frames(6) + 1))
    items = (Item("word", word, WIDTH // 2, HEIGHT // 2, 0, start, end),)
    return Question(f"reading-{k}", "reading", "What word is shown?", options, options.index(word), items)


def plan(per_kind: int = 2, seed: int = 0) -> list[Question]:
    """The questions and what their videos show, ``per_kind`` of each kind, in :data:`KINDS` order."""
    questions: list[Question] = []
    for number, kind in enumerate(KINDS):
        rng = np.random.default_rng([seed, number])
        offset = int(rng.integers(4))  # balanced answers for the binary/quarter kinds, phase by seed
        for k in range(per_kind):
            if kind == "counting":
                questions.append(_counting(rng, k))
            elif kind == "colour":
                questions.append(_colour(rng, k))
            elif kind == "order":
                questions.append(_order(rng, k, (k + offset) % 2 == 0))
            elif kind == "when":
                questions.append(_when(rng, k, (k + offset) % 4))
            elif kind == "spatial":
                questions.append(_spatial(rng, k, (k + offset) % 2 == 0))
            else:
                questions.append(_reading(rng, k))
    return questions


# --- rendering -------------------------------------------------------------------------------------
_YS, _XS = np.mgrid[0:HEIGHT, 0:WIDTH] + 0.5


def _shape_mask(item: Item, frame: int) -> np.ndarray:
    cx, cy = item.centre_at(frame)
    half = item.size / 2
    if item.kind == "circle":
        return (_XS - cx) ** 2 + (_YS - cy) ** 2 <= half**2
    return (np.abs(_XS - cx) <= half) & (np.abs(_YS - cy) <= half)


def word_mask(word: str) -> np.ndarray:
    """A (HEIGHT, WIDTH) bool mask of ``word`` centred, in the largest default-font size that fits."""
    from PIL import Image, ImageDraw, ImageFont

    for size in range(44, 11, -2):
        font = ImageFont.load_default(size=size)
        left, top, right, bottom = font.getbbox(word)
        if right - left <= WIDTH - 16:
            break
    image = Image.new("L", (WIDTH, HEIGHT), 0)
    x = (WIDTH - (right - left)) // 2 - left
    y = (HEIGHT - (bottom - top)) // 2 - top
    ImageDraw.Draw(image).text((x, y), word, fill=255, font=font)
    return np.asarray(image) >= 128


def frame_drawer(items: tuple[Item, ...]) -> Callable[[int], np.ndarray]:
    """``draw(i)``: frame ``i`` (RGB, HEIGHT x WIDTH) showing the items visible then."""
    words = {item.colour: word_mask(item.colour) for item in items if item.kind == "word"}

    def draw(index: int) -> np.ndarray:
        canvas = np.empty((HEIGHT, WIDTH, 3), np.uint8)
        canvas[:] = BACKGROUND
        for item in items:
            if not item.start <= index < item.end:
                continue
            if item.kind == "word":
                canvas[words[item.colour]] = TEXT_COLOUR
            else:
                canvas[_shape_mask(item, index)] = COLOURS[item.colour]
        return canvas

    return draw


def _write_video(path: Path, items: tuple[Item, ...]) -> None:
    draw = frame_drawer(items)
    partial = path.with_name(f".{path.stem}.partial.mp4")
    with av.open(str(partial), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(FPS))
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.codec_context.options = {"preset": "veryfast", "crf": "18"}
        for i in range(FRAMES):
            frame = av.VideoFrame.from_ndarray(draw(i), format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    os.replace(partial, path)


def write_synthetic(out_dir: Path, per_kind: int = 2, seed: int = 0) -> Path:
    """Write (or reuse) ``out_dir/videos/*.mp4`` and ``out_dir/synthetic.jsonl``; return the JSONL path.

    ``per_kind`` questions of each of the six kinds, each with its own video. Load it with
    ``load_task("synthetic", out_dir)`` (that wants ``synthetic.jsonl`` to be the only ``.jsonl``
    file in ``out_dir``).
    """
    if per_kind < 1:
        raise ValueError(f"per_kind must be at least 1, not {per_kind}")
    out_dir = Path(out_dir)
    videos = out_dir / "videos"
    videos.mkdir(parents=True, exist_ok=True)
    lines = []
    for question in plan(per_kind, seed):
        name = f"videos/{question.id}-{question.digest()}.mp4"
        if not (out_dir / name).is_file():
            _write_video(out_dir / name, question.items)
        row = {
            "id": question.id,
            "video": name,
            "question": question.question,
            "options": question.options,
            "answer": question.answer,
            "category": question.category,
        }
        lines.append(json.dumps(row) + "\n")
    target = out_dir / JSONL_NAME
    partial = out_dir / f".{JSONL_NAME}.partial"
    partial.write_text("".join(lines), encoding="utf-8")
    os.replace(partial, target)
    return target


__all__ = [
    "COLOURS",
    "KINDS",
    "WORDS",
    "Item",
    "Question",
    "frame_drawer",
    "plan",
    "word_mask",
    "write_synthetic",
]
