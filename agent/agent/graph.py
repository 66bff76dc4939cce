"""The agent's LangGraph: recall -> plan -> act -> reflect -> (plan again | answer).

``recall`` first looks the question up in what the video says and shows (``find_text`` over
its transcript and on-screen text rows: stored by ``vidagent index``, or read on the spot for
a clip of at most ``Budget.read_texts_up_to`` seconds), so a question about speech or text has
that evidence whatever the planner then calls; it does not count as a planner step.

State is JSON-friendly so LangGraph's SQLite checkpointer can persist chat sessions: evidence
is a list of Evidence records (row ids = positions in that list, stable because the reducer
only appends), the trace is a list of dicts. Every node emits events through LangGraph's
stream writer: ``plan``, ``tool_call``, ``tool_result``, ``answer`` (and ``error``).

How a plan is asked for (``plan``):
- the worked examples nearest to the question (``vidagent.agent.exemplars``: chosen with a sentence
  embedder, among those calling the question's candidate tools) are shown as earlier turns;
- the reply is decoded under a JSON schema built for this question (``ToolRegistry.plan_schema``):
  only the candidate tools, free-text arguments in the question's own words
  (``vidagent.core.question_words``), no time arguments when neither the question nor the evidence
  names a time, at most two calls in a first step.

Robustness rules:
- the planner's output is validated (schema and the question's words, whatever the backend);
  invalid output is retried with the problem explained, then the fallback scores the tool menu
  (the candidates) like the options of a multiple-choice question and runs the best tool whose
  arguments the question alone can fill (after retrieve, a look at the best spans), recorded in
  the trace with the scores;
- each tool call runs in a thread with a timeout; a failing call becomes an error entry the
  planner sees next step, never an exception in the graph;
- steps, wall time, tool calls, frames looked at and LLM tokens are budgeted; when one runs
  out the agent answers with what it has and says which budget ran out.
"""

from __future__ import annotations

import json
import math
import operator
import re
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypedDict

import numpy as np
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph

from vidagent.agent.exemplars import ExemplarSelector, Selection
from vidagent.agent.registry import CallError, ToolCall, ToolRegistry
from vidagent.agent.text_answers import text_answer, text_question
from vidagent.core.errors import VidagentError
from vidagent.core.evidence import Evidence, numbered
from vidagent.core.options import lettered
from vidagent.core.question_words import Vocabulary
from vidagent.models.llm import ChatModel
from vidagent.prompts import Prompt, load_prompt
from vidagent.tools.base import ToolContext

EVIDENCE_IN_PROMPT = 15
MAX_PLAN_CHARS = 20_000  # a plan is a few hundred characters; PLAN_TOKENS bounds generated ones
PLAN_TOKENS = 160  # a plan of up to three calls fits in well under this
# calls per plan: a first step asks one thing or two independent ones (a small model given room for
# three repeats its call); later steps may look at several spans
FIRST_STEP_CALLS, LATER_STEP_CALLS = 2, 3


@dataclass(frozen=True)
class Budget:
    """Limits of one question. Whichever runs out first ends the loop."""

    max_steps: int = 4
    max_seconds: float = 120.0
    max_tool_calls: int = 12
    max_frames: int = 64  # frames handed to the VLM by look/caption
    max_tokens: int = 20_000  # planner + answer LLM tokens
    tool_timeout: float = 60.0
    plan_retries: int = 2
    read_texts_up_to: float = 30.0  # recall transcribes and reads an unindexed video up to this long
    recall_rows: int = 4  # text rows recall adds at most


class AgentState(TypedDict, total=False):
    video: str
    duration: float
    question: str
    options: list[str] | None
    history: Annotated[list[dict[str, str]], operator.add]  # chat turns of the session
    evidence: Annotated[list[dict[str, Any]], operator.add]  # Evidence records
    trace: Annotated[list[dict[str, Any]], operator.add]
    pending: list[dict[str, Any]]  # validated calls for `act`
    errors: list[str]  # call problems from the last step, shown to the planner
    done: bool
    fallback_stage: int  # 0 no fallback, 1 retrieve ran, 2 look ran
    used: dict[str, float]  # steps, tool_calls, frames, tokens, started
    stop_reason: str | None
    answer: dict[str, Any] | None


@dataclass(frozen=True)
class PlannerSettings:
    """How plans are asked for (the profile's ``planner.options``: ``exemplars``, ``candidate_tools``)."""

    exemplars: int = 4  # worked examples shown per step (0: none)
    candidates: bool = True  # the plan's grammar allows only the candidate tools

    @classmethod
    def from_options(cls, options: dict[str, Any] | None) -> PlannerSettings:
        options = options or {}
        return cls(
            exemplars=int(options.get("exemplars", cls.exemplars)),
            candidates=bool(options.get("candidate_tools", cls.candidates)),
        )


@dataclass
class AgentGraph:
    """Builds the compiled graph over a tool context, a registry and a chat model."""

    ctx: ToolContext
    registry: ToolRegistry
    llm: ChatModel
    budget: Budget = field(default_factory=Budget)
    exemplars: ExemplarSelector | None = None
    planner: PlannerSettings = field(default_factory=PlannerSettings)

    def compile(self, checkpointer: Any = None) -> Any:
        graph = StateGraph(AgentState)
        graph.add_node("recall", self.recall)
        graph.add_node("plan", self.plan)
        graph.add_node("act", self.act)
        graph.add_node("reflect", self.reflect)
        graph.add_node("answer", self.answer)
        graph.add_edge(START, "recall")
        graph.add_conditional_edges(
            "recall", lambda s: "act" if s.get("pending") else "plan", ["act", "plan"]
        )
        graph.add_conditional_edges(
            "plan", lambda s: "act" if s.get("pending") else "answer", ["act", "answer"]
        )
        graph.add_edge("act", "reflect")
        graph.add_conditional_edges("reflect", self._after_reflect, ["plan", "act", "answer"])
        graph.add_edge("answer", END)
        return graph.compile(checkpointer=checkpointer)

    # --- budget ----------------------------------------------------------------------------
    def _exhausted(self, used: dict[str, float]) -> str | None:
        b = self.budget
        checks = [
            ("steps", used.get("steps", 0) >= b.max_steps),
            ("time", time.time() - used.get("started", time.time()) >= b.max_seconds),
            ("tool calls", used.get("tool_calls", 0) >= b.max_tool_calls),
            ("frames", used.get("frames", 0) >= b.max_frames),
            ("tokens", used.get("tokens", 0) >= b.max_tokens),
        ]
        return next((name for name, hit in checks if hit), None)

    # --- nodes -------------------------------------------------------------------------------
    def recall(self, state: AgentState) -> dict[str, Any]:
        """Look the question up in the video's speech and on-screen text (see the module docstring)."""
        if "find_text" not in self.registry or not state.get("question", "").strip():
            return {"pending": []}
        source = self._recall_source(state)
        if source is None:
            return {"pending": []}
        calls = [
            {
                "tool": "find_text",
                "args": {"query": state["question"][:200], "source": source, "k": self.budget.recall_rows},
                "recall": True,
            }
        ]
        asked = text_question(state["question"])
        if (
            asked.named and source == "any"
        ):  # about what is said or shown: all of that source, not only matches
            named = asked.answer_sources | asked.link_sources
            calls += [
                {"tool": tool, "args": {}, "recall": True}
                for tool, of in (("transcribe", "speech"), ("read_text", "screen"))
                if of in named and tool in self.registry
            ]
        return {"pending": calls}

    def _recall_source(self, state: AgentState) -> str | None:
        """``find_text``'s source for recall: every source when the clip is short enough to read now,
        else only those already stored for it; None when there is nothing to look in."""
        if state.get("duration", 0.0) <= self.budget.read_texts_up_to:
            return "any"
        try:
            video_id = self.ctx.store.content_hash(state["video"])
        except (OSError, VidagentError):
            return None
        stored = {
            row["tool"]
            for row in self.ctx.store.text_rows(video_id=video_id, tools=("transcribe", "read_text"))
        }
        if stored >= {"transcribe", "read_text"}:
            return "any"
        return {"transcribe": "speech", "read_text": "screen"}.get(next(iter(stored), ""))

    def plan(self, state: AgentState) -> dict[str, Any]:
        emit = _writer()
        started = time.perf_counter()
        used = dict(state["used"])
        if reason := self._exhausted(used):
            return {"pending": [], "stop_reason": reason}
        evidence = Evidence.from_rows(_planner_rows(state))
        history = state.get("history", [])[:-1]
        question, options = state["question"], state.get("options")
        vocabulary = Vocabulary.of(question, options, history)
        prompt = load_prompt("planner")
        selection = self._select(question, options, history, evidence)
        messages = self._planner_messages(prompt, selection, state, evidence, history)
        # our own grammar backends take every schema construct; an endpoint gets the plain schema
        # (no patterns, no tuples) and the same checks after decoding
        full_grammar = bool(getattr(self.llm, "grammar_patterns", False))
        first = not len(evidence)
        schema = self.registry.plan_schema(
            FIRST_STEP_CALLS if first else LATER_STEP_CALLS,
            tools=selection.candidates if selection and self.planner.candidates else None,
            vocabulary=vocabulary if full_grammar else None,
            min_calls=1 if first else 0,
            timed=not first or vocabulary.mentions_time,
            distinct=first and full_grammar,
        )
        chosen = selection.trace() if selection else {}
        tokens_before = used.get("tokens", 0)
        all_problems: list[str] = []
        for attempt in range(self.budget.plan_retries + 1):
            generation = self.llm.generate(messages, json_schema=schema, max_new_tokens=PLAN_TOKENS)
            used["tokens"] = used.get("tokens", 0) + generation.prompt_tokens + generation.completion_tokens
            calls, done, thought, problems = self._parse_plan(
                generation.text, vocabulary, FIRST_STEP_CALLS if first else LATER_STEP_CALLS
            )
            calls = _new_calls(calls, state.get("trace", []))
            if not problems:
                if not calls and not done and not len(evidence):
                    problems = ["no calls and no evidence yet: call at least one tool"]
                else:
                    entry = {
                        "node": "plan",
                        "prompt": prompt.tag,
                        "attempt": attempt,
                        "thought": thought,
                        "calls": [c.to_dict() for c in calls],
                        "done": done,
                        "tokens": int(used["tokens"] - tokens_before),
                        "seconds": round(time.perf_counter() - started, 3),
                        **chosen,
                    }
                    emit({"type": "plan", **entry})
                    return {
                        "pending": [c.to_dict() for c in calls],
                        "done": done or not calls,
                        "errors": [],
                        "used": used,
                        "trace": [entry],
                    }
            all_problems.extend(f"attempt {attempt}: {p}" for p in problems)
            messages = [
                *messages,
                {"role": "assistant", "content": generation.text[:500]},
                {
                    "role": "user",
                    "content": "That reply cannot run: "
                    + "; ".join(problems)
                    + ". Reply again with valid JSON.",
                },
            ]
        return self._fallback(state, used, all_problems, emit, prompt.tag, selection, started)

    def first_plan(
        self,
        question: str,
        *,
        video_name: str = "clip.mp4",
        duration: float = 60.0,
        options: list[str] | None = None,
        history: list[dict[str, str]] | None = None,
    ) -> dict[str, Any]:
        """The planner's first step for a question, without running a tool (the routing eval).

        Returns the plan's trace entry: ``calls``, ``done``, the exemplars shown, ``fallback``.
        """
        turns = [*(history or []), {"role": "user", "content": question}]
        state: AgentState = {
            "video": video_name,
            "duration": duration,
            "question": question,
            "options": options,
            "history": turns,
            "evidence": [],
            "trace": [],
            "errors": [],
            "used": {"started": time.time()},
        }
        update = self.plan(state)
        return (
            update["trace"][-1]
            if update.get("trace")
            else {"calls": [], "stop_reason": update.get("stop_reason")}
        )

    def _select(
        self, question: str, options: list[str] | None, history: list[dict[str, str]], evidence: Evidence
    ) -> Selection | None:
        if self.exemplars is None or self.planner.exemplars <= 0:
            return None
        return self.exemplars.select(
            question,
            k=self.planner.exemplars,
            tools=list(self.registry.tools),
            evidence_tools=frozenset(str(t) for t in evidence.tool),
            history=bool(history),
            options=bool(options),
            restrict=self.planner.candidates,
        )

    def _planner_messages(
        self,
        prompt: Prompt,
        selection: Selection | None,
        state: AgentState,
        evidence: Evidence,
        history: list[dict[str, str]],
    ) -> list[dict[str, str]]:
        """System turn, the chosen exemplars as earlier turns (user: its question, assistant: its
        plan), then this question, all rendered with the planner's own templates."""
        messages = [{"role": "system", "content": prompt.render("system", tools=self.registry.describe())}]
        if selection is not None:
            bank = self.exemplars.bank if self.exemplars else None
            for exemplar in selection.exemplars:
                timed_bank = bank if exemplar.uses_times else None  # its video name and duration are shown
                user = prompt.render(
                    "user",
                    video_name=timed_bank.video_name if timed_bank is not None else None,
                    duration=timed_bank.duration if timed_bank is not None else 0.0,
                    history=list(exemplar.history),
                    question=exemplar.question,
                    options=lettered(exemplar.options),
                    evidence=exemplar.evidence,
                    errors=[],
                )
                plan = exemplar.plan_json(order=self._ordered)
                messages += [{"role": "user", "content": user}, {"role": "assistant", "content": plan}]
        messages.append(
            {
                "role": "user",
                "content": prompt.render(
                    "user",
                    video_name=Path(state["video"]).name,
                    duration=state["duration"],
                    history=history,
                    question=state["question"],
                    options=lettered(state.get("options")),
                    evidence=evidence.to_prompt(EVIDENCE_IN_PROMPT) if len(evidence) else None,
                    errors=state.get("errors", []),
                ),
            }
        )
        return messages

    def _ordered(self, call: dict[str, Any]) -> dict[str, Any]:
        return self.registry.ordered(call) if call.get("tool") in self.registry else call

    def _parse_plan(
        self, text: str, vocabulary: Vocabulary | None = None, max_calls: int = LATER_STEP_CALLS
    ) -> tuple[list[ToolCall], bool, str, list[str]]:
        """The calls of a planner reply, or the problems with it; nothing a reply holds escapes
        (deep nesting, numbers past Python's digit limit, NaN and Infinity are problems too)."""
        if not isinstance(text, str) or len(text) > MAX_PLAN_CHARS:
            return [], False, "", [f"the reply must be a JSON object of at most {MAX_PLAN_CHARS} characters"]
        try:
            data = json.loads(text, parse_constant=_no_constant)
        except json.JSONDecodeError as exc:
            return [], False, "", [f"not valid JSON ({exc.msg})"]
        except (ValueError, RecursionError) as exc:  # NaN, a 5000-digit number, arrays nested 10,000 deep
            return [], False, "", [f"not a plan ({type(exc).__name__}: {str(exc)[:80]})"]
        if not isinstance(data, dict):
            return [], False, "", ["the reply must be a JSON object"]
        calls, problems = [], []
        raw_calls = data.get("calls", [])
        if not isinstance(raw_calls, list):
            return [], False, "", ["'calls' must be a list"]
        if len(raw_calls) > max_calls:
            return [], False, "", [f"at most {max_calls} calls in this step, not {len(raw_calls)}"]
        for raw in raw_calls:
            try:
                calls.append(self.registry.validate(raw, vocabulary))
            except CallError as exc:
                problems.append(str(exc))
        thought = data.get("thought", "")
        return calls, data.get("done") is True, thought[:300] if isinstance(thought, str) else "", problems

    def _fallback(
        self,
        state: AgentState,
        used: dict[str, float],
        problems: list[str],
        emit: Any,
        prompt_tag: str,
        selection: Selection | None,
        started: float,
    ) -> dict[str, Any]:
        """No valid plan came out: choose the tool by scoring the tool menu (the option log-likelihood
        multiple choice uses), among the candidates when there are some, and fill its arguments
        from the question. After retrieve, ``reflect`` looks at the best spans."""
        entry: dict[str, Any] = {
            "node": "plan",
            "prompt": prompt_tag,
            "fallback": True,
            "problems": problems,
            **(selection.trace() if selection else {}),
        }
        names = [t for t in (selection.candidates if selection else ()) if t in self.registry] or list(
            self.registry.tools
        )
        if not names:
            emit({"type": "plan", **entry, "calls": []})
            return {
                "pending": [],
                "done": True,
                "used": used,
                "trace": [entry],
                "stop_reason": "no valid plan",
            }
        ranked = names
        if len(names) > 1:
            menu = load_prompt("tool_menu").messages(
                question=state["question"], options=lettered(state.get("options"))
            )
            menu_options = [f"{name}: {self.registry.tools[name].description}" for name in names]
            scores = self.llm.score_options(menu, menu_options)
            used["tokens"] = used.get("tokens", 0) + scores.tokens
            ranked = [names[i] for i in np.argsort(-scores.logprobs, kind="stable")]
            entry["tool_scores"] = {
                n: round(float(v), 3) for n, v in zip(names, scores.logprobs, strict=True)
            }
        call: dict[str, Any] | None = None
        for tool in ranked:  # the best-scoring tool that the question alone can fill the arguments of
            try:
                call = self.registry.validate(
                    {"tool": tool, "args": self.registry.fallback_arguments(tool, state["question"])}
                ).to_dict()
                break
            except CallError:
                continue
        if call is None:
            emit({"type": "plan", **entry, "calls": []})
            return {
                "pending": [],
                "done": True,
                "used": used,
                "trace": [entry],
                "stop_reason": "no valid plan",
            }
        tool = call["tool"]
        entry["calls"] = [call]
        entry["seconds"] = round(time.perf_counter() - started, 3)
        emit({"type": "plan", **entry})
        return {
            "pending": [call],
            "fallback_stage": 1 if tool == "retrieve" else 0,
            "done": tool != "retrieve",
            "used": used,
            "trace": [entry],
        }

    def act(self, state: AgentState) -> dict[str, Any]:
        emit = _writer()
        used = dict(state["used"])
        calls = list(state.get("pending", []))
        room = int(self.budget.max_tool_calls - used.get("tool_calls", 0))
        calls = calls[: max(room, 0)]
        first_id = len(state.get("evidence", []))
        results: list[tuple[dict[str, Any], Evidence | None, str | None, float]] = []
        with ThreadPoolExecutor(max_workers=max(len(calls), 1), thread_name_prefix="vidagent-tool") as pool:
            futures = []
            for call in calls:
                emit({"type": "tool_call", **call})
                futures.append((call, time.perf_counter(), pool.submit(self._run_tool, state["video"], call)))
            for call, started, future in futures:
                try:
                    evidence, error = future.result(timeout=self.budget.tool_timeout), None
                except FutureTimeout:
                    evidence, error = None, f"{call['tool']} timed out after {self.budget.tool_timeout:g} s"
                except (VidagentError, ValueError) as exc:
                    evidence, error = None, f"{call['tool']} failed: {exc}"
                except Exception as exc:  # a tool bug must not take the agent down
                    evidence, error = None, f"{call['tool']} crashed: {type(exc).__name__}: {exc}"
                results.append((call, evidence, error, time.perf_counter() - started))
            pool.shutdown(wait=False, cancel_futures=True)
        new_rows: list[dict[str, Any]] = []
        trace, errors = [], []
        for call, evidence, error, seconds in results:
            entry: dict[str, Any] = {"node": "act", **call, "seconds": round(seconds, 3)}
            if error is not None:
                entry["error"] = error
                errors.append(error)
                emit({"type": "tool_result", **entry})
            else:
                assert evidence is not None
                ids = list(range(first_id + len(new_rows), first_id + len(new_rows) + len(evidence)))
                new_rows.extend(evidence.to_records())
                if "vlm" in self.registry.tools[call["tool"]].roles:  # frames the VLM looked at
                    used["frames"] = used.get("frames", 0) + sum(
                        int(d.get("frames", 0)) for d in evidence.data
                    )
                entry["evidence_ids"] = ids
                entry["summary"] = evidence.to_prompt(5, first_id=ids[0] if ids else first_id)
                emit({"type": "tool_result", **entry})
            trace.append(entry)
        used["tool_calls"] = used.get("tool_calls", 0) + len(calls)
        return {"evidence": new_rows, "trace": trace, "errors": errors, "pending": [], "used": used}

    def _run_tool(self, video: str, call: dict[str, Any]) -> Evidence:
        spec = self.registry.tools[call["tool"]]
        return spec(self.ctx, video, **call["args"])

    def reflect(self, state: AgentState) -> dict[str, Any]:
        used = dict(state["used"])
        if _recalled(
            state
        ):  # recall's lookup ran (not a planner step); what it found may settle the question
            settled = not state.get("options") and text_answer(
                state["question"], state.get("evidence", []), None
            )
            return {"used": used, "done": bool(settled)}
        used["steps"] = used.get("steps", 0) + 1
        update: dict[str, Any] = {"used": used}
        stage = state.get("fallback_stage", 0)
        if stage == 1:  # fallback: look at the best retrieved spans
            update["fallback_stage"] = 2
            update["pending"] = self._fallback_look(state)
            update["done"] = True
        if reason := self._exhausted(used):
            update["stop_reason"] = reason
            update["pending"] = []
        return update

    def _fallback_look(self, state: AgentState) -> list[dict[str, Any]]:
        tool = next((t for t in ("look", "caption") if t in self.registry), None)
        if tool is None:
            return []
        retrieved = Evidence.from_rows(state.get("evidence", [])).by_tool("retrieve").top(2)
        calls = []
        for start, end in zip(retrieved.start, retrieved.end, strict=True):
            args: dict[str, Any] = {"span": [float(start), float(end)]}
            if tool == "look":
                args["question"] = state["question"][:300]
            calls.append({"tool": tool, "args": args})
        return calls

    def _after_reflect(self, state: AgentState) -> str:
        if _recalled(state):
            return "answer" if state.get("done") else "plan"
        if state.get("stop_reason"):
            return "answer"
        if state.get("pending"):
            return "act"
        return "answer" if state.get("done") else "plan"

    def answer(self, state: AgentState) -> dict[str, Any]:
        emit = _writer()
        used = dict(state["used"])
        evidence = Evidence.from_rows(state.get("evidence", []))
        reason = state.get("stop_reason")
        note = f"the {reason} budget ran out; answer with the evidence gathered so far" if reason else ""
        prompt = load_prompt("answer")
        options = state.get("options")
        messages = prompt.messages(
            video_name=Path(state["video"]).name,
            duration=state["duration"],
            history=state.get("history", [])[:-1],
            evidence=evidence.to_prompt(EVIDENCE_IN_PROMPT),
            note=note,
            question=state["question"],
            options=lettered(options),
        )
        choice = None
        read = (
            None
            if options
            else text_answer(
                state["question"],
                state.get("evidence", []),
                self.llm,
                lambda rows, values: prompt.messages(
                    video_name=Path(state["video"]).name,
                    duration=state["duration"],
                    history=[],
                    evidence="\n".join(
                        f"[{r.id}] {r.source} {r.start:.1f}-{r.end:.1f}s text={json.dumps(r.text)}"
                        for r in rows
                    ),
                    note="",
                    question=state["question"],
                    options=lettered(values),
                ),
            )
        )
        if read is not None:  # read off what the video says or shows (vidagent.agent.text_answers)
            text, confidence = read.text, read.confidence
            used["tokens"] = used.get("tokens", 0) + read.tokens
        elif options:
            scores = self.llm.score_options(messages, list(options))
            choice = scores.best
            confidence = float(scores.probabilities[choice])
            text = lettered(options)[choice]
            used["tokens"] = used.get("tokens", 0) + scores.tokens
        else:
            generation = self.llm.generate(messages, max_new_tokens=96)
            text = generation.text.strip() or "I could not form an answer from the evidence."
            used["tokens"] = used.get("tokens", 0) + generation.prompt_tokens + generation.completion_tokens
            confidence = (
                float(np.exp(generation.mean_logprob)) if generation.mean_logprob is not None else 0.0
            )
        cited = (
            read.cited
            if read is not None
            else _citations(text, len(evidence)) or _default_citations(evidence)
        )
        if reason:
            text = f"{text} (Answered early: the {reason} budget ran out.)"
            confidence *= 0.5
        answer = {
            "text": text,
            "choice": choice,
            "confidence": round(_finite_confidence(float(confidence)), 4),
            "cited": cited,
            "stop_reason": reason,
            "prompt": prompt.tag,
            "used": {k: v for k, v in used.items() if k != "started"},
            "seconds": round(time.time() - used.get("started", time.time()), 3),
        }
        rows = state.get("evidence", [])
        # the event carries its cited rows: checkpoints are written while the run goes on, so a reader
        # of the session's state mid-stream (the server) may not see this turn's rows yet
        emit({"type": "answer", **answer, "evidence": numbered(rows, cited)})
        return {
            "answer": answer,
            "used": used,
            "history": [{"role": "assistant", "content": text}],
            "trace": [{"node": "answer", "prompt": prompt.tag, "cited": cited}],
        }


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number a plan may hold")


def _finite_confidence(value: float) -> float:
    """A confidence in [0, 1]; NaN (an LLM's logprob gone wrong) is 0."""
    return min(max(value, 0.0), 1.0) if math.isfinite(value) else 0.0


def _planner_rows(state: AgentState) -> list[dict[str, Any]]:
    """The evidence the planner sees: all but recall's rows, so a first step stays a first step (the
    answer sees them all). Its rows are numbered among themselves; plans name spans, never row ids."""
    recalled = {
        i
        for e in state.get("trace", [])
        if e.get("node") == "act" and e.get("recall")
        for i in e.get("evidence_ids", [])
    }
    rows = state.get("evidence", [])
    return rows if not recalled else [row for i, row in enumerate(rows) if i not in recalled]


def _recalled(state: AgentState) -> bool:
    """Whether the last act ran recall's lookup."""
    trace = state.get("trace", [])
    return bool(trace) and trace[-1].get("node") == "act" and bool(trace[-1].get("recall"))


def _writer() -> Any:
    """LangGraph's stream writer inside a run; outside one (``first_plan``), a writer that drops events."""
    try:
        return get_stream_writer()
    except RuntimeError:
        return lambda event: None


def _new_calls(calls: list[ToolCall], trace: list[dict[str, Any]]) -> list[ToolCall]:
    """Drop calls repeated within the plan or already run in this session (same evidence)."""
    seen = {json.dumps([e["tool"], e["args"]], sort_keys=True) for e in trace if e.get("node") == "act"}
    fresh = []
    for call in calls:
        key = json.dumps([call.tool, call.args], sort_keys=True)
        if key not in seen:
            seen.add(key)
            fresh.append(call)
    return fresh


def _citations(text: str, n_rows: int) -> list[int]:
    ids = {int(m) for m in re.findall(r"\[(\d+)\]", text)}
    return sorted(i for i in ids if i < n_rows)


def _default_citations(evidence: Evidence, k: int = 3) -> list[int]:
    """When the answer cites nothing explicitly: the top-scoring rows it was shown."""
    if not len(evidence):
        return []
    order = np.argsort(-evidence.score, kind="stable")[:k]
    return sorted(int(i) for i in order)
