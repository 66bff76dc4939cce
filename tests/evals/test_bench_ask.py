"""The ask benchmark's 7B case: the planner it builds is Qwen2.5-7B's size, and it runs under the agent's grammar."""

from __future__ import annotations

import json

import torch

from vidagent.evals.benchmarks.ask import _Counting, planner_speed, random_planner

SMALL = {
    "vocab_size": 49152,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 1,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
}


def test_the_random_planner_has_qwen25_7b_parameters() -> None:
    chat = random_planner("meta", torch.bfloat16)  # shapes only: nothing allocated
    assert sum(p.numel() for p in chat.model.parameters()) == 7_615_616_512  # Qwen2.5-7B-Instruct's count
    assert chat.model.config.num_hidden_layers == 28 and chat.model.dtype == torch.bfloat16


def test_a_shrunk_planner_measures_and_plans_under_the_json_grammar() -> None:
    chat = random_planner("cpu", torch.float32, **SMALL)
    prefill, decode = planner_speed(chat, "cpu", prompt_tokens=16, new_tokens=4, repeats=1)
    assert prefill > 0 and decode >= 0
    counting = _Counting(chat)
    schema = {
        "type": "object",
        "properties": {"tool": {"type": "string", "enum": ["retrieve", "look"]}},
        "required": ["tool"],
    }
    reply = counting.generate(
        [{"role": "user", "content": "Which tool?"}], json_schema=schema, max_new_tokens=16
    )
    assert json.loads(reply.text)["tool"] in ("retrieve", "look")  # random weights, still a valid plan
    assert counting.calls == 1 and counting.generated_tokens == reply.completion_tokens > 0
