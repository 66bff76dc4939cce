"""The tools the planner may call: discovered from ``vidagent.tools``, filtered by the profile.

``ToolRegistry`` turns each ``ToolSpec`` into the JSON schema the planner decodes under, and
validates what the planner produced: an unknown tool name or bad arguments become a
``CallError`` message the planner sees on its next step, never an exception in the graph.
"""

from __future__ import annotations

import copy
import importlib
import itertools
import json
import math
import pkgutil
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

import vidagent.tools
from vidagent.core.question_words import Vocabulary, check_arguments, free_text_fields, question_arguments
from vidagent.tools.base import ToolSpec


@dataclass(frozen=True)
class ToolCall:
    tool: str
    args: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"tool": self.tool, "args": self.args}


TIME_ARGUMENTS = ("span", "times")
# the values a plan may give a bounded number (fps and the like): grammars enforce an enum, not a range
PLANNER_NUMBERS = (0.25, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 10.0)


class CallError(ValueError):
    """A planner call that cannot run (unknown tool, invalid arguments)."""


def discover_tools() -> dict[str, ToolSpec]:
    """Every ``TOOL`` defined by a module of ``vidagent.tools``."""
    found: dict[str, ToolSpec] = {}
    for module in pkgutil.iter_modules(vidagent.tools.__path__):
        spec = getattr(importlib.import_module(f"vidagent.tools.{module.name}"), "TOOL", None)
        if isinstance(spec, ToolSpec):
            found[spec.name] = spec
    return dict(sorted(found.items()))


class ToolRegistry:
    def __init__(self, tools: dict[str, ToolSpec]) -> None:
        self.tools = tools

    @classmethod
    def for_roles(cls, roles: set[str]) -> ToolRegistry:
        """The tools whose models the profile provides."""
        return cls({name: t for name, t in discover_tools().items() if set(t.roles) <= roles})

    def __contains__(self, name: object) -> bool:
        return name in self.tools

    def describe(self) -> list[dict[str, Any]]:
        """Name, one-line description and call signature of each tool, for the prompt."""
        return [
            {"name": t.name, "description": t.description, "signature": _signature(t)}
            for t in self.tools.values()
        ]

    def plan_schema(
        self,
        max_calls: int = 3,
        *,
        tools: Iterable[str] | None = None,
        vocabulary: Vocabulary | None = None,
        min_calls: int = 0,
        timed: bool = True,
        distinct: bool = False,
    ) -> dict[str, Any]:
        """JSON schema of a planner reply ``{"calls": [...], "done": bool}``.

        Calls may only name registered tools (``tools``: only these of them). With a
        ``vocabulary``, every free-text argument gets a ``pattern`` allowing only the question's
        words (``vidagent.core.question_words``), so a grammar-constrained backend cannot invent
        content. ``min_calls=1`` forbids the empty plan (nothing has been looked at yet).
        ``timed=False`` leaves out the time arguments (``span``, ``times``): for a first step whose
        question names no time, where any span would be made up. ``distinct=True`` allows each
        tool once (the calls are spelled out as tuples of different tools): a small model given
        room for two calls otherwise writes its one call twice, which costs as much as the first.
        """
        names = [name for name in self.tools if tools is None or name in set(tools)] or list(self.tools)
        variants = [
            {
                "type": "object",
                "properties": {"tool": {"const": name}, "args": self._args_schema(name, vocabulary, timed)},
                "required": ["tool", "args"],
                "additionalProperties": False,
            }
            for name in names
        ]
        calls: dict[str, Any] = {"type": "array", "items": {"anyOf": variants}, "maxItems": max_calls}
        if min_calls:
            calls["minItems"] = min_calls
        if distinct:
            tuples = [
                combo
                for n in range(max(min_calls, 1), max_calls + 1)
                for combo in itertools.permutations(range(len(variants)), n)
            ]
            shapes = [
                {
                    "type": "array",
                    "prefixItems": [variants[i] for i in combo],
                    "items": False,
                    "minItems": len(combo),
                    "maxItems": len(combo),
                }
                for combo in tuples
            ]
            if min_calls == 0:
                shapes.insert(0, {"type": "array", "maxItems": 0})
            calls = {"anyOf": shapes}
        return {
            "type": "object",
            "properties": {"calls": calls, "done": {"type": "boolean"}},
            "required": ["calls", "done"],
            "additionalProperties": False,
        }

    def _args_schema(self, name: str, vocabulary: Vocabulary | None, timed: bool = True) -> dict[str, Any]:
        schema = planner_schema(self.tools[name].json_schema())
        if not timed:  # no time in the question and no evidence yet: a span would be invented
            for key in TIME_ARGUMENTS:
                schema.get("properties", {}).pop(key, None)
        if vocabulary is None:
            return schema
        for field_name, kind in free_text_fields(schema).items():
            prop = schema["properties"][field_name]
            for key in ("minLength", "maxLength"):  # the pattern bounds the length
                prop.pop(key, None)
            if "anyOf" in prop:  # an optional string: constrain its string branch
                for branch in prop["anyOf"]:
                    if branch.get("type") == "string":
                        branch["pattern"] = vocabulary.pattern(kind)
                        branch.pop("maxLength", None)
            else:
                prop["pattern"] = vocabulary.pattern(kind)
        return schema

    def fallback_arguments(self, name: str, question: str) -> dict[str, Any]:
        """Arguments for ``name`` filled from the question alone (the planner's fallback): its
        free-text fields, and any other required string field, as ``question_arguments`` fills them."""
        schema = self.tools[name].json_schema()
        kinds = dict(free_text_fields(schema))
        for field_name in schema.get("required", []):
            if schema["properties"].get(field_name, {}).get("type") == "string":
                kinds.setdefault(field_name, "phrase")
        return question_arguments(name, kinds, question)

    def ordered(self, call: dict[str, Any]) -> dict[str, Any]:
        """A call with its arguments in the order plans are decoded in (the tool's field order),
        so a worked example shows exactly what the grammar lets the planner write."""
        fields = list(self.tools[call["tool"]].json_schema().get("properties", {}))
        args = dict(call.get("args") or {})
        rank = {name: i for i, name in enumerate(fields)}
        return {
            "tool": call["tool"],
            "args": dict(sorted(args.items(), key=lambda kv: rank.get(kv[0], len(rank)))),
        }

    def free_text(self, name: str) -> dict[str, str]:
        """``field -> kind`` of the tool's free-text arguments (``vidagent.core.question_words``)."""
        return free_text_fields(self.tools[name].json_schema())

    def validate(self, raw: Any, vocabulary: Vocabulary | None = None) -> ToolCall:
        """Check one planner call; raise CallError with a message the planner can act on.

        With a ``vocabulary``, free-text arguments must be made of the question's words.
        """
        if not isinstance(raw, dict) or not isinstance(raw.get("tool"), str):
            raise CallError(f"a call must be an object with a 'tool' name, got {_preview(raw)}")
        name = raw["tool"]
        if name not in self.tools:
            raise CallError(f"unknown tool {_preview(name)}; available: {', '.join(self.tools)}")
        args = raw.get("args") or {}
        if not isinstance(args, dict):
            raise CallError(f"{name}: 'args' must be an object, got {_preview(args)}")
        if (bad := _not_finite(args)) is not None:
            raise CallError(f"{name}: {bad}")
        try:
            parsed = self.tools[name].input_model.model_validate(args)
        except ValidationError as exc:
            errors = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'args'}: {e['msg'][:120]}" for e in exc.errors()
            )
            raise CallError(f"{name}: invalid arguments ({errors})") from None
        except (
            ValueError,
            TypeError,
            RecursionError,
            OverflowError,
        ) as exc:  # what a validator may raise itself
            raise CallError(f"{name}: invalid arguments ({type(exc).__name__})") from None
        args = parsed.model_dump(mode="json", exclude_defaults=True)
        if (bad := _bad_times(args)) is not None:
            raise CallError(f"{name}: {bad}")
        if vocabulary is not None and (
            problems := check_arguments(name, args, self.free_text(name), vocabulary)
        ):
            raise CallError("; ".join(problems))
        return ToolCall(tool=name, args=args)


def _preview(value: Any, limit: int = 80) -> str:
    """A short, safe rendering of anything a planner wrote (deep nesting and huge numbers included)."""
    try:
        return repr(str(value)[:limit])
    except (ValueError, RecursionError, TypeError):  # int past the digit limit, arrays nested 10,000 deep
        return f"a {type(value).__name__}"


def _not_finite(value: Any, path: str = "args", depth: int = 0) -> str | None:
    """Where ``value`` holds NaN or an infinity, or nests deeper than any argument does; else None."""
    if depth > 8:
        return f"{path} is nested too deep"
    if isinstance(value, float) and not math.isfinite(value):
        return f"{path} must be a finite number, not {value}"
    if isinstance(value, dict):
        return next(
            (bad for k, v in value.items() if (bad := _not_finite(v, f"{path}.{k}", depth + 1))), None
        )
    if isinstance(value, (list, tuple)):
        return next(
            (bad for i, v in enumerate(value) if (bad := _not_finite(v, f"{path}[{i}]", depth + 1))), None
        )
    return None


def _bad_times(args: dict[str, Any]) -> str | None:
    """A span must run forwards from 0 or later; times and ``t`` are 0 or later."""
    span = args.get("span")
    if isinstance(span, (list, tuple)) and len(span) == 2:
        start, end = span
        if not (isinstance(start, (int, float)) and isinstance(end, (int, float)) and 0 <= start < end):
            return f"span must be [start, end] seconds with 0 <= start < end, not {_preview(span)}"
    times = args.get("times")
    if isinstance(times, (list, tuple)) and any(not isinstance(t, (int, float)) or t < 0 for t in times):
        return f"times must be seconds, 0 or later, not {_preview(times)}"
    t = args.get("t")
    if isinstance(t, (int, float)) and t < 0:
        return f"t must be 0 or later, not {t}"
    return None


def planner_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A tool's input schema as plans are decoded under it: without the fields marked
    ``json_schema_extra={"planner": False}`` (thresholds and the like, for callers of the API),
    with the fields marked ``{"planner_required": True}`` required and never null (segment's
    prompt: a plan always names the object), and small integer ranges spelled out as enums,
    which every grammar backend enforces."""
    schema = copy.deepcopy(schema)
    properties = schema.get("properties", {})
    for name in [n for n, prop in properties.items() if prop.get("planner") is False]:
        del properties[name]
        if name in schema.get("required", []):
            raise ValueError(f"a required field ({name}) cannot be hidden from the planner")
    for name, prop in properties.items():
        if prop.pop("planner_required", False):  # optional for API callers, always given in a plan
            prop.pop("default", None)
            branches = [b for b in prop.pop("anyOf", []) if b.get("type") != "null"]
            if branches:
                prop.update(branches[0] if len(branches) == 1 else {"anyOf": branches})
            schema.setdefault("required", []).append(name)
        low, high = prop.get("minimum", prop.get("exclusiveMinimum")), prop.get("maximum")
        if prop.get("type") == "integer" and low is not None and high is not None and high - low <= 64:
            prop["enum"] = list(range(int(low), int(high) + 1))
        elif prop.get("type") == "number" and low is not None and high is not None:  # rates, thresholds
            inside = [v for v in PLANNER_NUMBERS if low <= v <= high and v != prop.get("exclusiveMinimum")]
            if inside:
                prop["enum"] = inside
    return schema


def _signature(spec: ToolSpec) -> str:
    """``retrieve(query, span=[start, end], k=5)``: required arguments, then optional ones with defaults."""
    schema = planner_schema(spec.json_schema())
    required = set(schema.get("required", []))
    params = []
    for name, prop in schema.get("properties", {}).items():
        if name in required:
            params.append(name)
            continue
        default = prop.get("default")
        if name == "span" or (default is None and name.endswith("span")):
            params.append(f"{name}=[start, end]")
        else:
            params.append(f"{name}={json.dumps(default)}")
    return f"{spec.name}({', '.join(params)})"
