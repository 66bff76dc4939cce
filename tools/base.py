"""What every tool shares: the context it runs in and the spec the planner sees.

A tool module in ``vidagent.tools`` defines a pydantic input model, a function
``run(ctx, video, args) -> Evidence`` and one ``TOOL = ToolSpec(...)``. The agent's registry
turns the specs into JSON schemas for the planner and validates its calls against them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from vidagent.core.evidence import Evidence
from vidagent.media.index import Index
from vidagent.media.store import Store
from vidagent.media.video import SEEK_MODES
from vidagent.models.hub import ModelHub

T = TypeVar("T")


@dataclass
class ToolContext:
    """Models, memory and index shared by all tools of one agent (or one server)."""

    hub: ModelHub
    store: Store
    fps: float = 1.0  # the index's sampling rate
    seek: str = "exact"  # the index's frames: "exact" (at the grid times) or "keyframe" (nearest keyframes)
    _index: Index | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _shared: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.seek not in SEEK_MODES:
            raise ValueError(f"seek must be one of {SEEK_MODES}, got {self.seek!r}")

    @property
    def index(self) -> Index:
        with self._lock:
            if self._index is None:
                self._index = Index(self.hub, self.store)
            return self._index

    def shared(self, name: str, make: Callable[[], T]) -> T:
        """The one ``name`` object of this context (made with ``make()`` on first use): a tool's memory."""
        with self._lock:
            if name not in self._shared:
                self._shared[name] = make()
            return self._shared[name]

    def cached(
        self,
        tool: str,
        video: str | Path | None,
        model_id: str,
        args: BaseModel,
        compute: Callable[[], Evidence],
    ) -> Evidence:
        """Return the stored result of ``tool`` on these inputs, computing it once."""
        video_id = self.store.content_hash(video) if video is not None else None
        key = self.store.result_key(tool, video_id, model_id, args.model_dump(mode="json"))
        if (hit := self.store.cached_result(key)) is not None:
            return hit
        evidence = compute()
        self.store.cache_result(key, tool, video_id, evidence)
        return evidence


@dataclass(frozen=True)
class ToolSpec:
    """A tool as the planner sees it: name, one-line description, input schema, function."""

    name: str
    description: str
    input_model: type[BaseModel]
    run: Callable[[ToolContext, Path, Any], Evidence]
    roles: tuple[str, ...] = ()  # profile roles the tool needs

    def json_schema(self) -> dict[str, Any]:
        return self.input_model.model_json_schema()

    def __call__(self, ctx: ToolContext, video: str | Path, **arguments: Any) -> Evidence:
        """Validate ``arguments`` and run the tool on ``video``."""
        return self.run(ctx, Path(video), self.input_model.model_validate(arguments))
