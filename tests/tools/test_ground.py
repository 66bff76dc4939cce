"""The ground tool: the trained head when the profile has one, else the zero-shot CLIP fallback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

import vidagent.grounding.head as ground_head
from vidagent.agent.registry import ToolRegistry, discover_tools
from vidagent.core.errors import SpanOutOfRange
from vidagent.grounding.features import ClipFeatureMemory
from vidagent.grounding.head import GroundConfig, GroundHead, HeadMismatch
from vidagent.grounding.synthetic import Event, SynthSpec, write_video
from vidagent.media.store import Store
from vidagent.models.hub import ModelHub
from vidagent.models.profile import parse_profile
from vidagent.models.tiny import ensure_tiny
from vidagent.tools import ground as ground_tool
from vidagent.tools.base import ToolContext
from vidagent.tools.ground import CURVE_POINTS, TOOL


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VIDAGENT_CACHE", str(root))
        ensure_tiny("clip")
        yield root


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 s: a red circle during 4-8 s, a blue square during 12-18 s."""
    spec = SynthSpec(seconds=20.0, fps=2.0, size=48)
    events = [
        Event("red", "circle", 4.0, 8.0, 0.5, 0.5, 0.25, 0.0, 0.0),
        Event("blue", "square", 12.0, 18.0, 0.5, 0.5, 0.25, 0.0, 0.0),
    ]
    path = tmp_path_factory.mktemp("videos") / "shapes.mp4"
    write_video(path, events, spec, np.random.default_rng(0))
    return path


def _context(roles: dict, tmp_path: Path) -> ToolContext:
    return ToolContext(
        hub=ModelHub(parse_profile({"name": "t", "roles": roles})), store=Store(tmp_path / "s.sqlite")
    )


def _head(path: Path, **overrides) -> Path:
    cfg = {
        "vision_width": 32,
        "text_width": 32,
        "num_layers": 2,
        "hidden": 32,
        "heads": 4,
        "clip_model": "tiny/clip",
        **overrides,
    }
    GroundHead(GroundConfig(**cfg)).save_pretrained(path)
    return path


def test_registered_for_profiles_with_a_clip() -> None:
    assert discover_tools()["ground"] is TOOL
    assert "ground" in ToolRegistry.for_roles({"clip"}) and "ground" not in ToolRegistry.for_roles(
        {"planner"}
    )
    assert set(TOOL.json_schema()["properties"]) == {"query", "span", "k"}


def test_zero_shot_without_a_head(cache: Path, video: Path, tmp_path: Path) -> None:
    ctx = _context({"clip": "tiny/clip"}, tmp_path)
    evidence = TOOL(ctx, video, query="a red circle", k=3)
    assert 1 <= len(evidence) <= 3
    assert set(evidence.tool) == {"ground"} and all(d["method"] == "zero_shot" for d in evidence.data)
    assert (
        (evidence.start >= 0).all()
        and (evidence.end <= 20.0).all()
        and (evidence.end >= evidence.start).all()
    )
    assert (np.diff(evidence.score) <= 0).all()
    top = evidence.data[0]
    assert (
        1 <= len(top["saliency"]) <= CURVE_POINTS and min(top["saliency"]) >= 0 and max(top["saliency"]) <= 1
    )
    assert top["saliency_start"] == 0.0 and top["saliency_step"] > 0
    assert len(evidence.to_prompt()) < 1200
    inside = TOOL(ctx, video, query="a red circle", span=(10.0, 16.0))
    assert (inside.start >= 10.0).all() and (inside.end <= 16.0).all()


def test_head_grounds_with_features_computed_once_per_video(
    cache: Path,
    video: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []
    real = ground_head.vision_features

    def counting(encoder, frames, config):
        calls.append(len(frames))
        return real(encoder, frames, config)

    monkeypatch.setattr(ground_head, "vision_features", counting)
    ctx = _context({"clip": "tiny/clip", "ground_head": str(_head(tmp_path / "head"))}, tmp_path)
    evidence = TOOL(ctx, video, query="a red circle", k=4)
    assert 1 <= len(evidence) <= 4 and all(d["method"] == "head" for d in evidence.data)
    assert (
        (evidence.start >= 0).all() and (evidence.end <= 20.0).all() and (evidence.end > evidence.start).all()
    )
    assert ((evidence.score > 0) & (evidence.score < 1)).all() and (np.diff(evidence.score) <= 0).all()
    assert evidence.video[0] == ctx.index.video_id(video)
    assert len(evidence.data[0]["saliency"]) == 20 and evidence.data[0]["saliency_step"] == 1.0
    assert calls == [10]  # 10 clips of 2 s, one vision pass

    TOOL(ctx, video, query="a blue square")  # another query: features reused
    TOOL(ctx, video, query="a red circle", k=4)  # same call: the stored result
    assert calls == [10]
    ctx.shared("ground.clip_features", ClipFeatureMemory).clear()
    inside = TOOL(ctx, video, query="a blue square", span=(11.0, 17.0))
    assert calls == [10, 4]  # clips 5..8 (10-18 s) only
    assert (inside.start >= 11.0).all() and (inside.end <= 17.0).all()
    assert inside.data[0]["saliency_start"] == 11.0
    with pytest.raises(SpanOutOfRange):
        TOOL(ctx, video, query="a blue square", span=(30.0, 40.0))


def test_a_head_for_another_clip_is_refused(cache: Path, video: Path, tmp_path: Path) -> None:
    ctx = _context(
        {"clip": "tiny/clip", "ground_head": str(_head(tmp_path / "big", vision_width=768))}, tmp_path
    )
    with pytest.raises(HeadMismatch, match="vision width 768 != 32"):
        TOOL(ctx, video, query="a red circle")


def test_curve_helper() -> None:
    curve = ground_tool._curve(np.array([1.0, 3.0, 5.0]), np.array([0.0, 2.0, 1.0]), 0.0, 6.0)
    assert curve["saliency"] == [0.0, 0.29, 0.86, 1.0, 0.71, 0.57]  # at 0.5, 1.5, ... s, scaled 0-1
    assert curve["saliency_step"] == 1.0
