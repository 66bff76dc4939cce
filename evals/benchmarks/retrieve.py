"""retrieve and library search latency over indexed videos, by video length (tiny CLIP).

The videos are indexed once (not timed); then each query is timed end to end through the tool's
own path: text embedding, reading the stored frame embeddings, scoring, span building (and the
store's per-call cache of tool results is bypassed by a new query each time). ``search`` scores
every indexed video of the library. The tiny CLIP makes the text encoder nearly free, so these
figures are the store read and the scoring, which is what grows with length.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from vidagent.evals.benchmarks import Benchmark, Measurement, Settings
from vidagent.evals.benchmarks.index import video_dir, write_long_video

QUERIES = 20


def run(settings: Settings) -> list[Measurement]:
    from vidagent.agent.api import VideoAgent
    from vidagent.tools.retrieve import search_library

    lengths = [1, 5] if settings.quick else [1, 10, 60]
    agent = VideoAgent.from_profile("tiny", store=Path(settings.workdir) / "retrieve.sqlite")
    rows = []
    videos = []
    for minutes in lengths:
        video = write_long_video(video_dir() / f"synthetic_{minutes}min.mp4", minutes)
        agent.index(video)
        videos.append(video)
        retrieve = agent.tools["retrieve"]
        retrieve(video, query="warm-up", k=5)
        latencies = []
        for q in range(QUERIES):
            started = time.perf_counter()
            retrieve(video, query=f"a moving gradient number {q}", k=5)
            latencies.append(time.perf_counter() - started)
        extra = {"frames": minutes * 60, "queries": QUERIES, "profile": "tiny"}
        rows.append(
            Measurement(
                "retrieve",
                f"{minutes} min p50",
                1000 * float(np.percentile(latencies, 50)),
                "ms/query",
                extra,
            )
        )
        rows.append(
            Measurement(
                "retrieve", f"{minutes} min p95", 1000 * float(np.percentile(latencies, 95)), "ms/query"
            )
        )
    latencies = []
    for q in range(QUERIES):
        started = time.perf_counter()
        search_library(agent.ctx, f"a moving gradient number {q}", k=10)
        latencies.append(time.perf_counter() - started)
    rows.append(
        Measurement(
            "retrieve",
            f"search over {len(videos)} videos p50",
            1000 * float(np.percentile(latencies, 50)),
            "ms/query",
            {"frames": sum(m * 60 for m in lengths)},
        )
    )
    return rows


BENCHMARK = Benchmark(
    "retrieve", "retrieve and library search latency by indexed video length (tiny CLIP)", run
)
