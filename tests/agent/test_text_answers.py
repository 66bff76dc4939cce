"""Answers read off speech and on-screen text rows (vidagent.agent.text_answers): rows written by hand, a
scripted LLM for the multiple choice among candidates; no model runs here."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from vidagent.agent.text_answers import text_answer, text_question
from vidagent.models.llm import OptionScores


def said(start: float, end: float, text: str, score: float = 0.7) -> dict[str, Any]:
    return {"tool": "transcribe", "start": start, "end": end, "text": text, "score": score}


def shown(start: float, end: float, text: str, score: float = 0.95) -> dict[str, Any]:
    return {"tool": "read_text", "start": start, "end": end, "text": text, "score": score}


@pytest.mark.parametrize(
    ("question", "kind", "answer", "link"),
    [
        ("Which city does the speaker mention?", "words", {"speech"}, set()),
        ("What does the announcer say the platform number is?", "number", {"speech"}, set()),
        ("Which gate number is shown on screen?", "number", {"screen"}, set()),
        (
            "Which platform does the board show for the city the speaker mentions?",
            "number",
            {"screen"},
            {"speech"},
        ),
        ("What gate does the sign on screen show?", "number", {"screen"}, set()),
        ("What does the sign on screen say?", "words", {"screen"}, set()),  # a sign "says" too
        ("What word is written on the board?", "words", {"screen"}, set()),
        ("What colour is the lost umbrella, according to the speaker?", "colour", {"speech"}, set()),
        ("When is GATE 51 shown?", "when", {"screen"}, set()),
        ("At what point in the clip is the bicycle mentioned?", "when", {"speech"}, set()),
        ("During which seconds is INFORMATION written on screen?", "when", {"screen"}, set()),
        ("Does the speaker mention Boston?", "yes_no", {"speech"}, set()),
        (
            "The speaker names a destination; what platform does the screen give for it?",
            "number",
            {"screen"},
            {"speech"},
        ),
        (
            "Which city does the board list next to the platform the announcer mentions?",
            "words",
            {"screen"},
            {"speech"},
        ),
        ("Which city is both spoken aloud and shown on screen?", "words", {"speech", "screen"}, set()),
    ],
)
def test_what_a_question_asks_for_and_where_the_answer_is(
    question: str, kind: str, answer: set[str], link: set[str]
) -> None:
    asked = text_question(question)
    assert (asked.kind, set(asked.answer_sources), set(asked.link_sources), asked.named) == (
        kind,
        answer,
        link,
        True,
    )


def test_a_question_naming_no_source_asks_both_and_needs_its_words_in_a_row() -> None:
    asked = text_question("Where is the next train going?")
    assert not asked.named and set(asked.answer_sources) == {"speech", "screen"}
    rows = [said(1.0, 4.6, "The next train for Oxford leaves from platform four.")]
    answer = text_answer("Where is the next train going?", rows, None)
    assert (
        answer is not None and answer.text.startswith("Oxford: said at 1.0-4.6 s [0]") and answer.cited == [0]
    )
    # a visual question that shares a word or none with the speech is not answered from it
    assert text_answer("What is the person riding?", rows, None) is None
    assert text_answer("When does the train arrive?", rows, None) is None  # when: only if a source is named


def test_what_is_said_ignores_the_sign_and_what_is_shown_ignores_the_speech() -> None:
    rows = [said(0.3, 3.2, "The next train for Boston leaves in a few minutes."), shown(0.0, 6.0, "MADRID")]
    assert text_answer("Which city does the speaker mention?", rows, None).text.startswith(
        "Boston: said at 0.3-3.2 s"
    )
    assert text_answer("Which city is shown on screen?", rows, None).text.startswith(
        "MADRID: shown at 0.0-6.0 s [1]"
    )


def test_numbers_and_colours_are_read_as_such() -> None:
    rows = [said(2.0, 4.0, "Please proceed to gate fifty-two."), said(5.0, 6.0, "A red umbrella was found.")]
    assert text_answer("Which gate number does the speaker give?", rows, None).text.startswith(
        "52: said at 2.0-4.0"
    )
    assert text_answer("What colour is the umbrella, according to the speaker?", rows, None).text.startswith(
        "red"
    )
    assert text_answer(
        "What gate number is written on the sign?", [shown(1.0, 5.0, "GATE15")], None
    ).text.startswith("15")


def test_when_answers_with_the_span_of_the_row_that_names_it() -> None:
    rows = [
        said(0.5, 2.0, "Thank you for travelling with us."),
        said(4.0, 7.3, "The train to Seattle is ready."),
        shown(9.4, 11.4, "GATE 51"),
        shown(1.0, 3.0, "GATE 12"),
    ]
    answer = text_answer("At what time is Seattle mentioned in the audio?", rows, None)
    assert answer.text.startswith("At 4.0-7.3 s: said at 4.0-7.3 s [1]") and answer.cited == [1]
    assert text_answer("When is GATE 51 shown?", rows, None).cited == [2]
    assert (
        text_answer("When is the word EXIT shown?", rows, None) is None
    )  # nothing names it: the LLM answers


def test_questions_linking_the_two_sources() -> None:
    rows = [
        said(3.0, 5.9, "The service to Seattle is cancelled today."),
        shown(0.0, 12.0, "2 MADRID"),
        shown(0.0, 12.0, "4 SEATTLE"),
        shown(0.0, 12.0, "10 CHICAGO"),
    ]
    answer = text_answer(
        "The speaker names a destination; what platform number does the screen give for it?", rows, None
    )
    assert answer.text.startswith("4: shown") and answer.cited == [2]
    rows = [
        said(4.8, 7.2, "The train on platform 4 is delayed."),
        shown(0.0, 8.0, "5BRISTOL"),
        shown(0.0, 8.0, "4TORONTO"),
    ]  # OCR ran the number and the name together
    answer = text_answer(
        "Which city does the board list next to the platform the announcer mentions?", rows, None
    )
    assert answer.cited == [2] and "TORONTO" in answer.text.split(":")[0]


def test_both_said_and_shown_prefers_the_spoken_form() -> None:
    rows = [
        said(0.7, 3.2, "Please stand behind the yellow line."),
        said(5.7, 8.5, "Trains to Seattle and Boston are running late."),
        shown(0.0, 4.0, "ToBerlin"),
        shown(0.0, 5.0, "ToSeattle"),
    ]
    answer = text_answer("Which city is both spoken aloud and shown on screen?", rows, None)
    assert answer.text.startswith("Seattle: said at 5.7-8.5 s [1]")
    same = "Is the city on screen the same one the speaker names?"
    assert text_answer(same, [*rows[:2], shown(0.0, 5.0, "SEATTLE")], None).text.startswith("Yes")
    assert text_answer(
        same, [said(1.0, 2.0, "The next train for Dublin."), shown(0.0, 5.0, "PARIS")], None
    ).text.startswith("No")


def test_yes_no_checks_the_questions_words() -> None:
    rows = [said(1.0, 3.0, "Would Laura please come to the information desk?")]
    assert text_answer("Does the speaker mention Laura?", rows, None).text.startswith(
        "Yes: said at 1.0-3.0 s [0]"
    )
    assert text_answer("Does the speaker mention Peter?", rows, None).text.startswith("No")


class PrefersValue:
    """An LLM double whose option scores follow the value, plus a pull towards option A (position bias)."""

    def __init__(self, liked: str, a_bias: float) -> None:
        self.liked, self.a_bias = liked, a_bias

    def score_options(self, messages, options):
        scores = np.array(
            [
                (-0.5 if o == self.liked else -2.0) + (self.a_bias if i == 0 else 0.0)
                for i, o in enumerate(options)
            ]
        )
        return OptionScores(logprobs=scores, tokens=10 * len(options))


def test_several_candidates_are_a_multiple_choice_for_the_llm_asked_in_both_orders() -> None:
    rows = [
        said(1.0, 3.0, "Calling passenger David, your taxi is waiting."),
        said(4.0, 6.0, "The next train for Boston leaves soon.", score=0.6),
    ]
    seen: list[tuple[list[int], list[str]]] = []

    def messages_for(text_rows, values):
        seen.append(([r.id for r in text_rows], list(values)))
        return [{"role": "user", "content": "which?"}]

    answer = text_answer(
        "Which city does the speaker mention?", rows, PrefersValue("Boston", 1.0), messages_for
    )
    # the candidates and the rows holding them, in both orders
    assert seen == [([0, 1], ["David", "Boston"]), ([1, 0], ["Boston", "David"])]
    assert (
        answer.text.startswith("Boston: said at 4.0-6.0 s [1]")
        and answer.cited == [1]
        and answer.tokens == 40
    )
    assert 0.5 < answer.confidence <= 1.0  # the LLM's probability of its choice
    # a pull towards option A that outweighs what the model knows would pick David in one order only
    assert text_answer(
        "Which city does the speaker mention?", rows, PrefersValue("Boston", 1.4), messages_for
    ).text.startswith("Boston")


def test_no_text_rows_no_answer() -> None:
    rows = [{"tool": "retrieve", "start": 0.0, "end": 1.0, "score": 0.3}, said(0.0, 1.0, "   ")]
    assert text_answer("Which city does the speaker mention?", rows, None) is None
    assert text_answer("What word is shown?", [said(0.0, 2.0, "Hello there.")], None) is None


def test_a_value_quotes_the_whole_segment_and_a_time_the_matched_words() -> None:
    row = {
        "tool": "find_text",
        "start": 2.1,
        "end": 2.6,
        "score": 0.9,
        "text": "The next train for Oxford leaves.",
        "data": {"source": "speech", "segment": [1.0, 4.6]},
    }
    assert text_answer("Which city does the speaker mention?", [row], None).text.startswith(
        "Oxford: said at 1.0-4.6 s"
    )
    assert text_answer("When is Oxford said?", [row], None).text.startswith(
        "At 2.1-2.6 s: said at 2.1-2.6 s [0]"
    )


def test_the_ink_colour_of_on_screen_text() -> None:
    def sign(text: str, colour: str) -> dict[str, Any]:
        return {**shown(1.0, 5.0, text), "data": {"colour": colour}}

    rows = [sign("PHARMACY", "yellow"), sign("PARKING", "red")]
    assert text_answer("What word is written in red letters?", rows, None).text.startswith("PARKING: shown")
    assert text_answer("What word is written in yellow?", rows, None).text.startswith("PHARMACY: shown")
    assert text_answer("What colour is the word PARKING written in?", rows, None).text.startswith(
        "red: shown"
    )


def test_a_board_read_as_separate_columns_links_by_its_rows() -> None:
    def cell(text: str, x: float, y: float) -> dict[str, Any]:
        return {**shown(1.0, 11.0, text), "box": [x, y, x + 60.0, y + 20.0]}

    rows = [
        said(2.0, 4.5, "The train on platform five is delayed."),
        cell("2", 10, 40),
        cell("MADRID", 60, 41),
        cell("5", 10, 80),
        cell("BOSTON", 60, 79),
    ]
    question = "The speaker names a platform; which destination is shown on screen for it?"
    answer = text_answer(question, rows, None)  # "five" links to the "5" cell, its row holds BOSTON
    assert answer.text.startswith("BOSTON: shown") and answer.cited == [4]
    rows[0] = said(2.0, 4.5, "The next train for Madrid is on time.")
    answer = text_answer("Which platform does the board show for the city the speaker mentions?", rows, None)
    assert answer.text.startswith("2: shown") and answer.cited == [1]
    # OCR joined lower- and upper-case words: "toBoston"
    assert text_answer(
        "What city does the sign on screen show?", [shown(0.0, 5.0, "Nexttrain toBoston")], None
    ).text.startswith("Boston")
