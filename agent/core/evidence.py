"""`Evidence`: the one record type that flows from tools to the planner to the UI.

Columnar, in the spirit of supervision's `Detections`: each row is one finding, each column a
NumPy array of length N. The time span (``start``, ``end`` in seconds) is the key that fuses
tools: a retrieval hit, a track, a caption and a transcript segment about the same moment
overlap in time. Optional columns use sentinels: ``frame_index``/``track_id`` = -1, ``box`` =
NaN, ``mask_ref``/``text``/``video`` = None. Heavy payloads (masks, frames) live in the memory
store and are referenced by id in ``mask_ref``; they are never inlined, so ``to_prompt`` stays
small and JSON round-trips stay cheap.

Text that came out of a video (captions, OCR, speech) is *data*: ``to_prompt`` renders it as a
JSON string literal inside a row, so it cannot pose as an instruction or as a tool call.

Two forms, one meaning. In memory, where rows are computed, selected and rendered: ``Evidence``.
On the wire: its *records* (``to_records``), one JSON dict per row, which is what the agent's
graph state (and so the chat checkpoints), the store's result cache, ``Answer.evidence``, the
HTTP API, run files and ``vidagent ask --json`` all hold. A record that belongs to a session
carries its ``id``, its position in the session's evidence, which answers cite as ``[id]``
(:func:`numbered`); ``from_rows`` reads records back, ignoring ``id``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

JSONScalar = str | int | float | bool | None
_TEXT_LIMIT = 240  # characters of a row's text shown to the LLM


def _objects(values: Iterable[Any], n: int) -> np.ndarray:
    array = np.empty(n, dtype=object)
    array[:] = list(values) if n else []
    return array


@dataclass(eq=False, init=False)
class Evidence:
    """Findings of one or more tools; see the module docstring for the columns.

    The constructor takes sequences or arrays of length N (``tool`` may be one name for all rows;
    an optional column left as None gets its sentinel); the attributes are always NumPy columns.
    """

    tool: np.ndarray
    start: np.ndarray
    end: np.ndarray
    score: np.ndarray
    frame_index: np.ndarray
    box: np.ndarray
    track_id: np.ndarray
    mask_ref: np.ndarray
    text: np.ndarray
    video: np.ndarray
    data: list[dict[str, Any]]

    def __init__(
        self,
        tool: str | Sequence[str] | np.ndarray,
        start: Sequence[float] | np.ndarray,
        end: Sequence[float] | np.ndarray,
        score: Sequence[float] | np.ndarray,
        frame_index: Sequence[int] | np.ndarray | None = None,
        box: Sequence[Sequence[float]] | np.ndarray | None = None,
        track_id: Sequence[int] | np.ndarray | None = None,
        mask_ref: Iterable[str | None] | None = None,
        text: Iterable[str | None] | None = None,
        video: Iterable[str | None] | None = None,
        data: Iterable[Mapping[str, Any]] | None = None,
    ) -> None:
        n = len(start)
        self.tool = _objects(tool, n) if np.ndim(tool) else _objects([tool] * n, n)
        self.start = np.asarray(start, dtype=np.float64).reshape(n)
        self.end = np.asarray(end, dtype=np.float64).reshape(n)
        self.score = np.asarray(score, dtype=np.float32).reshape(n)
        self.frame_index = _filled(frame_index, n, -1, np.int64)
        self.track_id = _filled(track_id, n, -1, np.int64)
        self.box = (
            np.full((n, 4), np.nan, dtype=np.float32)
            if box is None
            else np.asarray(box, dtype=np.float32).reshape(n, 4)
        )
        self.mask_ref = _objects([None] * n if mask_ref is None else mask_ref, n)
        self.text = _objects([None] * n if text is None else text, n)
        self.video = _objects([None] * n if video is None else video, n)
        self.data = [dict(d) for d in data] if data is not None else [{} for _ in range(n)]
        if len(self.data) != n:
            raise ValueError(f"Evidence.data has {len(self.data)} rows, expected {n}")
        if np.any(self.end < self.start):
            raise ValueError("Evidence rows need end >= start")

    # --- construction --------------------------------------------------------------------
    @classmethod
    def empty(cls) -> Evidence:
        return cls(tool=[], start=[], end=[], score=[])

    @classmethod
    def from_rows(cls, rows: Sequence[dict[str, Any]]) -> Evidence:
        """Build from records (dicts with the column names as keys; missing optional keys = unset,
        other keys such as a session's ``id`` ignored)."""
        if not rows:
            return cls.empty()

        def column(name: str, default: Any) -> list[Any]:
            return [row.get(name, default) for row in rows]

        boxes = [np.full(4, np.nan) if b is None else b for b in column("box", None)]
        return cls(
            tool=column("tool", ""),
            start=column("start", 0.0),
            end=column("end", 0.0),
            score=column("score", 0.0),
            frame_index=[-1 if v is None else v for v in column("frame_index", -1)],
            box=np.asarray(boxes, dtype=np.float32),
            track_id=[-1 if v is None else v for v in column("track_id", -1)],
            mask_ref=column("mask_ref", None),
            text=column("text", None),
            video=column("video", None),
            data=column("data", {}),
        )

    @classmethod
    def merge(cls, parts: Iterable[Evidence]) -> Evidence:
        """Concatenate rows of several Evidence objects, keeping their order."""
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        if len(parts) == 1:
            return parts[0][:]
        return cls(
            tool=np.concatenate([p.tool for p in parts]),
            start=np.concatenate([p.start for p in parts]),
            end=np.concatenate([p.end for p in parts]),
            score=np.concatenate([p.score for p in parts]),
            frame_index=np.concatenate([p.frame_index for p in parts]),
            box=np.concatenate([p.box for p in parts]),
            track_id=np.concatenate([p.track_id for p in parts]),
            mask_ref=np.concatenate([p.mask_ref for p in parts]),
            text=np.concatenate([p.text for p in parts]),
            video=np.concatenate([p.video for p in parts]),
            data=[d for p in parts for d in p.data],
        )

    # --- selection -----------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.start)

    def __getitem__(self, index: int | slice | np.ndarray | Sequence[int] | Sequence[bool]) -> Evidence:
        """Rows by int, slice, boolean mask or integer array; always returns an Evidence."""
        if isinstance(index, int | np.integer):
            position = int(index)
            if not -len(self) <= position < len(self):
                raise IndexError(f"row {position} out of range for {len(self)} rows")
            index = [position]
        rows = np.arange(len(self))[index]
        rows = np.atleast_1d(rows)
        return Evidence(
            tool=self.tool[rows],
            start=self.start[rows],
            end=self.end[rows],
            score=self.score[rows],
            frame_index=self.frame_index[rows],
            box=self.box[rows],
            track_id=self.track_id[rows],
            mask_ref=self.mask_ref[rows],
            text=self.text[rows],
            video=self.video[rows],
            data=[self.data[i] for i in rows],
        )

    def overlapping(self, span: tuple[float, float]) -> Evidence:
        """Rows whose time span intersects ``span`` (closed intervals)."""
        start, end = span
        return self[(self.start <= end) & (self.end >= start)]

    def top(self, k: int) -> Evidence:
        """The ``k`` highest-scoring rows, best first (stable for ties)."""
        order = np.argsort(-self.score, kind="stable")[: max(k, 0)]
        return self[order]

    def by_tool(self, tool: str) -> Evidence:
        return self[self.tool == tool]

    # --- serialisation -------------------------------------------------------------------
    def to_records(self) -> list[dict[str, Any]]:
        """One JSON-ready dict per row; unset optional columns are left out."""
        records = []
        for i in range(len(self)):
            row: dict[str, Any] = {
                "tool": self.tool[i],
                "start": round(float(self.start[i]), 3),
                "end": round(float(self.end[i]), 3),
                "score": round(float(self.score[i]), 4),
            }
            if self.frame_index[i] >= 0:
                row["frame_index"] = int(self.frame_index[i])
            if not np.isnan(self.box[i]).any():
                row["box"] = [round(float(v), 1) for v in self.box[i]]
            if self.track_id[i] >= 0:
                row["track_id"] = int(self.track_id[i])
            for name in ("mask_ref", "text", "video"):
                value = getattr(self, name)[i]
                if value is not None:
                    row[name] = value
            if self.data[i]:
                row["data"] = self.data[i]
            records.append(row)
        return records

    def to_json(self) -> str:
        return json.dumps(self.to_records())

    @classmethod
    def from_json(cls, text: str) -> Evidence:
        return cls.from_rows(json.loads(text))

    def to_prompt(self, k: int = 10, *, first_id: int = 0, by_score: bool = True) -> str:
        """The top ``k`` rows as compact lines for an LLM: ids, spans, rounded numbers.

        ``first_id`` numbers rows as the agent's evidence list does, so an answer can cite
        ``[3]``. Text is rendered as a quoted JSON string (data, never instructions).
        """
        if not len(self):
            return "(no evidence)"
        ids = np.arange(first_id, first_id + len(self))
        order = np.argsort(-self.score, kind="stable") if by_score else np.arange(len(self))
        lines = []
        for i in order[:k]:
            parts = [
                f"[{ids[i]}] {self.tool[i]} {self.start[i]:.1f}-{self.end[i]:.1f}s score={self.score[i]:.2f}"
            ]
            if self.video[i] is not None:
                parts.append(f"video={str(self.video[i])[:12]}")
            if self.frame_index[i] >= 0:
                parts.append(f"frame={self.frame_index[i]}")
            if not np.isnan(self.box[i]).any():
                parts.append("box=(" + ",".join(f"{v:.0f}" for v in self.box[i]) + ")")
            if self.track_id[i] >= 0:
                parts.append(f"track={self.track_id[i]}")
            if self.mask_ref[i] is not None:
                parts.append(f"mask={self.mask_ref[i]}")
            for key, value in self.data[i].items():
                if not key.startswith("_"):  # "_key": kept for callers and the UI, not shown to the LLM
                    parts.append(f"{key}={_compact(value)}")
            if self.text[i] is not None:
                text = str(self.text[i])
                text = text if len(text) <= _TEXT_LIMIT else text[:_TEXT_LIMIT] + "…"
                parts.append("text=" + json.dumps(text, ensure_ascii=False))
            lines.append(" ".join(parts))
        if len(self) > k:
            lines.append(f"(+{len(self) - k} more rows)")
        return "\n".join(lines)

    def __repr__(self) -> str:
        tools = sorted({str(t) for t in self.tool})
        return f"Evidence({len(self)} rows, tools={tools})"


def numbered(records: Sequence[dict[str, Any]], ids: Iterable[int] | None = None) -> list[dict[str, Any]]:
    """Records with their session ids first: all of them, or those of ``ids`` (ids past the end are
    skipped: a citation of a row that does not exist)."""
    chosen = range(len(records)) if ids is None else [i for i in ids if 0 <= i < len(records)]
    return [{"id": i, **records[i]} for i in chosen]


def _filled(values: Any, n: int, sentinel: int, dtype: type) -> np.ndarray:
    if values is None:
        return np.full(n, sentinel, dtype=dtype)
    return np.asarray(values, dtype=dtype).reshape(n)


def _compact(value: Any) -> str:
    """Short rendering of a data value: floats rounded, lists clipped."""
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, list | tuple):
        shown = ",".join(_compact(v) for v in value[:6])
        return f"[{shown}{',…' if len(value) > 6 else ''}]"
    if isinstance(value, str):
        return json.dumps(value[:80], ensure_ascii=False)
    return str(value)
