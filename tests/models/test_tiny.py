"""Tiny checkpoints: built offline, deterministic, loadable with plain `from_pretrained(dir)`."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from vidagent.core.errors import ModelNotAvailable
from vidagent.models.tiny import MARKER, TINY_ROLES, build_tiny, ensure_tiny, is_current


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One cache for the module (VIDAGENT_CACHE), with clip and planner built once."""
    root = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VIDAGENT_CACHE", str(root))
        for role in ("clip", "planner"):
            ensure_tiny(role)
        yield root


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    return load_file(path / "model.safetensors")


def test_roles() -> None:
    assert {"clip", "planner"} <= set(TINY_ROLES)
    assert list(TINY_ROLES) == sorted(TINY_ROLES)


def test_layout_in_the_cache(cache: Path) -> None:
    clip, planner = cache / "tiny" / "clip", cache / "tiny" / "planner"
    assert ensure_tiny("clip") == clip
    assert {"config.json", "model.safetensors", "tokenizer.json", "processor_config.json", MARKER} <= {
        p.name for p in clip.iterdir()
    }
    assert {"config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja", MARKER} <= {
        p.name for p in planner.iterdir()
    }
    record = json.loads((clip / MARKER).read_text())
    assert record["role"] == "clip" and record["builder_version"] >= 1
    assert not [p for p in (cache / "tiny").iterdir() if p.name.startswith(".")]  # no staging leftovers
    assert (clip / "model.safetensors").stat().st_size < 1_000_000  # tiny indeed


def test_clip_loads_back_and_runs(cache: Path) -> None:
    from transformers import AutoProcessor, CLIPModel, CLIPProcessor

    path = ensure_tiny("clip")
    model = CLIPModel.from_pretrained(path).eval()
    processor = CLIPProcessor.from_pretrained(path)
    assert type(AutoProcessor.from_pretrained(path)).__name__ == "CLIPProcessor"
    assert dict(processor.image_processor.size) == {"shortest_edge": 32}

    tokenizer = processor.tokenizer
    ids = tokenizer("A red car!")["input_ids"]
    assert ids[0] == tokenizer.bos_token_id and ids[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(ids, skip_special_tokens=True) == "a red car !"  # CLIP lower-cases

    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8))
    inputs = processor(
        text=["a cat", "a dog on a skateboard"], images=[image], return_tensors="pt", padding=True
    )
    assert inputs["pixel_values"].shape == (1, 3, 32, 32)
    with torch.inference_mode():
        text = model.get_text_features(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
        pixels = model.get_image_features(pixel_values=inputs["pixel_values"])
    assert text.pooler_output.shape == (2, model.config.projection_dim)
    assert pixels.pooler_output.shape == (1, model.config.projection_dim)
    assert torch.isfinite(text.pooler_output).all() and torch.isfinite(pixels.pooler_output).all()


def test_clip_truncates_long_text_to_its_positions(cache: Path) -> None:
    from transformers import CLIPModel, CLIPProcessor

    path = ensure_tiny("clip")
    processor = CLIPProcessor.from_pretrained(path)
    inputs = processor(text=["word " * 200], return_tensors="pt", padding=True, truncation=True)
    assert (
        inputs["input_ids"].shape[1]
        == CLIPModel.from_pretrained(path).config.text_config.max_position_embeddings
    )


def test_planner_loads_back_with_a_chat_template(cache: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = ensure_tiny("planner")
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    messages = [{"role": "user", "content": "What happens at 0:42?"}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert "<|im_start|>user\nWhat happens at 0:42?<|im_end|>" in text
    assert text.endswith("<|im_start|>assistant\n")
    assert tokenizer.decode(tokenizer("hello world")["input_ids"]) == "hello world"  # real SmolLM2 BPE
    assert model.config.vocab_size == len(tokenizer)

    ids = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    with torch.inference_mode():
        out = model.generate(**ids, max_new_tokens=4, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    assert out.shape[1] <= ids["input_ids"].shape[1] + 4
    assert (
        model.generation_config.eos_token_id
        == tokenizer.eos_token_id
        == tokenizer.convert_tokens_to_ids("<|im_end|>")
    )


@pytest.mark.parametrize("role", ["clip", "planner"])
def test_builds_are_deterministic(cache: Path, tmp_path: Path, role: str) -> None:
    again = build_tiny(role, tmp_path / role, force=True)
    first, second = _tensors(ensure_tiny(role)), _tensors(again)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert (ensure_tiny(role) / "tokenizer.json").read_bytes() == (again / "tokenizer.json").read_bytes()


def test_building_leaves_the_callers_rng_alone(tmp_path: Path) -> None:
    torch.manual_seed(1234)
    expected = torch.rand(3)
    torch.manual_seed(1234)
    build_tiny("clip", tmp_path / "clip")
    assert torch.equal(torch.rand(3), expected)


def test_current_checkpoints_are_reused_and_stale_ones_rebuilt(tmp_path: Path) -> None:
    path = build_tiny("clip", tmp_path / "clip")
    weights = path / "model.safetensors"
    stamp = weights.stat().st_mtime_ns
    assert build_tiny("clip", path) == path and weights.stat().st_mtime_ns == stamp

    record = json.loads((path / MARKER).read_text())
    (path / MARKER).write_text(json.dumps({**record, "builder_version": 0}))  # an older builder's output
    assert not is_current(path, "clip")
    build_tiny("clip", path)
    assert is_current(path, "clip") and (path / "model.safetensors").stat().st_mtime_ns != stamp

    (path / MARKER).unlink()  # an interrupted, foreign or hand-made directory
    build_tiny("clip", path)
    assert is_current(path, "clip")


def test_concurrent_builds_publish_one_complete_directory(tmp_path: Path) -> None:
    target = tmp_path / "clip"
    errors: list[BaseException] = []

    def build() -> None:
        try:
            build_tiny("clip", target)
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=build) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert is_current(target, "clip")
    assert [p.name for p in tmp_path.iterdir()] == ["clip"]  # staging directories cleaned up


def test_unknown_role() -> None:
    with pytest.raises(ModelNotAvailable, match="no tiny checkpoint builder exists for role 'ocr'"):
        build_tiny("ocr")
