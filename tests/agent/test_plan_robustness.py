"""Nothing a planner replies escapes the plan parser or ``validate()``, and a junk-replying LLM still
gets an answer with a finite confidence (fake tools, no model runs here)."""

from __future__ import annotations

import contextlib
import json
import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.agent.test_graph import REGISTRY, make_agent
from tests.doubles import ScriptedChat
from vidagent.agent.graph import AgentGraph
from vidagent.agent.registry import CallError
from vidagent.media.sample_videos import sample_video
from vidagent.media.store import Store
from vidagent.models.llm import Generation, OptionScores
from vidagent.tools.base import ToolContext

NUMBERS = st.one_of(
    st.integers(), st.floats(allow_nan=True, allow_infinity=True)
)  # huge ints: the cases below
JSONISH = st.recursive(
    st.one_of(st.none(), st.booleans(), NUMBERS, st.text(max_size=50), st.sampled_from(list(REGISTRY.tools))),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.one_of(
                st.text(max_size=8),
                st.sampled_from(["tool", "args", "calls", "done", "span", "times", "t", "k", "query"]),
            ),
            inner,
            max_size=4,
        ),
    ),
    max_leaves=20,
)


def graph(tmp_path: Path) -> AgentGraph:
    return AgentGraph(ToolContext(hub=None, store=Store(tmp_path / "s.sqlite")), REGISTRY, ScriptedChat())  # type: ignore[arg-type]


def dumped(value: Any) -> str:
    return json.dumps(value)  # NaN and Infinity come out as the bare words Python's json reads back


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=JSONISH)
def test_no_reply_escapes_the_parser_or_validate(tmp_path: Path, value: Any) -> None:
    agent_graph = graph(tmp_path)
    for text in (
        dumped(value),
        dumped({"calls": [value], "done": False}),
        dumped({"calls": [{"tool": "retrieve", "args": value}]}),
    ):
        calls, done, thought, problems = agent_graph._parse_plan(text)
        assert isinstance(problems, list) and isinstance(done, bool) and isinstance(thought, str)
        for call in calls:  # what passes is sane
            assert all(not isinstance(v, float) or math.isfinite(v) for v in call.args.values())
    with contextlib.suppress(CallError):
        REGISTRY.validate(value)


@pytest.mark.parametrize(
    "text",
    [
        "[" * 10_000 + "]" * 10_000,  # RecursionError in json
        '{"calls": ' + "[" * 5_000 + "]" * 5_000 + "}",
        '{"calls": [{"tool": "retrieve", "args": {"query": "x", "k": '
        + "9" * 5_000
        + "}}]}",  # past the digit limit
        '{"calls": [{"tool": "look", "args": {"span": [NaN, 2]}}]}',
        '{"calls": [{"tool": "look", "args": {"span": [1, Infinity]}}]}',
        '{"calls": [{"tool": "look", "args": {"span": [5, 2]}}]}',  # reversed
        '{"calls": [{"tool": "look", "args": {"span": [-3, 2]}}]}',  # negative
        '{"calls": ['
        + ",".join(['{"tool": "retrieve", "args": {"query": "a"}}'] * 50)
        + "]}",  # past maxItems
        '{"calls": [{"tool": ' + "[" * 3_000 + "]" * 3_000 + "}]}",
        "x" * 100_000,
    ],
)
def test_hostile_replies_are_problems_not_exceptions(tmp_path: Path, text: str) -> None:
    calls, _, _, problems = graph(tmp_path)._parse_plan(text)
    assert not calls and problems


def test_validate_refuses_what_the_schema_allows_but_time_does_not() -> None:
    for args in ({"span": [float("nan"), 2.0]}, {"span": [3.0, 1.0]}, {"span": [-1.0, 1.0]}):
        with pytest.raises(CallError, match=r"span|finite"):
            REGISTRY.validate({"tool": "look", "args": args})
    deep: Any = 1
    for _ in range(5_000):
        deep = [deep]
    with pytest.raises(CallError):
        REGISTRY.validate({"tool": deep})
    with pytest.raises(CallError):
        REGISTRY.validate({"tool": "retrieve", "args": {"query": deep}})
    with pytest.raises(CallError):
        REGISTRY.validate({"tool": 10**5000})


class JunkChat:
    """An LLM that replies junk: random text, plans that are not plans, NaN log-probabilities."""

    name = "junk"
    grammar_patterns = False

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def generate(self, messages, *, json_schema=None, max_new_tokens=256) -> Generation:
        junk = self.rng.choice(
            [
                "",
                "not json",
                "[" * 3000,
                '{"calls": "retrieve"}',
                '{"calls": [{"tool": "nope"}]}',
                "{" + "9" * 5000 + "}",
                '{"calls": [{"tool": "look", "args": {"span": [9, 1]}}]}',
                "NaN",
                '{"done": "maybe"}',
                "".join(chr(self.rng.randrange(32, 0x2FFF)) for _ in range(200)),
            ]
        )
        return Generation(
            text=junk,
            prompt_tokens=5,
            completion_tokens=5,
            mean_logprob=self.rng.choice([float("nan"), float("-inf"), None, -0.5]),
        )

    def score_options(self, messages, options) -> OptionScores:
        values = [self.rng.choice([float("nan"), float("-inf"), -1.0, 0.0]) for _ in options]
        return OptionScores(logprobs=np.array(values), tokens=len(options))


def test_a_junk_llm_always_gets_an_answer_with_a_finite_confidence(tmp_path: Path) -> None:
    video = sample_video("bikes")
    answered = 0
    for seed in range(100):
        (tmp_path / str(seed)).mkdir()
        agent = make_agent(tmp_path / str(seed), JunkChat(seed))  # type: ignore[arg-type]
        options = ["a", "b", "c"] if seed % 3 == 0 else None
        answer = agent.ask(video, "When does the cyclist appear?", options)
        assert answer.text and math.isfinite(answer.confidence) and 0.0 <= answer.confidence <= 1.0
        answered += 1
    assert answered == 100
