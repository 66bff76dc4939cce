"""The tools the planner may call: discovered from ``vidagent.tools``, filtered by the profile.

``ToolRegistry`` turns each ``ToolSpec`` into the JSON schema the planner decodes under, and
validates what the planner produced: an unknown tool name or bad arguments become a
``CallError`` message the planner sees on its next step, never an exception in the graph.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

import vidagent.tools
from vidagent.tooling import ToolSpec


@dataclass(frozen=True)
class ToolCall:
    tool: str
    args: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"tool": self.tool, "args": self.args}


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

    def __contains__(self, name: str) -> bool:
        return name in self.tools

    def describe(self) -> list[dict[str, Any]]:
        """Name, one-line description and call signature of each tool, for the prompt."""
        return [{"name": t.name, "description": t.description, "signature": _signature(t)} for t in self.tools.values()]

    def plan_schema(self, max_calls: int = 3) -> dict[str, Any]:
        """JSON schema of a planner reply: calls may only name registered tools."""
        variants = [
            {
                "type": "object",
                "properties": {"tool": {"const": name}, "args": spec.json_schema()},
                "required": ["tool", "args"],
                "additionalProperties": False,
            }
            for name, spec in self.tools.items()
        ]
        return {
            "type": "object",
            "properties": {
                "thought": {"type": "string", "maxLength": 200},
                "calls": {"type": "array", "items": {"anyOf": variants}, "maxItems": max_calls},
                "done": {"type": "boolean"},
            },
            "required": ["thought", "calls", "done"],
            "additionalProperties": False,
        }

    def validate(self, raw: Any) -> ToolCall:
        """Check one planner call; raise CallError with a message the planner can act on."""
        if not isinstance(raw, dict) or not isinstance(raw.get("tool"), str):
            raise CallError(f"a call must be an object with a 'tool' name, got {str(raw)[:80]!r}")
        name = raw["tool"]
        if name not in self.tools:
            raise CallError(f"unknown tool {name!r}; available: {', '.join(self.tools)}")
        args = raw.get("args") or {}
        try:
            parsed = self.tools[name].input_model.model_validate(args)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'args'}: {e['msg']}" for e in exc.errors())
            raise CallError(f"{name}: invalid arguments ({problems})") from None
        return ToolCall(tool=name, args=parsed.model_dump(mode="json", exclude_defaults=True))


def _signature(spec: ToolSpec) -> str:
    """``retrieve(query: string, span: array|null = None, k: integer = 5)`` with field help."""
    schema = spec.json_schema()
    required = set(schema.get("required", []))
    params, helps = [], []
    for name, prop in schema.get("properties", {}).items():
        kind = prop.get("type") or "|".join(p.get("type", "?") for p in prop.get("anyOf", []))
        params.append(f"{name}: {kind}" if name in required else f"{name}: {kind} = {prop.get('default')!r}")
        if prop.get("description"):
            helps.append(f"{name}: {prop['description']}")
    help_text = f" ({'; '.join(helps)})" if helps else ""
    return f"{spec.name}({', '.join(params)}){help_text}"
