"""Free-text arguments in the question's own words: lemmas, the check, the grammar's pattern."""

from __future__ import annotations

import re

import pytest

from vidagent.core.question_words import (
    Vocabulary,
    check_arguments,
    content_words,
    lemma,
    question_arguments,
)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("cars", "car"),
        ("boxes", "box"),
        ("buses", "bus"),
        ("puppies", "puppy"),
        ("running", "run"),
        ("stopped", "stop"),
        ("danced", "dance"),
        ("taking", "take"),
        ("falling", "fall"),
        ("people", "person"),
        ("knives", "knife"),
        ("geese", "goose"),
        ("women", "woman"),
        ("runner's", "runner"),
        ("Helmet", "helmet"),
    ],
)
def test_inflections_share_a_lemma(a: str, b: str) -> None:
    assert lemma(a) == lemma(b)


@pytest.mark.parametrize(("a", "b"), [("car", "cat"), ("bus", "but"), ("sign", "sing"), ("red", "read")])
def test_different_words_keep_different_lemmas(a: str, b: str) -> None:
    assert lemma(a) != lemma(b)


def test_the_questions_words_pass_and_invented_ones_are_named() -> None:
    vocabulary = Vocabulary.of("When does the woman pick up the phone?")
    assert vocabulary.foreign("woman pick up the phone") == []
    assert vocabulary.foreign("the woman picks up a phone") == []  # lemmas and function words
    assert vocabulary.foreign("a dog running") == ["dog", "running"]
    assert vocabulary.foreign("Woman, phone.") == []


def test_options_and_earlier_turns_count_as_the_question() -> None:
    vocabulary = Vocabulary.of(
        "How many are there?",
        options=["two", "three"],
        history=[{"role": "user", "content": "Are there sheep in the field?"}],
    )
    assert vocabulary.foreign("sheep.") == []
    assert vocabulary.foreign("goat.") == ["goat"]


def test_check_arguments_only_reads_the_free_text_fields() -> None:
    vocabulary = Vocabulary.of("How many cars drive past?")
    kinds = {"prompt": "objects"}
    assert check_arguments("detect_track", {"prompt": "car.", "fps": 2.0}, kinds, vocabulary) == []
    [problem] = check_arguments("detect_track", {"prompt": "truck. bus."}, kinds, vocabulary)
    assert "detect_track.prompt" in problem and "'truck'" in problem and "'bus'" in problem


@pytest.mark.parametrize(
    ("kind", "text", "ok"),
    [
        ("phrase", "the helmet", True),
        ("phrase", "What colour is the helmet?", True),
        ("phrase", "helmet, colour", True),
        ("phrase", "the red helmet", False),
        ("phrase", "", False),
        ("objects", "helmet.", True),
        ("objects", "helmet. cyclist.", True),
        ("objects", "helmet", False),  # GroundingDINO phrases end with '.'
        ("objects", "dog.", False),
    ],
)
def test_the_grammar_pattern_allows_exactly_the_question_words(kind: str, text: str, ok: bool) -> None:
    vocabulary = Vocabulary.of("What colour is the helmet the cyclist wears?")
    assert bool(re.fullmatch(vocabulary.pattern(kind), text)) is ok


def test_patterns_escape_hyphens_and_use_plain_groups() -> None:
    pattern = Vocabulary.of("Show me the close-up of the cake.").pattern("phrase")
    assert "(?" not in pattern and "\\" not in pattern  # llama.cpp's converter reads plain groups only
    assert re.fullmatch(pattern, "close-up of the cake")
    assert not re.fullmatch(pattern, "closeXup")


def test_time_mentions() -> None:
    assert Vocabulary.of("What happens in the last twenty seconds?").mentions_time
    assert Vocabulary.of("What is said at 1:30?").mentions_time
    assert not Vocabulary.of("Is there a dog?").mentions_time


def test_fallback_arguments_come_from_the_question() -> None:
    question = "When does the woman pick up the phone?"
    assert content_words(question) == ["woman", "pick", "up", "phone"]
    assert question_arguments("retrieve", {"query": "phrase"}, question) == {"query": "woman pick up phone"}
    assert question_arguments("detect_track", {"prompt": "objects"}, "How many cars drive past?") == {
        "prompt": "cars drive past."
    }
    assert question_arguments("look", {"question": "phrase"}, "What colour is it?") == {
        "question": "What colour is it?"
    }
    assert question_arguments("caption", {}, "Describe it.") == {}
    for args in (question_arguments("retrieve", {"query": "phrase"}, question),):
        assert Vocabulary.of(question).foreign(args["query"]) == []
