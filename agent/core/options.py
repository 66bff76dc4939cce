"""Option letters: how a multiple-choice option is named (A, B, C, ...) and shown (``A. text``)."""

from __future__ import annotations

from collections.abc import Sequence

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def option_letter(i: int) -> str:
    """The letter of option ``i`` (0 is A)."""
    return chr(ord("A") + i)


def lettered(options: Sequence[str] | None) -> list[str]:
    """Each option after its letter, as prompts show them: ``["A. red", "B. blue"]`` (no options: ``[]``)."""
    return [f"{option_letter(i)}. {text}" for i, text in enumerate(options or ())]
