"""What keyframe mode costs retrieval, measured without a model, on synthetic event videos.

The videos are the grounding set's (:mod:`vidagent.grounding.synthetic`: shapes shown during
known spans of 4-12 s), 60 s at 10 fps, each written with a fixed GOP of 1, 2 and 10 s (scene
cuts off) and once as x264 writes by default (keyframe at least every 10 s, and at scene cuts,
here where a shape appears or leaves). Each is read on the index's 1 fps grid, exact and in
keyframe mode. Each query then scores a frame 1 when the frame's true time lies inside one of
its windows and 0 otherwise: a perfect encoder, so what is left is what the sampled frames can
show. retrieve's own span builder (``rank_moments``) turns the scores into moments.

Reported per GOP and mode: MR-R1@0.5 and MR-R1@0.7 (the QVHighlights metric of
:mod:`vidagent.evals.grounding_metrics`) over the top moment, hit@1 (the top moment's best frame
shows the shape) and the mean distance between a frame's true time and its grid time. With a
real CLIP the scores are noisier, not better: these are upper bounds for each mode.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vidagent.evals.benchmarks import Benchmark, Measurement, Settings
from vidagent.evals.benchmarks.index import video_dir
from vidagent.evals.grounding_metrics import moment_metrics
from vidagent.grounding.synthetic import SynthSpec, plan_video, records, write_video
from vidagent.media.store import FrameRows
from vidagent.media.video import Video, target_times
from vidagent.tools.retrieve import rank_moments

FPS = 1.0  # the index's default grid
SPEC = SynthSpec(seconds=60.0, fps=10.0, size=64, events=3, min_clips=2, max_clips=6)
# encoding -> libx264 options
GOPS: dict[str, dict[str, str]] = {
    f"GOP {seconds} s": {
        "preset": "ultrafast",
        "crf": "18",
        "x264-params": f"keyint={round(seconds * SPEC.fps)}:min-keyint={round(seconds * SPEC.fps)}:scenecut=0",
    }
    for seconds in (1, 2, 10)
} | {"x264 default (10 s, scene cuts)": {"preset": "veryfast", "crf": "18", "x264-params": "keyint=100"}}
# (ultrafast turns scene-cut detection off; veryfast keeps x264's default, scenecut=40)


def event_videos(count: int) -> list[tuple[list[dict], dict[str, Path]]]:
    """``count`` videos: (their queries, encoding -> file); the same events in every encoding."""
    folder = video_dir() / "keyframe_retrieval"
    folder.mkdir(exist_ok=True)
    plans = np.random.default_rng(SPEC.seed)
    made = []
    for n in range(count):
        events = plan_video(plans, SPEC)
        queries = records(f"video{n}", events, SPEC, first_qid=100 * n)
        encoded = {}
        for label, options in GOPS.items():
            path = folder / f"video{n}_{label.split(' (')[0].replace(' ', '_')}.mp4"
            if not path.exists():  # the same pixels in every encoding: the same seed for the noise
                write_video(path, events, SPEC, np.random.default_rng(n), options=options)
            encoded[label] = path
        made.append((queries, encoded))
    return made


def frame_times(path: Path, seek: str) -> tuple[np.ndarray, np.ndarray]:
    """(grid times, true times of the frames read there), as the index stores them."""
    with Video.open(path, seek=seek) as video:
        grid = target_times((0.0, video.duration), fps=FPS)
        frames = video.sample_at(grid, short_side=16)
    return grid, np.asarray(frames.timestamps, np.float64)


def top_moment(times: np.ndarray, windows: list[list[float]]) -> tuple[list[float], bool]:
    """retrieve's top moment for a perfect encoder, and whether its best frame is in a window."""
    scores = np.array([any(s <= t < e for s, e in windows) for t in times], np.float32)
    rows = FrameRows(times, np.arange(len(times)), np.zeros((len(times), 1), np.float32))
    best = rank_moments(rows, scores, 1, duration=SPEC.seconds, fps=FPS, tool="retrieve", video_id=None)
    record = best.to_records()[0]
    return [record["start"], record["end"], record["score"]], bool(record["data"]["frame_score"] > 0)


def run(settings: Settings) -> list[Measurement]:
    videos = event_videos(6 if settings.quick else 24)
    rows = []
    for label in GOPS:
        for seek in ("exact", "keyframe"):
            predictions, truth, hits, offsets = {}, {}, [], []
            for queries, encoded in videos:
                grid, times = frame_times(encoded[label], seek)
                offsets.append(np.abs(times - grid))
                for query in queries:
                    moment, hit = top_moment(times, query["relevant_windows"])
                    predictions[query["qid"]], truth[query["qid"]] = [moment], query["relevant_windows"]
                    hits.append(hit)
            metrics = moment_metrics(predictions, truth)
            extra = {
                "MR-R1@0.7": round(metrics["MR-R1@0.7"], 1),
                "hit@1": round(100 * float(np.mean(hits)), 1),
                "mean_offset_s": round(float(np.concatenate(offsets).mean()), 3),
                "queries": len(truth),
            }
            rows.append(
                Measurement(
                    "keyframe_retrieval", f"{label}, {seek}", metrics["MR-R1@0.5"], "MR-R1@0.5", extra
                )
            )
    return rows


BENCHMARK = Benchmark(
    "keyframe_retrieval",
    "retrieval with a perfect encoder on exact vs keyframe frames, by GOP (synthetic events)",
    run,
)
