"""detect_track on the tiny random-weight GroundingDINO: parity, tracking, object memory, edge cases."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from transformers import AutoProcessor, GroundingDinoForObjectDetection
from typer.testing import CliRunner

from tests.synth import moving_square, write_video
from vidagent.app.cli import app
from vidagent.core.errors import VidagentError
from vidagent.media.video import Video
from vidagent.tools.base import ToolContext
from vidagent.tools.detect_track import (
    BATCH_SIZE,
    TOOL,
    DetectInput,
    EmptyPrompt,
    FrameDetections,
    build_tracks,
    decode_short_side,
    label_scores,
    normalise_prompt,
    phrase_spans,
    render,
    tracks_for,
)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(
        tmp_path_factory.mktemp("dt") / "square.mp4",
        fps=10,
        seconds=2,
        size=(96, 64),
        frames_fn=moving_square,
    )


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --- prompt -----------------------------------------------------------------------------------
def test_prompt_is_normalised() -> None:
    assert normalise_prompt("Person.  BICYCLE, red   car;person\n") == ["person", "bicycle", "red car"]
    assert DetectInput(prompt="Person. bicycle").prompt == "person. bicycle."


@pytest.mark.parametrize("prompt", ["", "   ", " . ; ,"])
def test_empty_prompt_is_a_clear_error(prompt: str) -> None:
    with pytest.raises(ValidationError, match=r"names no object|at least 1 character"):
        DetectInput(prompt=prompt)
    if prompt:
        with pytest.raises(EmptyPrompt, match="names no object") as info:
            normalise_prompt(prompt)
        assert isinstance(info.value, VidagentError)


def test_over_long_prompt_is_truncated_with_a_warning(ctx: ToolContext, clip: Path) -> None:
    labels = ["square"] + [f"thing {c}" for c in "abcdefghij"]
    with pytest.warns(UserWarning, match=r"dropped: .*'thing j'"):
        _, _, settings = tracks_for(ctx, clip, DetectInput(prompt=". ".join(labels), fps=1))
    kept = settings["labels"]
    assert kept == labels[: len(kept)] and 1 <= len(kept) < len(labels)
    tokenizer = ctx.hub.get("detector").processor.tokenizer
    assert len(tokenizer(settings["prompt"])["input_ids"]) <= 32  # the tiny text encoder's limit


def test_phrases_map_to_labels() -> None:
    from vidagent.models.tiny import bert_tokenizer

    tokenizer = bert_tokenizer()
    ids = tokenizer("person. red car.")["input_ids"]  # [CLS] person . red car . [SEP]
    assert phrase_spans(ids, tokenizer) == [[1], [3, 4]]
    probs = np.array([[0.1, 0.9, 0.2, 0.3, 0.1, 0.0, 0.0], [0.1, 0.2, 0.9, 0.3, 0.7, 0.0, 0.0]])
    scores = label_scores(probs, [[1], [3, 4]])
    np.testing.assert_allclose(scores, [[0.9, 0.3], [0.2, 0.7]])


# --- parity with transformers ------------------------------------------------------------------
def test_boxes_equal_a_direct_grounding_dino_call(ctx: ToolContext, clip: Path) -> None:
    args = DetectInput(prompt="square. circle.", fps=3, box_threshold=0.3, text_threshold=0.0)
    _, tracks, _ = tracks_for(ctx, clip, args)
    ours: dict[float, list[list[float]]] = {}
    for track in tracks:
        for t, box in zip(track["t"], track["box"], strict=True):
            ours.setdefault(t, []).append(box)

    source = ctx.hub.get("detector").source
    model = GroundingDinoForObjectDetection.from_pretrained(source).eval()
    processor = AutoProcessor.from_pretrained(source)
    direct: dict[float, list[list[float]]] = {}
    with Video.open(clip) as video:
        frames = video.sample_fps(3, short_side=decode_short_side(video, processor.image_processor))
        size = (video.height, video.width)
    for start in range(0, len(frames), BATCH_SIZE):
        batch = list(frames.frames[start : start + BATCH_SIZE])
        inputs = processor(images=batch, text=["square. circle."] * len(batch), return_tensors="pt")
        with torch.inference_mode():
            outputs = model(**inputs)
        results = processor.post_process_grounded_object_detection(
            outputs, inputs.input_ids, threshold=0.3, text_threshold=0.0, target_sizes=[size] * len(batch)
        )
        for t, result in zip(frames.timestamps[start : start + BATCH_SIZE], results, strict=True):
            boxes = result["boxes"].numpy()
            boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, size[1])
            boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, size[0])
            direct[round(float(t), 3)] = [[round(float(v), 1) for v in b] for b in boxes]
    assert sum(map(len, direct.values())) > 0  # random weights still fire at this threshold
    assert set(ours) <= set(direct)
    for t, boxes in direct.items():
        np.testing.assert_allclose(sorted(ours.get(t, [])), sorted(boxes), atol=0.11)


# --- tracking ----------------------------------------------------------------------------------
def crossing(frames: int = 16) -> list[FrameDetections]:
    """Two same-label boxes moving towards each other, overlapping mid-way; detection order alternates."""
    found = []
    for k in range(frames):
        a, b = 10 + 8 * k, 130 - 8 * k
        boxes = np.array([[a, 40, a + 24, 64], [b, 46, b + 24, 70]], np.float32)
        order = [1, 0] if k % 2 else [0, 1]
        found.append(
            FrameDetections(
                k / 2, 5 * k, boxes[order], np.array([0.9, 0.8], np.float32)[order], np.zeros(2, np.int64)
            )
        )
    return found


def test_track_ids_stay_stable_where_paths_cross() -> None:
    tracks = build_tracks(crossing(), ["ball"], fps=2, box_threshold=0.3)
    assert [t["track_id"] for t in tracks] == [1, 2]
    for track in tracks:
        xs = [box[0] for box in track["box"]]
        assert len(xs) == 16  # every sighting, the first one included
        assert len({box[1] for box in track["box"]}) == 1  # one object's row: never swapped
        assert xs == sorted(xs) or xs == sorted(xs, reverse=True)
    assert tracks[0]["first_seen"] == 0.0 and tracks[0]["last_seen"] == 7.5


def test_labels_are_tracked_apart_and_singletons_kept() -> None:
    frames = crossing(4)
    frames = [
        FrameDetections(f.t, f.frame_index, f.boxes, f.scores, (f.boxes[:, 1] == 46).astype(np.int64))
        for f in frames
    ]  # the lower box is a cup
    lone = FrameDetections(
        2.0, 20, np.array([[0, 0, 5, 5]], np.float32), np.array([0.5], np.float32), np.array([1])
    )
    tracks = build_tracks([*frames, lone], ["ball", "cup"], fps=2, box_threshold=0.3)
    assert sorted((t["label"], len(t["t"])) for t in tracks) == [("ball", 4), ("cup", 1), ("cup", 4)]
    assert len(build_tracks([*frames, lone], ["ball", "cup"], fps=2, box_threshold=0.3, min_frames=2)) == 2


# --- the tool end to end -------------------------------------------------------------------------
def count_calls(monkeypatch: pytest.MonkeyPatch, model: torch.nn.Module) -> list[int]:
    calls: list[int] = []
    forward = model.forward

    def counted(*args, **kwargs):
        calls.append(1)
        return forward(*args, **kwargs)

    monkeypatch.setattr(model, "forward", counted)
    return calls


def test_end_to_end_rows_and_object_memory(
    ctx: ToolContext, clip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = count_calls(monkeypatch, ctx.hub.get("detector").model)
    evidence = TOOL(ctx, clip, prompt="Square. circle", fps=4, box_threshold=0.3)
    assert calls and len(evidence) > 0
    assert set(evidence.tool) == {"detect_track"}
    assert (
        (evidence.start >= 0).all()
        and (evidence.end <= 2.0 + 1e-6).all()
        and (evidence.end > evidence.start).all()
    )
    assert len(set(evidence.track_id)) == len(evidence) and (evidence.track_id >= 1).all()
    assert (
        (evidence.box[:, 0] >= 0).all()
        and (evidence.box[:, 2] <= 96).all()
        and (evidence.box[:, 3] <= 64).all()
    )
    labels = [row["label"] for row in evidence.data]
    assert set(labels) <= {"square", "circle"}
    for row in evidence.data:
        assert row["count"] == labels.count(row["label"])
        assert set(row) == {"label", "count", "best", "frames", "from", "to"}
    video_id = ctx.store.content_hash(clip)
    assert set(evidence.video) == {video_id}

    first = len(calls)
    again = TOOL(
        ctx, clip, prompt="square. circle.", fps=4, box_threshold=0.3
    )  # same question, other spelling
    assert len(calls) == first  # read back from object memory: no model call
    assert again.to_json() == evidence.to_json()
    TOOL(ctx, clip, prompt="square.", fps=4, box_threshold=0.3)
    assert len(calls) > first  # another prompt is another question


def test_no_detection_is_empty_evidence_and_is_remembered(
    ctx: ToolContext, clip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = count_calls(monkeypatch, ctx.hub.get("detector").model)
    for _ in range(2):
        evidence = TOOL(ctx, clip, prompt="square.", fps=2, box_threshold=1.0)
        assert len(evidence) == 0
    assert len(calls) == 1  # 4 frames in one batch, once


def test_one_frame_video(ctx: ToolContext, tmp_path: Path) -> None:
    video = write_video(tmp_path / "one.mp4", fps=25, seconds=0.04, size=(96, 64), frames_fn=moving_square)
    evidence = TOOL(ctx, video, prompt="square.", box_threshold=0.3)
    assert len(evidence) > 0  # seen once, still a track
    assert all(row["frames"] == 1 for row in evidence.data)
    assert (evidence.frame_index == 0).all()


def test_render_and_cli(ctx: ToolContext, clip: Path, tmp_path: Path) -> None:
    _, tracks, settings = tracks_for(ctx, clip, DetectInput(prompt="square.", fps=2, box_threshold=0.3))
    out = render(clip, tracks, tmp_path / "annotated.mp4", step=settings["step"], span=(0.0, 1.0))
    with Video.open(out) as video:
        assert (video.width, video.height) == (96, 64) and video.frame_count == 10

    result = CliRunner().invoke(
        app,
        [
            "detect",
            str(clip),
            "square.",
            "--profile",
            "tiny",
            "--store",
            str(tmp_path / "cli.sqlite"),
            "--box-threshold",
            "0.3",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert '"detect_track"' in result.stdout
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = CliRunner().invoke(app, ["detect", str(clip), " . ", "--profile", "tiny"])
    assert result.exit_code == 2 and "names no object" in result.output


@pytest.mark.parametrize("size", [(2000, 100), (16, 2000), (34, 18)])
def test_extreme_and_odd_sizes_detect(tmp_path: Path, tiny_hub, size: tuple[int, int]) -> None:
    """A 2000x100 video used to fail in the processor (a 4-pixel frame read as channels first), a
    16x2000 one with "short_side must be a positive integer, got 0"."""
    from vidagent.media.store import Store

    video = write_video(tmp_path / "v.mp4", fps=5, seconds=1, size=size)
    ctx = ToolContext(hub=tiny_hub, store=Store(tmp_path / "s.sqlite"))
    evidence = TOOL(ctx, video, prompt="person.")
    assert all(0 <= b[0] <= b[2] <= size[0] and 0 <= b[1] <= b[3] <= size[1] for b in evidence.box)


def test_a_missing_path_or_a_folder_is_one_clear_line(tmp_path: Path) -> None:
    for path, message in ((tmp_path / "nope.mp4", "no such file"), (tmp_path, "not a regular file")):
        result = CliRunner().invoke(
            app, ["detect", str(path), "person.", "--profile", "tiny", "--store", str(tmp_path / "s.sqlite")]
        )
        assert result.exit_code == 1 and isinstance(result.exception, VidagentError), result.exception
        assert message in str(result.exception)
