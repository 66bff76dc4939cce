"""Routing: does the planner's first step call a right tool, with arguments in the question's words?

``vidagent eval routing [--data FILE] [--profile P]`` runs the ``planner`` method over a routing
set: for each question, the first plan step is made (the real planner prompt, exemplars,
grammar and checks; no tool runs), and scored:

- ``tool``: the step calls at least one tool and every tool it calls is accepted for the
  question (``tool_any``, reported beside it: at least one of the tools it calls is);
- ``words``: every free-text argument (``query``, ``prompt``, ``question``) is made of the
  question's words (``vidagent.core.question_words``: lemmas, function words and tool syntax allowed);
- ``routed`` (the sample's ``correct``): both.

The run file is the runner's (header, one line per question, resumable); the report gives
accuracy per kind (the sample's category), the three rates and latency.

Routing set format (JSONL, one question per line; the shipped set is
``vidagent/evals/data/routing.jsonl``)::

    {"id": "r001", "kind": "speech", "question": "Which city does the speaker mention?",
     "accepted": ["transcribe"], "options": ["..."]?, "history": [{"role": "user", "content": "..."},
     {"role": "assistant", "content": "..."}]?, "video": "path/relative/to/the/file.mp4"?}

``accepted`` (alias ``tools``) lists the tools a right first step may call; ``kind`` (alias
``category``) groups the report. Without ``video`` a question is asked about the bikes sample
video (the planner sees only its name and length).
"""

from __future__ import annotations

import json
import threading
from importlib import resources
from pathlib import Path
from typing import Any

from vidagent.core.errors import VidagentError
from vidagent.evals.runner import Method, Prediction, loaded_instead
from vidagent.evals.tasks import Sample, Task, TaskError, jsonl_file

DEFAULT_SET = "routing.jsonl"


def default_routing_file() -> Path:
    """The routing set shipped with vidagent."""
    with resources.as_file(resources.files("vidagent.evals") / "data" / DEFAULT_SET) as path:
        return Path(path)


def load_routing(data: str | Path | None = None) -> Task:
    """A routing set (see the module docstring) as a task scored by :func:`score_routing`."""
    from vidagent.media.sample_videos import sample_video

    path = jsonl_file(data if data else default_routing_file())
    default_video: Path | None = None
    samples = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            accepted = row.get("accepted", row.get("tools"))
            if isinstance(accepted, str):
                accepted = [accepted]
            if (
                not isinstance(accepted, list)
                or not accepted
                or not all(isinstance(t, str) for t in accepted)
            ):
                raise ValueError("'accepted' must be a non-empty list of tool names")
            history = row.get("history") or []
            if not isinstance(history, list) or not all(
                isinstance(t, dict) and "content" in t for t in history
            ):
                raise ValueError("'history' must be a list of {role, content} turns")
            if row.get("video"):
                video = Path(row["video"])
                video = video if video.is_absolute() else path.parent / video
            else:
                default_video = default_video or sample_video("bikes")
                video = default_video
            samples.append(
                Sample(
                    id=str(row.get("id", f"line{number}")),
                    video=video,
                    question=str(row["question"]),
                    options=[str(o) for o in row["options"]] if row.get("options") else None,
                    answer=" | ".join(accepted),
                    references=list(accepted),
                    category=str(row.get("kind") or row.get("category") or "all"),
                    history=[
                        {"role": str(t.get("role", "user")), "content": str(t["content"])} for t in history
                    ],
                )
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise TaskError(f"{path}:{number}: {type(exc).__name__}: {exc}") from None
    if not samples:
        raise TaskError(f"{path}: no questions")
    return Task(
        "routing", samples, open_ended=True, settings={"file": path.name}, score_prediction=score_routing
    )


def first_step_calls(trajectory: list[dict[str, Any]]) -> list[dict[str, Any]]:
    plan = next((event for event in trajectory if event.get("node") == "plan"), None)
    return list(plan.get("calls") or []) if plan else []


def score_routing(sample: Sample, prediction: Any) -> dict[str, Any]:
    """``tool``, ``words`` and ``routed`` (see the module docstring) of one first plan step."""
    from vidagent.agent.registry import discover_tools
    from vidagent.core.question_words import Vocabulary, free_text_fields

    calls = first_step_calls(prediction.trajectory)
    tools = discover_tools()
    vocabulary = Vocabulary.of(sample.question, sample.options, sample.history)
    tool_ok = bool(calls) and all(call.get("tool") in sample.references for call in calls)
    foreign: list[str] = []
    for call in calls:
        spec = tools.get(str(call.get("tool")))
        kinds = free_text_fields(spec.json_schema()) if spec else {}
        for name in kinds:
            value = (call.get("args") or {}).get(name)
            if isinstance(value, str):
                foreign += vocabulary.foreign(value)
    words_ok = bool(calls) and not foreign
    some_ok = any(call.get("tool") in sample.references for call in calls)
    scores = {
        "tool": float(tool_ok),
        "tool_any": float(some_ok),
        "words": float(words_ok),
        "routed": float(tool_ok and words_ok),
    }
    extra = {"first_tools": [call.get("tool") for call in calls]}
    if foreign:
        extra["foreign_words"] = sorted(set(foreign))
    return {"scores": scores, "correct": tool_ok and words_ok, **extra}


class RoutingMethod(Method):
    """The ``planner`` method: the profile's first plan step for each question, no tool run."""

    name = "planner"
    prompts = ("planner", "tool_menu")
    uses_exemplars = True

    def __init__(self, graph: Any, hub: Any) -> None:
        self.graph, self.hub = graph, hub
        self._durations: dict[Path, float] = {}
        self._lock = threading.Lock()

    def models(self) -> dict[str, str]:
        roles = self.hub.profile.roles
        return {role: roles[role].id for role in ("planner", "embedder") if role in roles}

    def substitutes(self) -> dict[str, str]:
        return loaded_instead(self.hub)

    def _duration(self, video: Path) -> float:
        from vidagent.media.video import Video

        with self._lock:
            if video not in self._durations:
                with Video.open(video) as opened:
                    self._durations[video] = float(opened.duration)
            return self._durations[video]

    def answer(self, sample: Sample, video: Path) -> Prediction:
        entry = self.graph.first_plan(
            sample.question,
            video_name=video.name,
            duration=self._duration(video),
            options=sample.options,
            history=sample.history,
        )
        calls = entry.get("calls") or []
        return Prediction(
            text=json.dumps(calls, ensure_ascii=False),
            tool_calls=len(calls),
            tokens=int(entry.get("tokens", 0)),
            trajectory=[{"type": "plan", **entry}],
        )


def make_routing_method(profile: str, *, lazy: bool = False) -> RoutingMethod:
    """The planner of ``profile`` over its registry and exemplars (loaded now unless ``lazy``)."""
    from vidagent.agent.api import LazyChat, exemplar_selector_for, planner_settings
    from vidagent.agent.graph import AgentGraph
    from vidagent.agent.registry import ToolRegistry
    from vidagent.models.hub import ModelHub
    from vidagent.models.profile import load_profile

    hub = ModelHub(load_profile(profile))
    if "planner" not in hub.profile.roles:
        raise VidagentError(f"profile {hub.profile.name!r} has no 'planner' role to route with")
    planner = LazyChat(hub)
    if not lazy:
        planner.load()
    graph = AgentGraph(
        ctx=None,
        registry=ToolRegistry.for_roles(set(hub.profile.roles)),  # type: ignore[arg-type]
        llm=planner,
        exemplars=exemplar_selector_for(hub),
        planner=planner_settings(hub),
    )
    return RoutingMethod(graph, hub)
