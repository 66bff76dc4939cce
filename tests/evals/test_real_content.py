"""The real-content VideoQA set: deterministic, loadable, its speech and signs really where the rows say,
and its answers checked by rule.

The audio and pixel checks decode the written files with PyAV and compare them with what the JSONL
row states (speech spans, sign spans and boxes), not with the generator's plan: the frames without
signs are made again from the row's ``clip`` (the sample video, cut and scaled as it says).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from vidagent.evals.real_content import (
    FPS,
    KINDS,
    SAMPLE_RATE,
    TEMPLATES,
    Clip,
    clip_frames,
    demo_clip,
    load_real_content,
    named_times,
    names,
    plan,
    visible_frames,
    write_demo_clip,
    write_real_content,
)
from vidagent.evals.runner import Prediction
from vidagent.evals.tasks import TaskError, load_task

COMMITTED_DEMO = Path(__file__).resolve().parents[2] / "agent" / "media" / "data" / "announcement.mp4"

needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None,
    reason="espeak-ng is not installed (make test installs Debian's espeak-ng)",
)


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (make test installs Debian's espeak-ng)")
    out = tmp_path_factory.mktemp("real")
    write_real_content(out, per_kind=1, seed=0)
    return out


def rows(folder: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line) for line in (folder / "real_content.jsonl").read_text(encoding="utf-8").splitlines()
    ]


def decoded_audio(path: Path) -> np.ndarray:
    """The audio track as mono float32 at SAMPLE_RATE, sample 0 at 0 s."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        assert stream.codec_context.sample_rate == SAMPLE_RATE and stream.codec_context.channels == 1
        chunks, first = [], None
        for frame in container.decode(stream):
            first = float(frame.pts * stream.time_base) if first is None else first
            chunks.append(frame.to_ndarray().reshape(-1))
    assert first == 0.0
    return np.concatenate(chunks).astype(np.float32)


def decoded_frames(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def loudness(audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """RMS of 20 ms windows and their middle times."""
    window = SAMPLE_RATE // 50
    usable = len(audio) // window * window
    rms = np.sqrt((audio[:usable].reshape(-1, window).astype(np.float64) ** 2).mean(axis=1))
    return rms, (np.arange(len(rms)) + 0.5) / 50


def check_speech(audio: np.ndarray, speech: list[dict[str, Any]]) -> None:
    """Speech in every stated span (starting and ending with it), digital silence everywhere else."""
    rms, times = loudness(audio)
    near = np.zeros(len(rms), bool)
    for line in speech:
        inside = (times > line["start"]) & (times < line["end"])
        loud = rms[inside] > 0.01
        assert loud.mean() > 0.6, (line, loud.mean())
        assert (
            abs(times[inside][loud][0] - line["start"]) < 0.06
            and abs(times[inside][loud][-1] - line["end"]) < 0.06
        )
        near |= (times > line["start"] - 0.1) & (times < line["end"] + 0.1)
    assert near.any() and rms[~near].max() < 1e-3, "silence between and around the utterances"


def check_signs(frames: np.ndarray, clip: Clip) -> None:
    """Each sign's box differs strongly from the source frame exactly while it is shown."""
    base = np.stack(list(clip_frames(clip, signs=False)))
    assert frames.shape == base.shape
    for sign in clip.signs:
        x0, y0, x1, y1 = sign.bbox
        assert 0 <= x0 < x1 <= clip.width and 0 <= y0 < y1 <= clip.height
        change = np.abs(frames[:, y0:y1, x0:x1].astype(int) - base[:, y0:y1, x0:x1].astype(int)).mean(
            axis=(1, 2, 3)
        )
        shown = visible_frames(sign, clip.frames)
        assert shown.sum() >= FPS, sign  # a second or more
        others = np.zeros(clip.frames, bool)  # frames where another sign covers part of this box
        for other in clip.signs:
            ox0, oy0, ox1, oy1 = other.bbox
            if other is not sign and ox0 < x1 and x0 < ox1 and oy0 < y1 and y0 < oy1:
                others |= visible_frames(other, clip.frames)
        assert change[shown].min() > 25, (sign.text, change[shown].min())
        assert change[~shown & ~others].max(initial=0) < 15, (sign.text, change[~shown & ~others].max())


# --- format, determinism, reuse --------------------------------------------------------------------
def test_loads_as_an_open_ended_task_with_its_truth(real: Path) -> None:
    task = load_task("real", real)
    assert task.name == "real" and task.open_ended and task.score_prediction is not None
    assert [s.category for s in task.samples] == list(KINDS)
    for sample, row in zip(task.samples, rows(real), strict=True):
        assert sample.options is None and sample.answer and sample.video.is_file()
        assert sample.video.stat().st_size < 250_000
        truth = row["truth"]
        assert truth["kind"] == sample.category and set(sample.sub) == {"topic", "source"}
        assert row["template"].split(".")[1] in TEMPLATES[sample.category]
        if sample.category.startswith("when_"):
            assert len(truth["spans"]) == 1 and truth["tools"] and not truth["words"]
        else:
            assert truth["words"] and sample.references == truth["words"]
        with av.open(str(sample.video)) as container:
            video, audio = container.streams.video[0], container.streams.audio[0]
            assert video.codec_context.name == "h264" and audio.codec_context.name == "aac"
            assert 8 <= container.duration / 1e6 <= 15.1
            assert (video.width, video.height) == (row["clip"]["width"], row["clip"]["height"])
    assert load_real_content(real / "real_content.jsonl").samples[0].id == task.samples[0].id


def test_same_seed_same_bytes_and_reuse(real: Path, tmp_path: Path) -> None:
    again = write_real_content(tmp_path, per_kind=1, seed=0)
    assert again.read_bytes() == (real / "real_content.jsonl").read_bytes()
    for row in rows(real):
        assert (tmp_path / row["video"]).read_bytes() == (real / row["video"]).read_bytes(), row["id"]
    written = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "videos").iterdir()}
    write_real_content(tmp_path, per_kind=1, seed=0)
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "videos").iterdir()} == written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["real_content.jsonl", "videos"]  # no partial files
    other = [q.row("x") for q in plan(per_kind=1, seed=1)]
    assert other != [{**r, "video": "x"} for r in rows(real)]


@needs_espeak
def test_answers_and_topics_vary() -> None:
    questions = plan(per_kind=4, seed=0)
    for kind in KINDS:
        chosen = [q for q in questions if q.category == kind]
        assert len({q.topic for q in chosen}) >= 3, kind
        if not kind.startswith("when_"):
            assert len({q.answer for q in chosen}) >= 3, kind
    assert len({q.clip.source for q in questions}) == 3
    assert len({line.voice for q in questions for line in q.clip.speech}) >= 4
    assert len({sign.font for q in questions for sign in q.clip.signs}) >= 4


def test_per_kind_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="per_kind"):
        write_real_content(tmp_path, per_kind=0)


# --- the speech and the text are where the rows say ------------------------------------------------
def test_speech_is_in_the_audio_at_the_stated_spans(real: Path) -> None:
    for row in rows(real):
        audio = decoded_audio(real / row["video"])
        assert abs(len(audio) / SAMPLE_RATE - row["clip"]["seconds"]) < 0.1
        check_speech(audio, row["clip"]["speech"])
        if row["category"] == "when_said":  # the answer's span is one of the utterances, and says the word
            target = next(s for s in row["clip"]["speech"] if s["role"] == "target")
            assert row["truth"]["spans"] == [[target["start"], target["end"]]]


def test_text_is_drawn_in_the_stated_spans(real: Path) -> None:
    for row in rows(real):
        check_signs(decoded_frames(real / row["video"]), Clip.from_dict(row["clip"]))
        if row["category"] == "when_shown":
            target = next(s for s in row["clip"]["signs"] if s["role"] == "target")
            assert row["truth"]["spans"] == [[target["start"], target["end"]]]


def test_when_questions_have_their_word_in_the_other_modality_at_another_time(real: Path) -> None:
    for row in rows(real):
        if not row["category"].startswith("when_"):
            continue
        start, end = row["truth"]["spans"][0]
        decoys = row["clip"]["signs"] if row["category"] == "when_said" else row["clip"]["speech"]
        for item in (d for d in decoys if d["role"] == "distractor"):
            assert item["end"] <= start - 0.5 or item["start"] >= end + 0.5, (row["id"], item)


# --- the demo's clip --------------------------------------------------------------------------------
@needs_espeak
def test_demo_clip_is_small_and_holds_its_announcement(tmp_path: Path) -> None:
    first = write_demo_clip(tmp_path / "announcement.mp4")  # byte-identical writes: see the same-seed test
    assert COMMITTED_DEMO.is_file() and COMMITTED_DEMO.stat().st_size <= 400_000
    assert first.stat().st_size <= 400_000
    clip = demo_clip()
    for path in (first, COMMITTED_DEMO):
        with av.open(str(path)) as container:
            assert 8.0 <= container.duration / 1e6 <= 10.0
        (speech,) = clip.to_dict()["speech"]
        assert speech["start"] == 1.0 and "Oxford" in speech["text"] and "platform four" in speech["text"]
        check_speech(decoded_audio(path), [speech])
        frames = decoded_frames(path)
        check_signs(frames, clip)
    (sign,) = clip.signs
    assert (sign.text, sign.start, sign.end) == ("PLATFORM 4", 2.0, 7.0)
    from rapidocr_onnxruntime import RapidOCR  # a dependency of vidagent: PP-OCR's real weights

    lines, _ = RapidOCR()(frames[45])
    assert [text.replace(" ", "") for _, text, _ in lines or []] == ["PLATFORM4"]


# --- answers checked by rule -----------------------------------------------------------------------
def fixture_rows() -> list[dict[str, Any]]:
    def row(id_: str, kind: str, answer: str, **truth: Any) -> dict[str, Any]:
        return {
            "id": id_,
            "video": f"videos/{id_}.mp4",
            "question": "?",
            "options": None,
            "answer": answer,
            "category": kind,
            "sub": {"topic": "t", "source": "bikes"},
            "truth": {"kind": kind, **truth},
        }

    return [
        row(
            "city",
            "said",
            "Boston",
            words=["Boston"],
            spans=[[1.0, 3.0]],
            tools=["transcribe", "find_text"],
            distractors=["Paris"],
        ),
        row(
            "gate",
            "shown",
            "42",
            words=["42"],
            spans=[[2.0, 6.0]],
            tools=["read_text", "find_text"],
            distractors=["17"],
        ),
        row("forty", "shown", "40", words=["40"]),
        row("board", "both", "Leeds", words=["Leeds", "4"], distractors=["York"]),
        row("same", "both", "no", words=["no"], polar="no"),
        row("heard", "when_said", "3.0-4.5 s", spans=[[3.0, 4.5]], tools=["transcribe", "find_text"]),
        row("seen", "when_shown", "6.0-8.0 s", spans=[[6.0, 8.0]], tools=["read_text", "find_text"]),
    ]


@pytest.fixture()
def fixture_task(tmp_path: Path):
    (tmp_path / "real_content.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in fixture_rows()), "utf-8"
    )
    task = load_task("real", tmp_path)
    return task, {s.id: s for s in task.samples}


def judged(
    fixture_task, sample_id: str, text: str, cited: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    task, samples = fixture_task
    return task.score_prediction(samples[sample_id], Prediction(text=text, cited=cited or []))


def row(tool: str, start: float, end: float) -> dict[str, Any]:
    return {"id": 1, "tool": tool, "start": start, "end": end, "text": "...", "score": 0.9}


def test_what_answers_need_the_expected_words(fixture_task) -> None:
    assert judged(fixture_task, "city", "The speaker mentions BOSTON.")["correct"]
    assert judged(fixture_task, "city", "boston")["scores"] == {"words": 1.0, "hedged": 0.0}
    assert not judged(fixture_task, "city", "The speaker mentions Paris.")["correct"]
    assert not judged(fixture_task, "city", "Bostonian trains.")["correct"]  # whole words only
    hedge = judged(fixture_task, "city", "Either Boston or Paris.")
    assert hedge["correct"] and hedge["scores"]["hedged"] == 1.0  # noted, not counted wrong
    assert judged(fixture_task, "board", "The board shows LEEDS on platform four.")["correct"]
    assert not judged(fixture_task, "board", "Leeds.")["correct"]  # both words needed


def test_numbers_count_as_digits_or_words(fixture_task) -> None:
    for text in (
        "Gate 42.",
        "forty-two",
        "It says Forty Two",
        "GATE42",
        "gate fortytwo is not a number word",
    ):
        assert judged(fixture_task, "gate", text)["correct"] is (
            text != "gate fortytwo is not a number word"
        ), text
    for text in ("142", "4.2", "forty", "24", "gate 17"):
        assert not judged(fixture_task, "gate", text)["correct"], text
    assert judged(fixture_task, "forty", "Forty.")["correct"]
    assert not judged(fixture_task, "forty", "forty-two")["correct"]
    assert names("platform four", "4") and not names("fourteen", "4") and names("Fourteen", "14")


def test_yes_no_answers_take_the_first_yes_or_no(fixture_task) -> None:
    assert judged(fixture_task, "same", "No: the speaker says York, the sign shows Leeds.")["correct"]
    assert not judged(fixture_task, "same", "Yes, it is the same city (no doubt).")["correct"]
    assert not judged(fixture_task, "same", "It is not the same city.")["correct"]  # neither yes nor no


def test_when_answers_by_cited_rows(fixture_task) -> None:
    overlapping = judged(fixture_task, "heard", "Then.", [row("transcribe", 2.5, 3.2)])
    assert overlapping["correct"] and overlapping["scores"] == {"cited": 1.0, "cited_any": 1.0, "times": 0.0}
    assert judged(fixture_task, "heard", "Then.", [row("read_text", 0, 1), row("find_text", 4.4, 6.0)])[
        "correct"
    ]
    wrong_tool = judged(fixture_task, "heard", "Then.", [row("read_text", 3.0, 4.0)])
    assert not wrong_tool["correct"] and wrong_tool["scores"]["cited_any"] == 1.0
    touching = [row("transcribe", 4.5, 6.0)]  # touching the span is not overlapping it
    assert not judged(fixture_task, "heard", "Then.", touching)["correct"]
    assert not judged(fixture_task, "heard", "Then.", [row("transcribe", 0.0, 2.9)])["correct"]
    assert judged(fixture_task, "seen", "Then.", [row("read_text", 7.9, 9.0)])["correct"]
    assert not judged(fixture_task, "seen", "Then.", [row("transcribe", 6.5, 7.0)])["correct"]
    assert not judged(fixture_task, "seen", "Then.")["correct"]


def test_when_answers_by_the_times_named(fixture_task) -> None:
    right = (
        "At 4.2 s.",
        "From 2 to 5 seconds.",
        "between 3.1s and 4.4s",
        "around 0:04",
        "3-4.5 s",
        "at 5.4 seconds",
    )
    for text in right:
        assert judged(fixture_task, "heard", text)["correct"], text
    wrong = (
        "At 8 s.",
        "0-12 s",
        "at 1.9 s",
        "At 4 (no unit)",
        "Gate 4 is said at 9 s, the sign at 4 s.",
        "soon",
    )
    for text in wrong:
        assert not judged(fixture_task, "heard", text)["correct"], text
    assert named_times("from 0:06 to 0:08") == [6.0, 8.0] and named_times("at 1:02.5") == [62.5]
    assert named_times("7.5 s") == [7.5] and named_times("gate 42") == []


def test_bad_rows_are_clear_errors(tmp_path: Path) -> None:
    bad = {**fixture_rows()[0], "truth": {"kind": "sung"}}
    (tmp_path / "real_content.jsonl").write_text(json.dumps(bad) + "\n", "utf-8")
    with pytest.raises(TaskError, match=r"real_content.jsonl:1: .*sung"):
        load_real_content(tmp_path)
    when = {**fixture_rows()[5], "truth": {"kind": "when_said", "spans": []}}
    (tmp_path / "real_content.jsonl").write_text(json.dumps(when) + "\n", "utf-8")
    with pytest.raises(TaskError, match="one true span"):
        load_real_content(tmp_path)
