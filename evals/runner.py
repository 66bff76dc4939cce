"""The VideoQA evaluation runner behind ``vidagent eval``: methods, resumable JSONL runs, reports.

A run answers every sample of a :class:`~vidagent.evals.tasks.Task` with one *method* and
writes one JSON line per sample to the run file, after a header line that pins what the run
is (task, split, method, profile, the models' ids, prompt versions, judge). Methods:

- ``agent``: :meth:`VideoAgent.ask` (plan, tools, answer); multiple choice by the agent's
  option scoring.
- ``vlm-uniform``: the single-VLM baseline: the profile's ``vlm`` sees ``frames`` frames
  sampled uniformly over the video (or the question's clip) and answers directly; multiple
  choice by strict letter parsing (:func:`~vidagent.evals.tasks.parse_letter`): a reply that
  names no option is wrong and recorded as a parse failure, never a random pick.
- ``blind``: the planner LLM without the video (measures the language prior); multiple
  choice by option log-likelihood.
- ``planner``: only the agent's first plan step, no tool run (the ``routing`` task:
  :mod:`vidagent.evals.routing`).

Resuming (``resume=True``) keeps every finished line, checks the header matches, and answers
only the samples not yet in the file; all methods are deterministic (greedy decoding), so a
resumed run gives the same results as an uninterrupted one. With ``workers > 1`` samples run
in threads over one set of loaded models, and lines land in completion order (reports sort by
sample id). An ``engine`` answers them elsewhere instead (:mod:`vidagent.evals.ray_eval`: model
actors under Ray), and this process still writes every line. Sample-level failures (a broken
video, a tool error that escapes) are recorded in the line's ``error`` and scored wrong, so one
bad file never stops a run; a model that cannot load stops it before the first sample.
"""

from __future__ import annotations

import json
import threading
import time
from abc import ABC, abstractmethod
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vidagent.core.errors import VidagentError
from vidagent.core.options import lettered
from vidagent.evals.tasks import (
    LLMJudge,
    Sample,
    Task,
    cut_clip,
    official_accuracy,
    parse_letter,
    percentile,
)

METHODS = ("agent", "vlm-uniform", "blind", "planner")
RUN_FORMAT = 1


class RunError(VidagentError):
    """The run file cannot be resumed or read."""


# An engine answers a runner's missing samples somewhere else and yields their lines as they finish.
Engine = Callable[["Runner", list[Sample]], Iterable[dict[str, Any]]]


@dataclass
class RunSettings:
    """What shapes a run's results; stored in the header and checked on resume."""

    task: str
    method: str = "agent"
    profile: str = "auto"
    split: str | None = None
    limit: int | None = None
    frames: int = 8  # vlm-uniform: frames shown to the VLM
    fps: float = 1.0  # agent: index sampling rate
    max_steps: int | None = None  # agent: planner steps (None: the default budget)
    judge: str | None = None  # open-ended: a profile whose planner judges answers

    def header(
        self,
        models: dict[str, str],
        prompts: Sequence[str],
        exemplars: str | None = None,
        substitutes: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        # models: as the profile names them (compared on resume); substitutes: what loaded instead, where
        # a role fell back (informational: a lazy Ray driver has loaded nothing)
        return {
            "type": "run",
            "format": RUN_FORMAT,
            **self.__dict__,
            "models": models,
            "prompts": list(prompts),
            "exemplars": exemplars,
            "substitutes": substitutes or {},
        }


# --- methods ------------------------------------------------------------------------------------
@dataclass
class Prediction:
    """What a method produced for one sample."""

    text: str
    choice: int | None = None  # option index (multiple choice)
    parse_failed: bool = False
    tool_calls: int = 0
    tokens: int = 0
    trajectory: list[dict[str, Any]] = field(default_factory=list)
    stop_reason: str | None = None
    cited: list[dict[str, Any]] = field(default_factory=list)  # the evidence rows the answer cites


class Method(ABC):
    """Answers one sample given the video file to show (the sample's clip when it has a span)."""

    name = ""
    prompts: tuple[str, ...] = ()
    uses_exemplars = False  # the planner's worked examples: their bank's version goes in the header

    @abstractmethod
    def models(self) -> dict[str, str]:
        """Role -> checkpoint id of the models this method runs (pinned in the run header)."""

    @abstractmethod
    def answer(self, sample: Sample, video: Path) -> Prediction:
        """The method's prediction for ``sample``, shown ``video``."""

    def substitutes(self) -> dict[str, str]:
        """Role -> the id that loaded instead of the profile's (a role's fallback), for roles loaded so far."""
        return {}


def loaded_instead(hub: Any) -> dict[str, str]:
    """The roles of ``hub`` that run on another checkpoint than the profile names (so far)."""
    return {
        role: hub.loaded_id(role)
        for role in sorted(hub.profile.roles)
        if hub.loaded_id(role) != hub.profile.roles[role].id
    }


class AgentMethod(Method):
    name = "agent"
    prompts = ("planner", "answer", "tool_menu")
    uses_exemplars = True

    def __init__(self, agent: Any) -> None:
        self.agent = agent

    def models(self) -> dict[str, str]:
        return {role: spec.id for role, spec in sorted(self.agent.ctx.hub.profile.roles.items())}

    def substitutes(self) -> dict[str, str]:
        return loaded_instead(self.agent.ctx.hub)

    def answer(self, sample: Sample, video: Path) -> Prediction:
        answer = self.agent.ask(video, sample.prompt, options=sample.options)
        trajectory = [_compact(event) for event in answer.trace if event.get("type") != "answer"]
        return Prediction(
            text=answer.text,
            choice=answer.choice,
            tool_calls=answer.tool_calls,
            tokens=answer.tokens,
            trajectory=trajectory,
            stop_reason=answer.stop_reason,
            cited=[_cited_row(row) for row in answer.evidence],
        )


def _cited_row(row: dict[str, Any]) -> dict[str, Any]:
    """A cited evidence row as the run file keeps it: where, what, which tool."""
    return {k: row[k] for k in ("id", "tool", "start", "end", "text") if k in row}


class UniformVlmMethod(Method):
    """The single-VLM baseline on ``frames`` uniformly sampled frames."""

    name = "vlm-uniform"
    prompts = ("baseline_vlm",)

    def __init__(self, hub: Any, frames: int) -> None:
        self.hub, self.frames = hub, frames

    def models(self) -> dict[str, str]:
        return {"vlm": self.hub.profile.roles["vlm"].id} if "vlm" in self.hub.profile.roles else {}

    def answer(self, sample: Sample, video: Path) -> Prediction:
        from vidagent.media.video import Video
        from vidagent.prompts import load_prompt
        from vidagent.tools.look import frame_short_side, vlm_generate

        loaded = self.hub.get("vlm")
        with Video.open(video) as opened:
            frames = opened.sample_uniform(self.frames, short_side=frame_short_side(loaded, opened))
            duration = opened.duration
        options = lettered(sample.options)
        prompt = load_prompt("baseline_vlm").messages(
            n_frames=len(frames), duration=duration, question=sample.prompt, options=options
        )[0]["content"]
        output = vlm_generate(loaded, [list(frames.frames)], [prompt])
        text = output.texts[0]
        tokens = len(output.sequences[0])
        if sample.options is None:
            return Prediction(text=text, tokens=tokens)
        choice = parse_letter(text, len(sample.options))
        return Prediction(text=text, choice=choice, parse_failed=choice is None, tokens=tokens)


class BlindMethod(Method):
    """The planner LLM with the question only."""

    name = "blind"
    prompts = ("baseline_blind",)

    def __init__(self, llm: Any) -> None:
        self.llm = llm

    def models(self) -> dict[str, str]:
        return {"planner": str(self.llm.name)}

    def answer(self, sample: Sample, video: Path) -> Prediction:
        from vidagent.prompts import load_prompt

        options = lettered(sample.options)
        messages = load_prompt("baseline_blind").messages(question=sample.prompt, options=options)
        if sample.options:
            scores = self.llm.score_options(messages, sample.options)
            choice = scores.best
            return Prediction(text=lettered(sample.options)[choice], choice=choice, tokens=scores.tokens)
        generation = self.llm.generate(messages, max_new_tokens=32)
        return Prediction(
            text=generation.text.strip(), tokens=generation.prompt_tokens + generation.completion_tokens
        )


def make_method(settings: RunSettings, store: str | Path | None = None, *, lazy: bool = False) -> Method:
    """The method a run asks for, over the settings' profile.

    Its main model (planner or VLM) loads now, so a missing checkpoint stops the run before the
    first sample; with ``lazy`` it loads on first use instead, so a process that only writes the
    run's header (a Ray driver) loads none. Tool models always load on first use.
    """
    from vidagent.agent.api import LazyChat, VideoAgent
    from vidagent.agent.graph import Budget
    from vidagent.media.store import Store
    from vidagent.models.hub import ModelHub
    from vidagent.models.profile import load_profile
    from vidagent.tools.base import ToolContext

    if settings.method not in METHODS:
        raise VidagentError(f"unknown method {settings.method!r} (one of: {', '.join(METHODS)})")
    if settings.method == "planner":
        from vidagent.evals.routing import make_routing_method

        return make_routing_method(settings.profile, lazy=lazy)
    hub = ModelHub(load_profile(settings.profile))
    if settings.method == "vlm-uniform":
        if "vlm" not in hub.profile.roles:
            raise VidagentError(
                f"profile {hub.profile.name!r} has no 'vlm' role for the vlm-uniform baseline"
            )
        if not lazy:
            hub.get("vlm")
        return UniformVlmMethod(hub, settings.frames)
    planner = LazyChat(hub)
    if not lazy:
        planner.load()
    if settings.method == "blind":
        return BlindMethod(planner)
    budget = Budget(max_steps=settings.max_steps) if settings.max_steps else None
    return AgentMethod(
        VideoAgent(ToolContext(hub=hub, store=Store(store), fps=settings.fps), planner, budget=budget)
    )


def make_judge(profile: str, *, lazy: bool = False) -> LLMJudge:
    """An LLM judge over ``profile``'s planner (loaded now, or with ``lazy`` on its first verdict)."""
    from vidagent.agent.api import LazyChat
    from vidagent.models.hub import ModelHub
    from vidagent.models.profile import load_profile

    judge = LazyChat(ModelHub(load_profile(profile)))
    if not lazy:
        judge.load()
    return LLMJudge(judge)


# --- the run ------------------------------------------------------------------------------------
def _compact(event: dict[str, Any]) -> dict[str, Any]:
    """A trace event without bulky fields, for the run file."""
    keep = (
        "type",
        "node",
        "tool",
        "args",
        "calls",
        "fallback",
        "error",
        "seconds",
        "evidence_ids",
        "thought",
        "candidates",
    )
    return {k: event[k] for k in keep if k in event}


def read_run(path: str | Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A run file's header and its sample lines (a torn last line, from a kill, is ignored)."""
    path = Path(path)
    if not path.exists():
        raise RunError(f"{path}: no such run file")
    header: dict[str, Any] | None = None
    rows: list[dict[str, Any]] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):  # the process died mid-write
                break
            raise RunError(f"{path}:{number}: not JSON") from None
        if record.get("type") == "run":
            header = record
        elif record.get("type") == "sample":
            rows.append(record)
    if header is None:
        raise RunError(f"{path}: not a vidagent run file (no header line)")
    return header, rows


def _comparable(header: dict[str, Any]) -> dict[str, Any]:
    return {
        k: header.get(k)
        for k in (
            "format",
            "task",
            "method",
            "profile",
            "split",
            "frames",
            "fps",
            "max_steps",
            "judge",
            "models",
            "prompts",
            "exemplars",
        )
    }


class Runner:
    """Runs ``method`` over ``task`` into ``out`` (JSONL); see the module docstring."""

    def __init__(
        self,
        task: Task,
        settings: RunSettings,
        method: Method,
        out: str | Path,
        *,
        judge: LLMJudge | None = None,
        clips_dir: str | Path | None = None,
    ) -> None:
        self.task, self.settings, self.method, self.out = task, settings, method, Path(out)
        self.judge = judge
        self.clips_dir = Path(clips_dir) if clips_dir else self.out.parent / "clips"
        self._write_lock = threading.Lock()

    def header(self) -> dict[str, Any]:
        from vidagent.agent.exemplars import load_exemplars
        from vidagent.prompts import load_prompt

        prompts = [load_prompt(name).tag for name in self.method.prompts] + (
            [self.judge.tag] if self.judge else []
        )
        models = self.method.models() | ({"judge": self.judge.name} if self.judge else {})
        return self.settings.header(
            models,
            prompts,
            load_exemplars().tag if self.method.uses_exemplars else None,
            self.method.substitutes(),
        )

    def run(
        self,
        *,
        resume: bool = False,
        workers: int = 1,
        progress: Callable[[int, int], None] | None = None,
        engine: Engine | None = None,
    ) -> list[dict[str, Any]]:
        """Answer every sample not yet in the run file; returns every sample line, sorted by id.

        ``engine`` (e.g. :class:`~vidagent.evals.ray_eval.RayEngine`) answers the missing samples
        elsewhere and yields their lines as they finish; this process writes them.
        """
        header = self.header()
        done: dict[str, dict[str, Any]] = {}
        if resume and self.out.exists():
            old_header, rows = read_run(self.out)
            if _comparable(old_header) != _comparable(header):
                changed = sorted(
                    k for k, v in _comparable(header).items() if _comparable(old_header).get(k) != v
                )
                raise RunError(
                    f"{self.out}: was made with different settings ({', '.join(changed)}); "
                    "use another --out or drop --resume"
                )
            done = {row["id"]: row for row in rows}
            self._rewrite(old_header, list(done.values()))  # drops a torn last line
        elif self.out.exists() and not resume:
            raise RunError(f"{self.out} exists: pass --resume to continue it, or choose another --out")
        else:
            self.out.parent.mkdir(parents=True, exist_ok=True)
            self._rewrite(header, [])
        todo = [s for s in self.task.samples if s.id not in done]
        total, finished = len(self.task.samples), len(done)
        if progress:
            progress(finished, total)
        with ThreadPoolExecutor(max(1, workers)) as pool:
            if engine is None:  # threads over this process's models; each writes its line when done
                rows = pool.map(self.answer_one, todo)
            else:
                rows = (self._appended(row) for row in engine(self, todo))
            for row in rows:
                done[row["id"]] = row
                finished += 1
                if progress:
                    progress(finished, total)
        return sorted(done.values(), key=lambda r: r["id"])

    def _rewrite(self, header: dict[str, Any], rows: list[dict[str, Any]]) -> None:
        temp = self.out.with_suffix(self.out.suffix + ".tmp")
        with temp.open("w", encoding="utf-8") as handle:
            for record in (header, *rows):
                handle.write(json.dumps(record, default=str) + "\n")
        temp.replace(self.out)

    def answer_one(self, sample: Sample) -> dict[str, Any]:
        """Answer ``sample`` and append its line to the run file."""
        return self._appended(self.answer_row(sample))

    def _appended(self, row: dict[str, Any]) -> dict[str, Any]:
        with self._write_lock, self.out.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(row, default=str) + "\n")
        return row

    def answer_row(self, sample: Sample) -> dict[str, Any]:
        """The run-file line for ``sample``: its prediction, score and latency (nothing is written)."""
        started = time.perf_counter()
        row: dict[str, Any] = {
            "type": "sample",
            "id": sample.id,
            "task": self.task.name,
            "video": sample.video.name,
            "question": sample.question,
            "options": sample.options,
            "answer": sample.answer,
            "category": sample.category,
            "sub": sample.sub,
        }
        try:
            video = cut_clip(sample.video, sample.span, self.clips_dir) if sample.span else sample.video
            prediction = self.method.answer(sample, video)
            by_choice = sample.options is not None and self.task.score_prediction is None
            row.update(
                prediction=prediction.choice if by_choice else prediction.text,
                prediction_text=prediction.text,
                parse_failed=prediction.parse_failed,
                tool_calls=prediction.tool_calls,
                tokens=prediction.tokens,
                stop_reason=prediction.stop_reason,
                trajectory=prediction.trajectory,
                cited=prediction.cited,
            )
            row.update(self.score(sample, prediction))
        except VidagentError as exc:
            row.update(
                prediction=None,
                error=f"{type(exc).__name__}: {exc}",
                correct=False if sample.answer is not None else None,
            )
        row["latency"] = round(time.perf_counter() - started, 4)
        return row

    def score(self, sample: Sample, prediction: Prediction) -> dict[str, Any]:
        if self.task.score_prediction is not None:
            return self.task.score_prediction(sample, prediction)
        if sample.answer is None:  # hidden answers (e.g. EgoSchema's full set): submit, don't score
            return {"correct": None}
        if sample.options is not None:
            return {"correct": prediction.choice is not None and prediction.choice == sample.answer}
        scores = self.task.score_text(sample, prediction.text) if self.task.score_text else {}
        if self.judge is not None:
            scores |= self.judge(sample.question, str(sample.answer), prediction.text)
        primary = scores.get("judge_yes", scores.get("exact", next(iter(scores.values()), 0.0)))
        return {"scores": scores, "correct": bool(primary >= 0.5)}


def run_task(
    task: Task,
    settings: RunSettings,
    out: str | Path,
    *,
    store: str | Path | None = None,
    resume: bool = False,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
    engine: Engine | None = None,
) -> list[dict[str, Any]]:
    """Set up the method (and judge) for ``settings`` and run ``task`` into ``out``.

    With an ``engine`` the models are not loaded here: the engine's workers load their own.
    """
    lazy = engine is not None
    method = make_method(settings, store, lazy=lazy)
    judge = make_judge(settings.judge, lazy=lazy) if settings.judge and task.open_ended else None
    return Runner(task.head(settings.limit), settings, method, out, judge=judge).run(
        resume=resume, workers=workers, progress=progress, engine=engine
    )


# --- reports ------------------------------------------------------------------------------------
def _rate(values: Sequence[bool]) -> float | None:
    return round(100.0 * sum(values) / len(values), 2) if values else None


def summarise(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Accuracy overall and per category (and sub-category), latency, tools, failures of one run."""
    scored = [r for r in rows if r.get("correct") is not None]
    by_category: dict[str, list[bool]] = defaultdict(list)
    by_sub: dict[str, list[bool]] = defaultdict(list)
    for row in scored:
        by_category[row["category"]].append(bool(row["correct"]))
        for key, value in (row.get("sub") or {}).items():
            by_sub[f"{key}={value}"].append(bool(row["correct"]))
    metrics: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        for name, value in (row.get("scores") or {}).items():
            metrics[name].append(float(value))
    # a question that failed scores 0 (the official scripts divide by every question); one whose
    # answer is hidden (a test split) is not scored at all
    unscored = sum("error" in row and not row.get("scores") for row in rows)
    for values in metrics.values():
        values.extend([0.0] * unscored)
    latencies = [float(r["latency"]) for r in rows if "latency" in r]
    tools: Counter[str] = Counter()
    for row in rows:
        called = [e["tool"] for e in row.get("trajectory") or [] if e.get("type") == "tool_call"]
        tools.update(called or row.get("first_tools") or [])  # routing runs plan, and call nothing
    summary_metrics = {k: round(100.0 * sum(v) / len(v), 2) for k, v in sorted(metrics.items())}
    task = next((r.get("task") for r in rows if r.get("task")), None)
    if (official := official_accuracy(str(task), rows)) is not None:  # Video-MME, MVBench
        summary_metrics["acc_official"] = official  # the benchmark's own extractor and denominator
        summary_metrics["acc_strict"] = _rate(
            [bool(r["correct"]) for r in scored]
        )  # ours: no letter is wrong
    return {
        "samples": len(rows),
        "scored": len(scored),
        "accuracy": _rate([bool(r["correct"]) for r in scored]),
        "categories": {k: {"n": len(v), "accuracy": _rate(v)} for k, v in sorted(by_category.items())},
        "sub_categories": {k: {"n": len(v), "accuracy": _rate(v)} for k, v in sorted(by_sub.items())},
        "metrics": summary_metrics,
        "latency_p50": percentile(latencies, 50),
        "latency_p95": percentile(latencies, 95),
        "mean_tool_calls": round(sum(r.get("tool_calls", 0) for r in rows) / len(rows), 3) if rows else None,
        "mean_tokens": round(sum(r.get("tokens", 0) for r in rows) / len(rows), 1) if rows else None,
        "tool_usage": dict(tools.most_common()),
        "parse_failures": sum(bool(r.get("parse_failed")) for r in rows),
        "errors": sum("error" in r for r in rows),
    }


def report(paths: Sequence[str | Path]) -> dict[str, Any]:
    """One run's summary, or two runs' summaries and their difference (second minus first)."""
    if not 1 <= len(paths) <= 2:
        raise RunError("give one run file, or two to compare")
    runs = []
    for path in paths:
        header, rows = read_run(path)
        runs.append(
            {"file": str(path), "run": header, "summary": summarise(rows), "ids": {r["id"] for r in rows}}
        )
    result: dict[str, Any] = {"runs": [{k: v for k, v in r.items() if k != "ids"} for r in runs]}
    if len(runs) == 2:
        first, second = runs[0]["summary"], runs[1]["summary"]
        categories = sorted(set(first["categories"]) | set(second["categories"]))
        result["difference"] = {
            "common_samples": len(runs[0]["ids"] & runs[1]["ids"]),
            "accuracy": _minus(second["accuracy"], first["accuracy"]),
            "categories": {
                c: _minus(
                    second["categories"].get(c, {}).get("accuracy"),
                    first["categories"].get(c, {}).get("accuracy"),
                )
                for c in categories
            },
            "latency_p50": _minus(second["latency_p50"], first["latency_p50"]),
            "latency_p95": _minus(second["latency_p95"], first["latency_p95"]),
        }
    return result


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 4)


def _fmt(value: Any, suffix: str = "") -> str:
    if value is None:
        return "–"
    return f"{value:.2f}{suffix}" if isinstance(value, float) else f"{value}{suffix}"


def to_markdown(result: dict[str, Any]) -> str:
    """The report as markdown tables: one column per run (and the difference)."""
    runs = result["runs"]
    names = [f"{r['run']['method']} ({Path(r['file']).name})" for r in runs]
    diff = result.get("difference")
    head = ["", *names, *(["difference"] if diff else [])]
    lines = [f"# {runs[0]['run']['task']}", "", "| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]

    def line(label: str, values: list[Any], delta: Any = None, suffix: str = "") -> None:
        cells = [_fmt(v, suffix) for v in values] + ([_fmt(delta, suffix)] if diff else [])
        lines.append(f"| {label} | " + " | ".join(cells) + " |")

    summaries = [r["summary"] for r in runs]
    line(
        "samples (scored)",
        [f"{s['samples']} ({s['scored']})" for s in summaries],
        diff["common_samples"] if diff else None,
    )
    line("accuracy %", [s["accuracy"] for s in summaries], diff and diff["accuracy"])
    for category in sorted({c for s in summaries for c in s["categories"]}):
        line(
            f"· {category} %",
            [s["categories"].get(category, {}).get("accuracy") for s in summaries],
            diff and diff["categories"].get(category),
        )
    for sub in sorted({c for s in summaries for c in s["sub_categories"]}):
        line(f"· {sub} %", [s["sub_categories"].get(sub, {}).get("accuracy") for s in summaries])
    for metric in sorted({m for s in summaries for m in s["metrics"]}):
        line(f"{metric} %", [s["metrics"].get(metric) for s in summaries])
    line("latency p50", [s["latency_p50"] for s in summaries], diff and diff["latency_p50"], " s")
    line("latency p95", [s["latency_p95"] for s in summaries], diff and diff["latency_p95"], " s")
    line("tool calls / question", [s["mean_tool_calls"] for s in summaries])
    line("tokens / question", [s["mean_tokens"] for s in summaries])
    line("parse failures", [s["parse_failures"] for s in summaries])
    line("errors", [s["errors"] for s in summaries])
    for r, name in zip(runs, names, strict=True):
        usage = ", ".join(f"{tool} {n}" for tool, n in r["summary"]["tool_usage"].items()) or "none"
        models = ", ".join(
            f"{k}={v}"
            + (f" (ran {r['run']['substitutes'][k]})" if k in (r["run"].get("substitutes") or {}) else "")
            for k, v in r["run"]["models"].items()
        )
        lines += ["", f"{name}: profile {r['run']['profile']}, models {models}; tools used: {usage}"]
    return "\n".join(lines) + "\n"
