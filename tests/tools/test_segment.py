"""segment on the tiny random-weight SAM and SAM 2: parity, propagation, bounded memory, summaries."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from transformers import SamModel, SamProcessor

from tests.synth import moving_square, write_video
from vidagent.core.errors import SpanOutOfRange
from vidagent.media.video import Video
from vidagent.models.sam2_processor import TorchSam2VideoProcessor
from vidagent.tools import segment as seg
from vidagent.tools.base import ToolContext
from vidagent.tools.detect_track import DetectInput, tracks_for


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(
        tmp_path_factory.mktemp("seg") / "square.mp4",
        fps=10,
        seconds=3,
        size=(96, 64),
        frames_fn=moving_square,
    )


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_tiny_checkpoints_load_through_the_hub(tiny_hub) -> None:
    assert type(tiny_hub.get("segmenter").model).__name__ == "SamModel"
    video_segmenter = tiny_hub.get("video_segmenter")
    assert type(video_segmenter.model).__name__ == "Sam2VideoModel"
    from transformers.utils import is_torchvision_available

    if not is_torchvision_available():
        assert isinstance(video_segmenter.processor, TorchSam2VideoProcessor)
    assert video_segmenter.processor.target_size == 64


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({}, "either track_id"),
        ({"track_id": 1, "prompt": "cat.", "box": [0, 0, 5, 5], "t": 0.0}, "either track_id"),
        ({"track_id": 1}, "give the prompt"),
        ({"box": [0, 0, 5, 5]}, "go together"),
        ({"box": [5, 0, 1, 5], "t": 0.0}, "x2 > x1"),
        ({"box": [0, 0, 5, 5], "t": 0.0, "span": [2, 1]}, "after its start"),
    ],
)
def test_input_needs_exactly_one_object(arguments: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        seg.SegmentInput(**arguments)


def test_masks_equal_a_direct_sam_call(ctx: ToolContext, clip: Path) -> None:
    box = [20.0, 15.0, 60.0, 45.0]
    evidence = seg.TOOL(ctx, clip, box=box, t=1.0)
    head, row = evidence[0], evidence[1]
    assert (
        head.data[0]["summary"]
        and row.mask_ref[0] is not None
        and row.start[0] == pytest.approx(1.0, abs=0.05)
    )
    ours = ctx.store.mask(row.mask_ref[0])

    source = ctx.hub.get("segmenter").source
    model, processor = SamModel.from_pretrained(source).eval(), SamProcessor.from_pretrained(source)
    with Video.open(clip) as video:
        short_side = seg.decode_short_side(video, 64)
        frame = video.sample_at([1.0], short_side=short_side).frames[0]
        scale = np.array([frame.shape[1] / video.width, frame.shape[0] / video.height] * 2)
    inputs = processor(images=frame, input_boxes=[[list(np.array(box) * scale)]], return_tensors="pt")
    with torch.inference_mode():
        outputs = model(**inputs, multimask_output=False)
    direct = processor.post_process_masks(
        outputs.pred_masks, inputs["original_sizes"], inputs["reshaped_input_sizes"]
    )
    np.testing.assert_array_equal(ours, direct[0][0, 0].numpy())
    assert ours.shape == (42, 63)  # decoded with the long side within SAM's 64 px input
    assert row.score[0] == pytest.approx(float(outputs.iou_scores[0, 0, 0]), abs=1e-5)
    area = float(ours.mean())
    assert row.data[0]["area"] == pytest.approx(area, abs=1e-4)


def test_track_masks_and_cache(ctx: ToolContext, clip: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, tracks, _ = tracks_for(ctx, clip, DetectInput(prompt="square."))
    track = max(tracks, key=lambda tr: len(tr["t"]))
    calls: list[int] = []
    model = ctx.hub.get("segmenter").model
    forward = model.forward
    monkeypatch.setattr(model, "forward", lambda *a, **k: calls.append(1) or forward(*a, **k))
    evidence = seg.TOOL(ctx, clip, track_id=track["track_id"], prompt="Square")
    assert len(evidence) == len(track["t"]) + 1  # one row per sighting, and the summary
    assert set(evidence.track_id) == {track["track_id"]}
    np.testing.assert_allclose(evidence.start[1:], track["t"], atol=1e-6)
    first = len(calls)
    assert first >= 1
    again = seg.TOOL(ctx, clip, track_id=track["track_id"], prompt="Square")
    assert len(calls) == first and again.to_json() == evidence.to_json()

    with pytest.raises(seg.TrackNotFound, match="no track 999"):
        seg.TOOL(ctx, clip, track_id=999, prompt="square.")


def test_a_prompt_alone_segments_its_most_seen_track(ctx: ToolContext, clip: Path) -> None:
    """ "Give me a mask of the square" is one call: the prompt's track seen on the most frames."""
    _, tracks, _ = tracks_for(ctx, clip, DetectInput(prompt="square."))
    most = max(tracks, key=lambda tr: (len(tr["t"]), tr["mean_score"]))
    alone = seg.TOOL(ctx, clip, prompt="square.")
    by_id = seg.TOOL(ctx, clip, track_id=most["track_id"], prompt="square.")
    assert set(alone.track_id) == {most["track_id"]}
    np.testing.assert_array_equal(alone.start, by_id.start)
    with pytest.raises(seg.TrackNotFound, match="nothing to segment"):
        seg.TOOL(ctx, clip, prompt="square.", span=(2.9, 3.0), fps=1.0)


def test_sam2_propagates_through_a_span(ctx: ToolContext, clip: Path) -> None:
    evidence = seg.TOOL(ctx, clip, box=[4, 20, 24, 40], t=1.0, span=(0.0, 3.0), fps=2)
    head, rows = evidence[0], evidence[1:]
    assert head.data[0]["summary"] and head.data[0]["frames"] == len(rows)
    # the span's 6 grid frames (0.25, 0.75, ... s) and the seed frame at 1.0 s, in time order
    np.testing.assert_allclose(rows.start, [0.2, 0.7, 1.0, 1.2, 1.7, 2.2, 2.7], atol=0.06)
    assert (np.diff(rows.start) > 0).all()
    for ref in rows.mask_ref:
        assert ctx.store.mask(ref).shape == (42, 63)
    assert ((rows.score >= 0) & (rows.score <= 1)).all()
    with pytest.raises(SpanOutOfRange, match="not inside the span"):
        seg.TOOL(ctx, clip, box=[4, 20, 24, 40], t=2.5, span=(0.0, 2.0))


def test_long_spans_keep_memory_bounded(
    ctx: ToolContext, clip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pruned sessions hold one frame and a fixed window of outputs, and give the very same masks."""
    loaded = ctx.hub.get("video_segmenter")
    config = loaded.model.config
    keep = max(config.num_maskmem, config.max_object_pointers_in_encoder) + 1
    times = np.arange(24) * 0.12 + 0.05
    sizes: list[tuple[int, int]] = []
    prune = seg._prune

    def watched(session, frame_idx: int, keep_: int) -> None:
        prune(session, frame_idx, keep_)
        outputs = session.output_dict_per_obj[0]
        sizes.append((len(session.processed_frames), len(outputs["non_cond_frame_outputs"])))
        assert len(outputs["cond_frame_outputs"]) == 1  # the seed stays

    monkeypatch.setattr(seg, "_prune", watched)
    with Video.open(clip) as video:
        pruned = [r for rows in seg.propagate(loaded, video, times, [4, 20, 24, 40], None) for r in rows]
        monkeypatch.setattr(seg, "_prune", lambda *args: None)
        whole = [r for rows in seg.propagate(loaded, video, times, [4, 20, 24, 40], None) for r in rows]
    assert len(pruned) == len(whole) == 24
    assert max(frames for frames, _ in sizes) == 1
    assert max(outputs for _, outputs in sizes) <= keep and sizes[-1][1] == keep
    for a, b in zip(pruned, whole, strict=True):
        assert a.score == pytest.approx(b.score, abs=1e-6)
        np.testing.assert_array_equal(a.mask, b.mask)


def test_mask_stats_and_summary() -> None:
    mask = np.zeros((10, 20), bool)
    mask[2:4, 5:9] = True
    area, centroid, box = seg.mask_stats(mask)
    assert (
        area == pytest.approx(8 / 200) and centroid == pytest.approx([7 / 20, 3 / 10]) and box == [5, 2, 9, 4]
    )
    assert seg.mask_stats(np.zeros((4, 4), bool)) == (0.0, None, None)

    records = [  # an object moving left and growing
        {"start": 0.0, "end": 0.0, "score": 0.8, "data": {"area": 0.02, "centroid": [0.8, 0.5]}},
        {"start": 1.0, "end": 1.0, "score": 0.6, "data": {"area": 0.0}},
        {"start": 2.0, "end": 2.0, "score": 0.7, "data": {"area": 0.06, "centroid": [0.3, 0.4]}},
    ]
    row = seg.summary(records, 7, "vid")
    assert row is not None and (row["start"], row["end"], row["track_id"]) == (0.0, 2.0, 7)
    assert row["data"] == {
        "summary": True,
        "frames": 3,
        "area": [0.02, 0.06],
        "area_change": 3.0,
        "dx": -0.5,
        "dy": -0.1,
    }
    assert row["score"] == pytest.approx(0.7)
    assert seg.summary([], 1, "vid") is None
