from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import CLIPModel, CLIPProcessor

from tests.synth import write_video
from vidagent.core.errors import SpanOutOfRange
from vidagent.media.store import Store
from vidagent.media.video import Video
from vidagent.tools.base import ToolContext
from vidagent.tools.retrieve import TOOL, peaks_to_spans, search_library, smooth


def two_colour_video(path: Path) -> Path:
    """5 s of red, then 5 s of blue."""

    def draw(i: int) -> np.ndarray:
        frame = np.zeros((48, 64, 3), np.uint8)
        frame[..., 0 if i < 50 else 2] = 220
        return frame

    return write_video(path, fps=10, seconds=10, size=(64, 48), frames_fn=draw)


@pytest.fixture
def ctx(tmp_path: Path, tiny_hub) -> ToolContext:
    return ToolContext(hub=tiny_hub, store=Store(tmp_path / "s.sqlite"), fps=2)


def test_frame_scores_equal_a_direct_clip_call(ctx: ToolContext, tmp_path: Path) -> None:
    video = two_colour_video(tmp_path / "rb.mp4")
    evidence = TOOL(ctx, video, query="a red square", k=2)
    assert len(evidence) == 2
    rows = ctx.index.frames(video, fps=2)
    encoder = ctx.index.encoder
    ours = encoder.scores(encoder.encode_texts(["a red square"])[0], rows.embeddings)
    # the same frames through CLIPModel as its docs show it, on the same tiny weights
    source = ctx.hub.get("clip").source
    model, processor = CLIPModel.from_pretrained(source).eval(), CLIPProcessor.from_pretrained(source)
    with Video.open(video) as v:
        frames = v.sample_at(rows.timestamps, short_side=encoder.input_size).frames
    with torch.inference_mode():
        out = model(
            **processor(text=["a red square"], images=list(frames), return_tensors="pt", padding=True)
        )
        direct = (out.logits_per_image[:, 0] / model.logit_scale.exp()).numpy()
    np.testing.assert_allclose(ours, direct, atol=2e-3)  # float16 storage


def test_spans_follow_visibly_different_segments(ctx: ToolContext, tmp_path: Path) -> None:
    """Tiny random weights still map red and blue frames apart: spans respect the cut at 5 s."""
    video = two_colour_video(tmp_path / "rb.mp4")
    rows = ctx.index.frames(video, fps=2)
    red, blue = rows.embeddings[rows.timestamps < 5], rows.embeddings[rows.timestamps >= 5]
    assert np.allclose(red, red[0], atol=1e-2) and np.allclose(blue, blue[0], atol=1e-2)
    assert float(red[0] @ blue[0]) < 0.999  # the two segments embed differently
    best = TOOL(ctx, video, query="anything", k=1)
    start, end = float(best.start[0]), float(best.end[0])
    assert (end <= 5.0 + 1e-6) or (start >= 5.0 - 1e-6)  # one segment, not across the cut
    assert end - start >= 3.0
    assert best.tool[0] == "retrieve" and best.frame_index[0] >= 0


def test_span_filter_and_errors(ctx: ToolContext, tmp_path: Path) -> None:
    video = two_colour_video(tmp_path / "rb.mp4")
    inside = TOOL(ctx, video, query="x", k=5, span=(6.0, 9.0))
    assert len(inside) and np.all(inside.start >= 5.5) and np.all(inside.end <= 9.5)
    with pytest.raises(SpanOutOfRange, match="not inside the video"):
        TOOL(ctx, video, query="x", span=(20.0, 30.0))
    with pytest.raises(ValueError):
        TOOL(ctx, video, query="", k=3)


def test_library_search_spans_videos(ctx: ToolContext, tmp_path: Path) -> None:
    a = two_colour_video(tmp_path / "a.mp4")
    b = write_video(tmp_path / "b.mp4", seconds=3, fps=10, size=(64, 48))
    ctx.index.add(a, fps=2)
    ctx.index.add(b, fps=2)
    found = search_library(ctx, "a red square", k=50)  # more than both videos have
    assert {str(v) for v in found.video} == {ctx.store.content_hash(a), ctx.store.content_hash(b)}
    assert np.all(np.diff(found.score) <= 1e-6)  # best first


def test_smoothing_and_peak_spans() -> None:
    np.testing.assert_allclose(smooth(np.array([0, 3, 0], float)), [1.5, 1.0, 1.5])
    curve = np.array([0, 0, 1, 1, 0.9, 0, 0, 0.5, 0], np.float32)
    times = np.arange(9) + 0.5
    spans = peaks_to_spans(times, curve, 2, step=1.0, duration=9.0)
    assert spans[0] == (2.0, 5.0, 2)
    assert spans[1] == (7.0, 8.0, 7)


def test_a_keyframe_stands_for_its_group_of_pictures() -> None:
    """Keyframe mode: the grid points 0.5 ... 9.5 s read the keyframes at 0, 4 and 8 s. A moment
    found on the 4 s keyframe spans its group of pictures (4 to 8 s), not 3.5 to 4.5 s; the last
    keyframe reaches as many steps as grid points share it; a lone frame reaches half a step."""
    times = np.array([0, 0, 4, 4, 4, 4, 8, 8, 8, 8], float)
    middle = np.array([0, 0, 1, 1, 1, 1, 0, 0, 0, 0], np.float32)
    assert peaks_to_spans(times, middle, 1, step=1.0, duration=10.0)[0][:2] == (4.0, 8.0)
    last = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 1], np.float32)
    assert peaks_to_spans(times, last, 1, step=1.0, duration=10.0)[0][:2] == (8.0, 10.0)
    first = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 0], np.float32)
    assert peaks_to_spans(times, first, 1, step=1.0, duration=10.0)[0][:2] == (0.0, 4.0)
    assert peaks_to_spans(np.array([3.0]), np.array([1.0], np.float32), 1, step=1.0, duration=9.0)[0][:2] == (
        2.5,
        3.5,
    )


@pytest.mark.parametrize("seconds", [0.5, 1.0, 2.0])  # one, two and four sampled frames at 2 fps
def test_short_videos_retrieve(ctx: ToolContext, tmp_path: Path, seconds: float) -> None:
    """A curve shorter than the smoothing window keeps its length (2 frames used to raise IndexError)."""
    assert len(smooth(np.array([0.1, 0.9]))) == 2 and len(smooth(np.array([0.4]))) == 1
    video = write_video(tmp_path / "short.mp4", fps=10, seconds=seconds, size=(64, 48))
    evidence = TOOL(ctx, video, query="a red square", k=3)
    assert len(evidence) >= 1 and all(
        0.0 <= s < e <= seconds + 1e-6 for s, e in zip(evidence.start, evidence.end, strict=True)
    )


def test_library_search_reads_the_agents_own_frame_set(tmp_path: Path, tiny_hub) -> None:
    """A video indexed exact and in keyframe mode answers once, from the set the agent samples:
    keyframe times for a keyframe agent, grid times for an exact one; a bad mode is refused."""
    video = write_video(tmp_path / "v.mp4", fps=10, seconds=8, size=(64, 48), gop=40, noise=30)  # keys 0, 4 s
    store = Store(tmp_path / "s.sqlite")
    exact = ToolContext(hub=tiny_hub, store=store)
    keyframe = ToolContext(hub=tiny_hub, store=store, seek="keyframe")
    exact.index.add(video)
    keyframe.index.add(video, seek="keyframe")
    found = {
        name: {row["data"]["best_t"] for row in search_library(c, "a frame", k=20).to_records()}
        for name, c in (("exact", exact), ("keyframe", keyframe))
    }
    assert found["keyframe"] <= {0.0, 4.0}
    assert found["exact"] and not found["exact"] & {0.0, 4.0}  # frames at 0.5, 1.5, ... s
    with pytest.raises(ValueError, match="seek must be one of"):
        ToolContext(hub=tiny_hub, store=store, seek="nearest")
