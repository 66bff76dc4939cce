"""Test doubles: stand-ins for the models, so tests script what they would say."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from vidagent.models.llm import Generation, Message, OptionScores


class ScriptedChat:
    """A chat model that replies from a script: the planner double for graph tests.

    ``plans`` are returned in order by ``generate`` calls that pass a JSON schema (strings
    are returned verbatim, so tests can script invalid output); ``answers`` by the others.
    ``choice`` is the option index ``score_options`` prefers. Every prompt is recorded.
    """

    name = "scripted"
    grammar_patterns = True  # it plays a local, grammar-constrained planner: it is given the full schema

    def __init__(
        self, plans: list[Any] | None = None, answers: list[str] | None = None, choice: int = 0
    ) -> None:
        self.plans = list(plans or [])
        self.answers = list(answers or [])
        self.choice = choice
        self.prompts: list[list[Message]] = []
        self.schemas: list[dict[str, Any] | None] = []  # the schema of each generate call

    def generate(
        self, messages: list[Message], *, json_schema: dict[str, Any] | None = None, max_new_tokens: int = 256
    ) -> Generation:
        self.prompts.append(messages)
        self.schemas.append(json_schema)
        queue = self.plans if json_schema is not None else self.answers
        reply = (
            queue.pop(0) if queue else ('{"thought": "", "calls": [], "done": true}' if json_schema else "")
        )
        text = reply if isinstance(reply, str) else json.dumps(reply)
        return Generation(text=text, prompt_tokens=10, completion_tokens=len(text.split()), mean_logprob=-0.1)

    def score_options(self, messages: list[Message], options: list[str]) -> OptionScores:
        self.prompts.append(messages)
        scores = np.full(len(options), -5.0)
        scores[min(self.choice, len(options) - 1)] = -0.5
        return OptionScores(logprobs=scores, tokens=10 * len(options))
