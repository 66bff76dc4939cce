"""Chat model backends for the planner and the answer: local transformers or an OpenAI-compatible API.

Both implement ``ChatModel``:

- ``generate(messages, json_schema=None)``: greedy text; with a schema, the output is
  constrained to it (xgrammar on local models, ``response_format`` on endpoints), so a tool
  call always parses and only names registered tools.
- ``score_options(messages, options)``: multiple choice by scoring each option (log-likelihood
  locally, a constrained single choice with log-probabilities on endpoints), never by parsing
  free text and never a random pick.
"""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from vidagent.core.options import lettered, option_letter

Message = dict[str, str]
GRAMMAR_CACHE = 64  # compiled plan grammars kept per model


@dataclass(frozen=True)
class Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int
    mean_logprob: float | None = None  # of the generated tokens; exp() of it is a confidence


@dataclass(frozen=True)
class OptionScores:
    """Per-option log-likelihoods (higher is better) and the implied probabilities."""

    logprobs: np.ndarray
    tokens: int

    @property
    def best(self) -> int:
        return int(np.argmax(self.logprobs))

    @property
    def probabilities(self) -> np.ndarray:
        shifted = np.exp(self.logprobs - self.logprobs.max())
        return shifted / shifted.sum()


class ChatModel(Protocol):
    name: str

    def generate(
        self, messages: list[Message], *, json_schema: dict[str, Any] | None = None, max_new_tokens: int = 256
    ) -> Generation: ...

    def score_options(self, messages: list[Message], options: list[str]) -> OptionScores: ...


class TransformersChat:
    """Any causal LM with a chat template, loaded by the hub (GGUF files included)."""

    grammar_patterns = True  # xgrammar enforces the per-question word patterns of a plan schema

    def __init__(self, model: Any, tokenizer: Any, name: str, *, max_new_tokens: int | None = None) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.token_cap = max_new_tokens  # the profile's cap on every generation, if any
        self._grammars: OrderedDict[str, Any] = OrderedDict()
        self._compiler: Any = None
        self._lock = threading.Lock()  # one generation at a time per model

    def _prompt_ids(self, messages: list[Message]) -> Any:
        ids = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )["input_ids"]
        return ids.to(self.model.device)

    def _grammar(self, schema: dict[str, Any]) -> Any:
        import xgrammar as xgr

        key = json.dumps(schema, sort_keys=True)
        if key in self._grammars:
            self._grammars.move_to_end(key)
        else:
            if self._compiler is None:
                info = xgr.TokenizerInfo.from_huggingface(
                    self.tokenizer, vocab_size=self.model.config.vocab_size
                )
                self._compiler = xgr.GrammarCompiler(info)
            # compiled from the schema as written: property order is the order the model writes
            self._grammars[key] = self._compiler.compile_json_schema(json.dumps(schema), any_whitespace=False)
            if len(self._grammars) > GRAMMAR_CACHE:  # plans get a schema per question
                self._grammars.popitem(last=False)
        return self._grammars[key]

    def generate(
        self, messages: list[Message], *, json_schema: dict[str, Any] | None = None, max_new_tokens: int = 256
    ) -> Generation:
        import torch

        with self._lock, torch.inference_mode():
            ids = self._prompt_ids(messages)
            if self.token_cap is not None:
                max_new_tokens = min(max_new_tokens, self.token_cap)
            kwargs: dict[str, Any] = {"max_new_tokens": max_new_tokens, "do_sample": False}
            if json_schema is not None:
                from xgrammar.contrib.hf import LogitsProcessor

                kwargs["logits_processor"] = [LogitsProcessor(self._grammar(json_schema))]
            pad = (
                self.tokenizer.pad_token_id
                if self.tokenizer.pad_token_id is not None
                else self.tokenizer.eos_token_id
            )
            output = self.model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                pad_token_id=pad,
                return_dict_in_generate=True,
                output_scores=True,
                **kwargs,
            )
            steps = self.model.compute_transition_scores(
                output.sequences, output.scores, normalize_logits=True
            )
        new = output.sequences[0, ids.shape[1] :]
        text = self.tokenizer.decode(new, skip_special_tokens=True)
        finite = steps[0][torch.isfinite(steps[0])]
        return Generation(
            text=text,
            prompt_tokens=int(ids.shape[1]),
            completion_tokens=len(new),
            mean_logprob=float(finite.mean()) if len(finite) else None,
        )

    def score_options(self, messages: list[Message], options: list[str]) -> OptionScores:
        """Mean log-probability of each option's tokens after the prompt (length-normalised)."""
        import torch

        scores = []
        with self._lock, torch.inference_mode():
            prompt = self._prompt_ids(messages)
            tokens = 0
            for text in lettered(options):
                answer = self.tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"].to(
                    prompt.device
                )
                ids = torch.cat([prompt, answer], dim=1)
                logits = self.model(ids).logits[0, prompt.shape[1] - 1 : -1].float()
                logprobs = torch.log_softmax(logits, dim=-1).gather(1, answer[0][:, None])[:, 0]
                scores.append(float(logprobs.mean()))
                tokens += int(ids.shape[1])
        return OptionScores(logprobs=np.array(scores), tokens=tokens)


class OpenAIChat:
    """An OpenAI-compatible endpoint: vLLM, Ollama, llama.cpp server, hosted APIs.

    ``base_url``/``model``/``api_key`` come from the profile's planner options, falling back to
    ``OPENAI_BASE_URL`` / ``VIDAGENT_LLM_MODEL`` / ``OPENAI_API_KEY``.
    """

    def __init__(
        self,
        *,
        model: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 2,
        http_client: Any = None,
    ) -> None:
        import openai

        self.name = model or os.environ.get("VIDAGENT_LLM_MODEL", "")
        if not self.name:
            raise ValueError(
                "the OpenAI-compatible backend needs a model name (profile option or VIDAGENT_LLM_MODEL)"
            )
        self.client = openai.OpenAI(
            base_url=base_url or os.environ.get("OPENAI_BASE_URL"),
            api_key=api_key or os.environ.get("OPENAI_API_KEY") or "not-needed",
            timeout=timeout,
            max_retries=max_retries,
            http_client=http_client,
        )

    def generate(
        self, messages: list[Message], *, json_schema: dict[str, Any] | None = None, max_new_tokens: int = 256
    ) -> Generation:
        kwargs: dict[str, Any] = {"temperature": 0, "max_tokens": max_new_tokens}
        if json_schema is not None:
            kwargs["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "response", "schema": json_schema, "strict": True},
            }
        reply = self.client.chat.completions.create(model=self.name, messages=messages, **kwargs)  # type: ignore[arg-type]
        usage = reply.usage
        return Generation(
            text=reply.choices[0].message.content or "",
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
        )

    def score_options(self, messages: list[Message], options: list[str]) -> OptionScores:
        """A constrained single choice among the option letters, scored by its log-probabilities."""
        letters = [option_letter(i) for i in range(len(options))]
        listing = "\n".join(lettered(options))
        prompt = [*messages, {"role": "user", "content": f"Options:\n{listing}\nReply with the letter only."}]
        schema = {
            "type": "object",
            "properties": {"answer": {"type": "string", "enum": letters}},
            "required": ["answer"],
            "additionalProperties": False,
        }
        reply = self.client.chat.completions.create(
            model=self.name,
            messages=prompt,  # type: ignore[arg-type]
            temperature=0,
            max_tokens=16,
            logprobs=True,
            top_logprobs=min(20, max(len(letters), 5)),
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "choice", "schema": schema, "strict": True},
            },
        )
        choice = reply.choices[0]
        scores = np.full(len(letters), -1e4)
        content = choice.logprobs.content if choice.logprobs else None
        for token in content or []:
            candidates = {t.token.strip().strip('"'): t.logprob for t in token.top_logprobs}
            if any(letter in candidates for letter in letters):
                for i, letter in enumerate(letters):
                    scores[i] = candidates.get(letter, -1e4)
                break
        else:  # no log-probabilities returned: the constrained answer itself, with certainty
            picked = json.loads(choice.message.content or "{}").get("answer")
            if picked not in letters:
                raise ValueError(f"endpoint returned {picked!r}, not one of the option letters")
            scores[letters.index(picked)] = 0.0
        usage = reply.usage
        return OptionScores(logprobs=scores, tokens=(usage.total_tokens if usage else 0))
