"""Option letters: one naming of multiple-choice options for prompts, scoring and parsing."""

from __future__ import annotations

from vidagent.core.options import LETTERS, lettered, option_letter


def test_option_letters_run_a_to_z() -> None:
    assert [option_letter(i) for i in range(len(LETTERS))] == list(LETTERS)
    assert LETTERS == "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def test_lettered_options_as_prompts_show_them() -> None:
    assert lettered(["red", "a blue car"]) == ["A. red", "B. a blue car"]
    assert lettered(("x",)) == ["A. x"]
    assert lettered([]) == [] and lettered(None) == []
