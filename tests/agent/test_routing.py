"""Every question kind routes to its real tool (tiny models) through the planner's validated calls.

The planner is scripted (a question kind -> the call a good planner makes); the tools, the
registry, the schema validation, the store and the answer step are the real ones. Tiny random
weights: this proves the routing and plumbing, not the answers.
"""

from __future__ import annotations

import pytest

from tests.doubles import ScriptedChat
from vidagent.agent.api import VideoAgent
from vidagent.agent.graph import Budget
from vidagent.agent.registry import ToolRegistry
from vidagent.media.sample_videos import sample_video
from vidagent.media.store import Store
from vidagent.tools.base import ToolContext

ROUTES = {
    "When does the rabbit wake up?": ("ground", {"query": "the rabbit wakes up", "k": 2}),
    "Which moment shows the sky?": ("retrieve", {"query": "the sky", "k": 2}),
    "How many rabbits are there?": ("detect_track", {"prompt": "rabbit.", "fps": 1}),
    "Does the rabbit get bigger?": (
        "segment",
        {"box": [100, 100, 400, 400], "t": 1.0, "span": [1.0, 2.0], "fps": 1},
    ),
    "What does the sign say?": ("read_text", {"fps": 0.5}),
    "What is said in the video?": ("transcribe", {}),
    "What happens in the video?": ("caption", {"span": [0, 5], "frames": 2}),
    "What colour is the rabbit?": (
        "look",
        {"question": "What colour is the rabbit?", "span": [1, 3], "frames": 2},
    ),
}


@pytest.fixture(scope="module")
def agent_parts(tiny_hub, tmp_path_factory: pytest.TempPathFactory) -> tuple[ToolContext, ToolRegistry]:
    ctx = ToolContext(hub=tiny_hub, store=Store(tmp_path_factory.mktemp("routing") / "s.sqlite"))
    registry = ToolRegistry.for_roles(set(tiny_hub.profile.roles))
    return ctx, registry


def test_the_tiny_profile_provides_every_tool(agent_parts: tuple[ToolContext, ToolRegistry]) -> None:
    _, registry = agent_parts
    assert {tool for tool, _ in ROUTES.values()} <= set(registry.tools)


@pytest.mark.parametrize("question", list(ROUTES))
def test_question_kind_routes_to_its_tool(
    question: str, agent_parts: tuple[ToolContext, ToolRegistry]
) -> None:
    ctx, registry = agent_parts
    tool, args = ROUTES[question]
    plan = {"thought": "route", "calls": [{"tool": tool, "args": args}], "done": True}
    # without find_text there is no recall step (tested in test_graph): only the planner's call runs
    registry = ToolRegistry({name: spec for name, spec in registry.tools.items() if name != "find_text"})
    agent = VideoAgent(
        ctx,
        ScriptedChat(plans=[plan], answers=["an answer"]),
        registry=registry,
        budget=Budget(max_steps=2, tool_timeout=300),
    )
    answer = agent.ask(sample_video("bigbuckbunny"), question)
    results = [e for e in answer.trace if e["type"] == "tool_result"]
    assert [r["tool"] for r in results] == [tool]
    assert "error" not in results[0], results[0].get("error")
    evidence = agent.evidence(answer.session)
    assert set(evidence.tool) <= {tool}  # empty is fine (tiny detectors find nothing), wrong tool is not
    assert answer.text == "an answer"
