"""The synthetic VideoQA set: deterministic, loadable, and every answer true in the decoded pixels.

The pixel checks do not reuse the generator's plan: they find coloured blobs by hue in decoded
frames, tell squares from circles by how much of their bounding box they fill, and read the
word back with RapidOCR.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from vidagent.evals.synthetic import FPS, KINDS, write_synthetic
from vidagent.evals.tasks import Sample, load_task
from vidagent.media.video import Video

HUES = {"red": (340, 20), "yellow": (40, 70), "green": (90, 160), "blue": (200, 250), "purple": (260, 310)}


@dataclass(frozen=True)
class Blob:
    colour: str
    shape: str  # "square" / "circle"
    cx: float
    cy: float


def blobs(frame: np.ndarray) -> list[Blob]:
    """Saturated blobs of a frame, named by hue and by how much of their bounding box they fill."""
    hsv = np.asarray(Image.fromarray(frame).convert("HSV")).astype(np.float64)
    hue, saturated = hsv[..., 0] * 360 / 256, hsv[..., 1] > 115
    found = []
    for colour, (low, high) in HUES.items():
        in_range = (hue >= low) | (hue <= high) if low > high else (hue >= low) & (hue <= high)
        labels, _ = ndimage.label(saturated & in_range)
        for index, box in enumerate(ndimage.find_objects(labels), 1):
            component = labels[box] == index
            area = int(component.sum())
            if area < 60:  # coding fringe, not a shape
                continue
            fill = area / component.size
            assert fill > 0.65, f"a {colour} blob fills {fill:.2f} of its box: neither square nor circle"
            ys, xs = np.nonzero(component)
            found.append(
                Blob(
                    colour,
                    "square" if fill > 0.88 else "circle",
                    box[1].start + xs.mean() + 0.5,
                    box[0].start + ys.mean() + 0.5,
                )
            )
    return found


def frame_times() -> np.ndarray:
    """The middle of every frame's display interval (12 s at 8 fps)."""
    return (np.arange(12 * FPS) + 0.5) / FPS


def all_frames(sample: Sample) -> np.ndarray:
    with Video.open(sample.video) as video:
        return video.sample_at(frame_times()).frames


def present(frames: np.ndarray, colour: str, shape: str) -> np.ndarray:
    """Per frame: is a ``colour`` ``shape`` visible?"""
    return np.array([any(b.colour == colour and b.shape == shape for b in blobs(f)) for f in frames])


@functools.cache
def ocr():  # -> RapidOCR, built once (~0.3 s)
    from rapidocr_onnxruntime import RapidOCR

    return RapidOCR()


@pytest.fixture(scope="module", params=[0, 1], ids=lambda seed: f"seed{seed}")
def synthetic_task(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp(f"synthetic-seed{request.param}")
    write_synthetic(out, per_kind=2, seed=request.param)
    return load_task("synthetic", out)


def samples_of(task, category: str) -> list[Sample]:
    chosen = [s for s in task.samples if s.category == category]
    assert len(chosen) == 2
    return chosen


# --- format, determinism, reuse --------------------------------------------------------------------
def test_loads_as_a_multiple_choice_task(synthetic_task) -> None:
    assert synthetic_task.name == "synthetic" and not synthetic_task.open_ended
    assert [s.category for s in synthetic_task.samples] == [k for k in KINDS for _ in range(2)]
    for sample in synthetic_task.samples:
        assert sample.video.is_file() and sample.video.suffix == ".mp4"
        assert 3 <= len(sample.options) <= 5 and len(set(sample.options)) == len(sample.options)
        assert isinstance(sample.answer, int) and 0 <= sample.answer < len(sample.options)
        with Video.open(sample.video) as video:
            assert (video.width, video.height, video.fps, video.frame_count) == (160, 120, 8.0, 96)


def test_same_seed_same_bytes_and_frames(tmp_path: Path) -> None:
    first = write_synthetic(tmp_path / "a", per_kind=1, seed=3)
    second = write_synthetic(tmp_path / "b", per_kind=1, seed=3)
    assert first.name == "synthetic.jsonl" and first.read_bytes() == second.read_bytes()
    by_dir, by_file = load_task("synthetic", tmp_path / "a"), load_task("synthetic", first)
    assert [(s.id, s.video, s.answer) for s in by_dir.samples] == [
        (s.id, s.video, s.answer) for s in by_file.samples
    ]
    for a, b in zip(
        load_task("synthetic", tmp_path / "a").samples,
        load_task("synthetic", tmp_path / "b").samples,
        strict=True,
    ):
        assert np.array_equal(all_frames(a), all_frames(b)), a.id
    other = write_synthetic(tmp_path / "c", per_kind=1, seed=4)
    assert other.read_bytes() != first.read_bytes()


def test_second_call_reuses_the_videos(tmp_path: Path) -> None:
    jsonl = write_synthetic(tmp_path, per_kind=1, seed=0)
    written = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "videos").iterdir()}
    before = jsonl.read_bytes()
    assert len(written) == len(KINDS)
    write_synthetic(tmp_path, per_kind=1, seed=0)
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "videos").iterdir()} == written
    assert jsonl.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "synthetic.jsonl",
        "videos",
    ]  # no partial files left


def test_per_kind_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="per_kind"):
        write_synthetic(tmp_path, per_kind=0)


# --- the answers are true in the pixels ---------------------------------------------------------------
def test_counting_answer_is_the_number_of_red_squares(synthetic_task) -> None:
    for sample in samples_of(synthetic_task, "counting"):
        frames = all_frames(sample)
        counts = [sum(b.colour == "red" and b.shape == "square" for b in blobs(f)) for f in frames]
        assert max(counts) == counts[-1] == int(sample.options[sample.answer]), sample.id
        assert counts == sorted(counts), "squares appear and stay"
        distractors = {(b.colour, b.shape) for b in blobs(frames[-1])} - {("red", "square")}
        assert distractors and distractors <= {("red", "circle"), ("blue", "square")}


def test_colour_answer_is_the_colour_of_the_only_circle(synthetic_task) -> None:
    for sample in samples_of(synthetic_task, "colour"):
        frames = all_frames(sample)
        for frame in frames[[0, 48, 95]]:
            found = blobs(frame)
            circles = [b for b in found if b.shape == "circle"]
            squares = [b for b in found if b.shape == "square"]
            assert len(circles) == 1 and circles[0].colour == sample.options[sample.answer], sample.id
            assert len(squares) == 1 and squares[0].colour in sample.options  # the distractor is an option
            assert squares[0].colour != circles[0].colour
        start, end = (next(b for b in blobs(frames[i]) if b.shape == "circle").cx for i in (0, 95))
        assert abs(end - start) > 100, "the ball rolls across the frame"


def test_order_answer_is_the_shape_seen_first(synthetic_task) -> None:
    answers = set()
    for sample in samples_of(synthetic_task, "order"):
        frames = all_frames(sample)
        square_first = int(np.argmax(present(frames, "red", "square")))
        circle_first = int(np.argmax(present(frames, "blue", "circle")))
        assert present(frames, "red", "square").any() and present(frames, "blue", "circle").any()
        assert abs(square_first - circle_first) >= 2 * FPS
        expected = "the red square" if square_first < circle_first else "the blue circle"
        assert sample.options[sample.answer] == expected, sample.id
        answers.add(sample.answer)
    assert answers == {0, 1}, "both answers occur"


def test_when_answer_is_the_range_holding_the_green_square(synthetic_task) -> None:
    for sample in samples_of(synthetic_task, "when"):
        low, high = map(float, re.fullmatch(r"(\d+)-(\d+) s", sample.options[sample.answer]).groups())
        seen = frame_times()[present(all_frames(sample), "green", "square")]
        assert len(seen) >= FPS, sample.id
        assert low <= seen.min() and seen.max() <= high, (sample.id, seen)


def test_spatial_answer_is_the_side_of_the_red_square(synthetic_task) -> None:
    answers = set()
    for sample in samples_of(synthetic_task, "spatial"):
        frame = all_frames(sample)[48]
        square = next(b for b in blobs(frame) if (b.colour, b.shape) == ("red", "square"))
        circle = next(b for b in blobs(frame) if (b.colour, b.shape) == ("blue", "circle"))
        assert abs(square.cy - circle.cy) < 2 and abs(square.cx - circle.cx) > 40, "same row, well apart"
        expected = "to the left" if square.cx < circle.cx else "to the right"
        assert sample.options[sample.answer] == expected, sample.id
        answers.add(sample.answer)
    assert answers == {0, 1}


def test_reading_answer_is_the_word_ocr_reads(synthetic_task) -> None:
    for sample in samples_of(synthetic_task, "reading"):
        frames = all_frames(sample)
        inked = np.array([(f.max(axis=2) < 80).sum() > 100 for f in frames])
        shown = np.nonzero(inked)[0]
        assert len(shown) >= 4 * FPS and np.all(np.diff(shown) == 1), "one visible stretch of 4 s or more"
        lines, _ = ocr()(frames[shown[len(shown) // 2]])
        read = [text for _, text, _ in lines or []]
        assert read == [sample.options[sample.answer]], (sample.id, read)
        assert not inked[0] and not inked[-1], "the word comes and goes"
