"""Prompt templates, shipped as package data: YAML files with a name, a version and Jinja2
templates, one for each chat role (``system``, ``user``) and any other part its caller renders
itself (caption's ``instruction``). The agent's trace records which name and version ran.

A file with ``strip: false`` keeps the rendered text's ends as they are: for a prompt that ends
with the caller's own text (look's question), which must reach the model unchanged."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import jinja2
import yaml

_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=False)


@dataclass(frozen=True)
class Prompt:
    name: str
    version: int
    templates: dict[str, str]
    strip: bool = True  # strip the rendered text's leading and trailing whitespace

    @property
    def tag(self) -> str:
        return f"{self.name}@v{self.version}"

    def render(self, role: str, **values: Any) -> str:
        """One template (``system``, ``user`` or another the file names) rendered with ``values``."""
        text = _ENV.from_string(self.templates[role]).render(**values)
        return text.strip() if self.strip else text

    def messages(self, **values: Any) -> list[dict[str, str]]:
        """Render the system and user templates into chat messages."""
        return [
            {"role": role, "content": self.render(role, **values)}
            for role in ("system", "user")
            if role in self.templates
        ]


@cache
def load_prompt(name: str) -> Prompt:
    text = resources.files(__name__).joinpath(f"{name}.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    templates = {
        k: v for k, v in data.items() if k not in ("name", "version", "strip") and isinstance(v, str)
    }
    return Prompt(
        name=data["name"],
        version=int(data["version"]),
        templates=templates,
        strip=bool(data.get("strip", True)),
    )
