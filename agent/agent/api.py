"""The Python API: ``VideoAgent`` and the ``Answer`` it returns.

```python
from vidagent import VideoAgent

agent = VideoAgent.from_profile("cpu")
answer = agent.ask("clip.mp4", "When does the cyclist pass the car?")
print(answer.text, answer.confidence)
for row in answer.evidence:  # cited rows: spans, boxes, masks, quotes
    print(row["id"], row["tool"], row["start"], row["end"])
```
"""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from vidagent.agent.exemplars import ExemplarSelector
from vidagent.agent.graph import AgentGraph, Budget, PlannerSettings
from vidagent.agent.registry import ToolRegistry
from vidagent.core.errors import VidagentError
from vidagent.core.evidence import Evidence, numbered
from vidagent.media.index import IndexReport
from vidagent.media.store import Store
from vidagent.media.video import Video
from vidagent.models.hub import ModelHub
from vidagent.models.llm import ChatModel, OpenAIChat, TransformersChat
from vidagent.models.profile import load_profile
from vidagent.models.sentence_embedders import embedder_for
from vidagent.tools.base import ToolContext


class Answer(BaseModel):
    """What ``ask`` returns: the reply, the evidence it cites, and how it got there."""

    question: str
    text: str
    choice: int | None = Field(default=None, description="Index of the chosen option (multiple choice).")
    confidence: float
    evidence: list[dict[str, Any]] = Field(description="Cited evidence rows, each with its id.")
    trace: list[dict[str, Any]] = Field(description="The streamed events of this question.")
    seconds: float
    tokens: int
    tool_calls: int
    stop_reason: str | None = None
    session: str
    prompts: list[str] = Field(
        default_factory=list, description="Prompt templates and exemplar banks (name@version) that ran."
    )


class SessionMismatch(VidagentError):
    """A chat session is bound to one video."""


def _planner_spec(hub: ModelHub) -> Any:
    spec = hub.profile.roles.get("planner")
    if spec is None:
        raise VidagentError(f"profile {hub.profile.name!r} has no 'planner' role")
    return spec


def planner_name(hub: ModelHub) -> str:
    """The ``name`` the profile's planner will have, without loading it."""
    spec = _planner_spec(hub)
    options = spec.options or {}
    return str(options.get("model") or spec.id) if options.get("backend") == "openai" else str(spec.id)


def chat_model_for(hub: ModelHub) -> ChatModel:
    """The planner named by the profile: an OpenAI-compatible endpoint or a local model."""
    spec = _planner_spec(hub)
    options = dict(spec.options or {})
    if options.get("backend") == "openai":
        return OpenAIChat(
            model=planner_name(hub),
            base_url=options.get("base_url"),
            api_key=options.get("api_key"),
            timeout=float(options.get("timeout", 60)),
            max_retries=int(options.get("max_retries", 2)),
        )
    loaded = hub.get("planner")  # its spec is the one that loaded (after a fallback: the fallback's)
    options = {**options, **loaded.spec.options}
    cap = options.get("max_new_tokens")
    if loaded.spec.kind == "llama_cpp":
        from vidagent.models.llama_cpp_chat import LlamaCppChat

        return LlamaCppChat.from_loaded(
            loaded.model,
            loaded.processor,
            loaded.spec.id,
            max_new_tokens=int(cap) if cap else None,
            slots=int(options.get("slots", 3)),
        )
    return TransformersChat(
        loaded.model, loaded.processor, name=loaded.spec.id, max_new_tokens=int(cap) if cap else None
    )


def index_video(
    ctx: ToolContext, video: str | Path, *, speech: bool = True, text: bool = True, progress: Any = None
) -> IndexReport:
    """Frames (``Index.add``), then speech and on-screen text rows (``find_text.index_texts``)."""
    from vidagent.tools.find_text import index_texts

    report = ctx.index.add(video, fps=ctx.fps, seek=ctx.seek, progress=progress)
    started = time.perf_counter()
    texts = index_texts(ctx, Path(video), speech=speech, text=text)
    return dataclasses.replace(report, texts=texts, seconds=report.seconds + time.perf_counter() - started)


def exemplar_selector_for(hub: ModelHub) -> ExemplarSelector:
    """The planner's exemplar selector: the profile's sentence embedder, else lexical similarity."""
    return ExemplarSelector(embedder_for(hub))


def planner_settings(hub: ModelHub) -> PlannerSettings:
    spec = hub.profile.roles.get("planner")
    return PlannerSettings.from_options(spec.options if spec else None)


class LazyChat:
    """The profile's planner as a ``ChatModel`` that loads on first use.

    For code that must name the model before it needs it: an eval run's header, or a Ray driver
    whose workers do the answering. Safe to share between threads (one load).
    """

    def __init__(self, hub: ModelHub) -> None:
        self.hub = hub
        self._chat: ChatModel | None = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        """The planner's id: as loaded (after a fallback, the fallback's), else as the profile names it."""
        return self._chat.name if self._chat is not None else planner_name(self.hub)

    @property
    def loaded(self) -> bool:
        return self._chat is not None

    def load(self) -> ChatModel:
        """The planner, loaded now if it is not yet (a missing checkpoint raises here)."""
        with self._lock:
            if self._chat is None:
                self._chat = chat_model_for(self.hub)
        return self._chat

    def __getattr__(self, attribute: str) -> Any:  # generate, score_options, ...: load, then delegate
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        return getattr(self.load(), attribute)


class VideoAgent:
    """Answers questions about videos; see the module docstring."""

    def __init__(
        self,
        ctx: ToolContext,
        llm: ChatModel | None = None,
        *,
        budget: Budget | None = None,
        registry: ToolRegistry | None = None,
        exemplars: ExemplarSelector | None = None,
        planner: PlannerSettings | None = None,
    ) -> None:
        from langgraph.checkpoint.sqlite import SqliteSaver

        self.ctx = ctx
        self.llm = llm or chat_model_for(ctx.hub)
        self.registry = registry or ToolRegistry.for_roles(set(ctx.hub.profile.roles))
        self.budget = budget or Budget()
        has_hub = ctx.hub is not None  # graph tests run a scripted planner over fake tools, with no hub
        self.exemplars = exemplars or (exemplar_selector_for(ctx.hub) if has_hub else None)
        self.planner = planner or (planner_settings(ctx.hub) if has_hub else PlannerSettings())
        connection = sqlite3.connect(ctx.store.path, check_same_thread=False, timeout=30)
        self._checkpointer = SqliteSaver(connection)
        self._graph = AgentGraph(
            ctx, self.registry, self.llm, self.budget, self.exemplars, self.planner
        ).compile(self._checkpointer)
        self._answering: set[str] = set()  # sessions with a turn running in this process
        self._answering_lock = threading.Lock()

    @classmethod
    def from_profile(
        cls,
        profile: str | Path = "auto",
        *,
        store: str | Path | None = None,
        llm: ChatModel | None = None,
        budget: Budget | None = None,
        fps: float = 1.0,
        seek: str = "exact",
    ) -> VideoAgent:
        """An agent over a bundled profile name or a profile YAML path (``fps``, ``seek``: how
        the index samples; ``seek="keyframe"`` indexes long videos much faster, coarser in time)."""
        hub = ModelHub(load_profile(str(profile)))
        return cls(ToolContext(hub=hub, store=Store(store), fps=fps, seek=seek), llm, budget=budget)

    # --- tools -----------------------------------------------------------------------------
    @property
    def tools(self) -> dict[str, Any]:
        """Each tool callable on its own: ``agent.tools["retrieve"](video, query="a dog")``."""
        return {name: _bound(spec, self.ctx) for name, spec in self.registry.tools.items()}

    def index(self, video: str | Path, *, speech: bool = True, text: bool = True) -> IndexReport:
        """Sample and embed the frames; also transcribe the speech and read the on-screen text
        (each can be turned off), stored and embedded so ``find_text`` and ``search_texts`` are lookups."""
        return index_video(self.ctx, video, speech=speech, text=text)

    def search_texts(
        self, query: str, *, video: str | Path | None = None, source: str = "any", k: int = 10
    ) -> Evidence:
        """What was said (``source="speech"``), shown (``"screen"``) or either, matching ``query`` by
        keywords and meaning, in the indexed videos (or one of them), best first."""
        from vidagent.media.text_search import TextSearch
        from vidagent.tools.find_text import SOURCES, hit_row

        if source not in SOURCES:
            raise VidagentError(f"source must be one of {', '.join(SOURCES)}, not {source!r}")
        video_id = self.ctx.store.content_hash(video) if video is not None else None
        search = TextSearch(self.ctx.store, embedder_for(self.ctx.hub))
        return Evidence.from_rows(
            [
                hit_row(hit, query)
                for hit in search.search(query, video_id=video_id, tools=SOURCES[source], k=k)
            ]
        )

    # --- questions -------------------------------------------------------------------------
    def stream(
        self,
        video: str | Path,
        question: str,
        options: list[str] | None = None,
        session: str | None = None,
        history: list[dict[str, str]] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Yield events (plan, tool_call, tool_result, answer) while answering; the last is the answer.

        ``history``: earlier ``{role, content}`` turns (user/assistant) that a client kept itself,
        e.g. an OpenAI-style chat client; they open a new session's chat history (a session that
        already has turns keeps its own)."""
        question = question.strip()
        if not question:
            raise VidagentError("the question is empty")
        if options is not None and len(options) < 2:
            raise VidagentError("multiple choice needs at least two options")
        path = Path(video)
        with Video.open(path) as v:  # clear errors for bad files before any model runs
            duration = v.duration
        session = session or uuid.uuid4().hex
        config = {"configurable": {"thread_id": session}}
        previous = self._graph.get_state(config).values
        if previous.get("video") and Path(previous["video"]).resolve() != path.resolve():
            raise SessionMismatch(f"session {session} is about {previous['video']}, not {path}")
        earlier = [] if previous.get("history") else _checked_history(history or [])
        turn = {
            "video": str(path),
            "duration": duration,
            "question": question,
            "options": list(options) if options else None,
            "history": [*earlier, {"role": "user", "content": question}],
            "pending": [],
            "errors": [],
            "done": False,
            "fallback_stage": 0,
            "used": {"started": time.time()},
            "stop_reason": None,
            "answer": None,
        }
        with self._answering_lock:
            self._answering.add(session)
        try:
            for event in self._graph.stream(turn, config, stream_mode="custom"):
                yield {**event, "session": session}
        finally:
            with self._answering_lock:
                self._answering.discard(session)

    def ask(
        self, video: str | Path, question: str, options: list[str] | None = None, session: str | None = None
    ) -> Answer:
        """Answer one question (a new session unless ``session`` names one)."""
        events = list(self.stream(video, question, options, session))
        return self.answer_from(events[-1], question, events)

    def answer_from(
        self, final: dict[str, Any], question: str, events: list[dict[str, Any]] | None = None
    ) -> Answer:
        """The ``Answer`` for the last event of ``stream`` (its ``answer`` event)."""
        session = final["session"]
        cited = final["evidence"]  # the rows it cites, with their ids
        used = final["used"]
        return Answer(
            question=question,
            text=final["text"],
            choice=final["choice"],
            confidence=final["confidence"],
            evidence=cited,
            trace=events or [final],
            seconds=final["seconds"],
            tokens=int(used.get("tokens", 0)),
            tool_calls=int(used.get("tool_calls", 0)),
            stop_reason=final["stop_reason"],
            session=session,
            prompts=sorted(
                {e[key] for e in events or [final] for key in ("prompt", "exemplars") if key in e}
            ),
        )

    def evidence(self, session: str) -> Evidence:
        """Everything a session has gathered so far."""
        return Evidence.from_rows(self.evidence_records(session))

    def evidence_records(self, session: str) -> list[dict[str, Any]]:
        """The same as records (the JSON form), each with its ``id``: what answers cite as ``[id]``."""
        return numbered(
            self._graph.get_state({"configurable": {"thread_id": session}}).values.get("evidence", [])
        )

    def history(self, session: str) -> list[dict[str, Any]]:
        """A session's turns, oldest first: ``{role, content}``; answers also carry ``cited`` row ids.
        A question left without an answer (the process answering it died, or it failed) carries
        ``interrupted: True`` once no turn of the session is running here."""
        values = self._graph.get_state({"configurable": {"thread_id": session}}).values
        cited = iter([e.get("cited", []) for e in values.get("trace", []) if e.get("node") == "answer"])
        messages = [
            {**m, "cited": next(cited, [])} if m.get("role") == "assistant" else dict(m)
            for m in values.get("history", [])
        ]
        with self._answering_lock:
            running = session in self._answering
        for i, message in enumerate(messages):
            answered = i + 1 < len(messages) and messages[i + 1].get("role") == "assistant"
            last_and_running = i == len(messages) - 1 and running
            if message.get("role") == "user" and not answered and not last_and_running:
                message["interrupted"] = True
        return messages

    def chat(self, video: str | Path, session: str | None = None) -> ChatSession:
        return ChatSession(self, Path(video), session or uuid.uuid4().hex)


class ChatSession:
    """A multi-turn chat about one video; persists across restarts by its ``id``."""

    def __init__(self, agent: VideoAgent, video: Path, session: str) -> None:
        self.agent = agent
        self.video = video
        self.id = session

    def ask(self, question: str, options: list[str] | None = None) -> Answer:
        return self.agent.ask(self.video, question, options, session=self.id)

    def stream(self, question: str, options: list[str] | None = None) -> Iterator[dict[str, Any]]:
        return self.agent.stream(self.video, question, options, session=self.id)

    @property
    def evidence(self) -> Evidence:
        return self.agent.evidence(self.id)

    @property
    def evidence_records(self) -> list[dict[str, Any]]:
        """The session's evidence as records with their ids (``VideoAgent.evidence_records``)."""
        return self.agent.evidence_records(self.id)


def _checked_history(history: list[dict[str, str]]) -> list[dict[str, str]]:
    turns = []
    for turn in history:
        role, content = turn.get("role"), turn.get("content")
        if role not in ("user", "assistant") or not isinstance(content, str):
            raise VidagentError("history turns are {role: user|assistant, content: text}")
        turns.append({"role": role, "content": content})
    return turns


def _bound(spec: Any, ctx: ToolContext) -> Any:
    def call(video: str | Path, **arguments: Any) -> Evidence:
        return spec(ctx, video, **arguments)

    call.__name__ = spec.name
    call.__doc__ = spec.description
    return call
