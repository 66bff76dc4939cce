"""Frame sampling throughput: our sampler vs decord ``get_batch`` vs naive PyAV full decode.

Same files, same run: synthetic 720p and 1080p H.264 videos (moving gradient + noise, 25 fps,
GOP 50). Requests: 1 fps over the whole video and 32 frames uniformly. Times are the best of
``repeats`` runs; ratios are against the naive full decode (decode every frame, keep the
nearest ones). A second part samples 1 and 60 (quick: 5) minute videos at 1 fps, each in a
fresh subprocess, and reports peak RSS: it must stay flat with length.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import numpy as np

from vidagent.evals.benchmarks import Benchmark, Measurement, Settings
from vidagent.evals.benchmarks.index import video_dir, write_long_video
from vidagent.media.video import Video, decord_available, target_times


def write_hd_video(path: Path, size: tuple[int, int], seconds: int, fps: int = 25) -> Path:
    """A synthetic H.264 video with one slice per frame, as cameras, phones and YouTube write them.

    libx264's default here cuts each frame into slices, which favours FFmpeg's slice threading
    (decoding all 250 frames of a 10 s 720p file: 0.108 s with slice threads, 0.144 s with frame
    threads); with one slice per frame slice threading does nothing (0.178 s) and frame threads
    win (0.141 s), as on the real sample videos (bigbuckbunny: 0.177 s either way unthreaded or
    sliced, 0.133 s with frame threads). Our PyAV reader uses frame threads (``AUTO``).
    """
    if path.exists():
        return path
    import av

    width, height = size
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 30, (height, width, 3), dtype=np.uint8)
    ramp = np.linspace(0, 220, width, dtype=np.uint8)[None, :, None]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.options = {
            "preset": "ultrafast",
            "crf": "28",
            "g": "50",
            "x264-params": "sliced-threads=0:slices=1",
        }
        stream.codec_context.time_base = Fraction(1, fps)
        for i in range(seconds * fps):
            frame = np.broadcast_to(np.roll(ramp, 4 * i, axis=1) + noise, (height, width, 3)).copy()
            video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
            video_frame.pts = i
            out.mux(stream.encode(video_frame))
        out.mux(stream.encode())
    return path


def naive_full_decode(path: Path, times: np.ndarray) -> int:
    """Decode every frame single-threaded, keep the ones shown at the target times."""
    import av

    kept, wanted = 0, list(times)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            t = float(frame.pts * stream.time_base)
            while wanted and t + 1 / 25 > wanted[0]:
                frame.to_ndarray(format="rgb24")
                kept += 1
                wanted.pop(0)
    return kept


def decord_batch(path: Path, times: np.ndarray) -> int:
    import decord

    reader = decord.VideoReader(str(path), ctx=decord.cpu(0))
    indices = np.minimum((times * reader.get_avg_fps()).astype(int), len(reader) - 1)
    return len(reader.get_batch(list(indices)).asnumpy())


def ours(backend: str) -> Callable[[Path, np.ndarray], int]:
    def sample(path: Path, times: np.ndarray) -> int:
        with Video.open(path, backend=backend) as video:
            return len(video.sample_at(times))

    return sample


def best_of(fn: Callable[[], int], repeats: int) -> float:
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        timings.append(time.perf_counter() - started)
    return min(timings)


RSS_CHILD = textwrap.dedent(
    """
    import json, sys
    from vidagent.evals.benchmarks import peak_rss_mb
    from vidagent.media.video import Video
    n = 0
    with Video.open(sys.argv[1], backend=sys.argv[2]) as video:
        for chunk in video.iter_chunks(fps=1.0, short_side=224, chunk_size=32):
            n += len(chunk)
    print(json.dumps({"frames": n, "peak_rss_mb": peak_rss_mb()}))
    """
)


def run(settings: Settings) -> list[Measurement]:
    seconds = 20 if settings.quick else 60
    repeats = 1 if settings.quick else 3
    rows = []
    methods: dict[str, Callable[[Path, np.ndarray], int]] = {
        "naive PyAV full decode": naive_full_decode,
        "ours (pyav)": ours("pyav"),
    }
    if decord_available():
        methods["decord get_batch"] = decord_batch
        methods["ours (decord)"] = ours("decord")
    for label, size in (("720p", (1280, 720)), ("1080p", (1920, 1080))):
        path = write_hd_video(video_dir() / f"synthetic_{label}_{seconds}s_1slice.mp4", size, seconds)
        for request, times in (
            ("1 fps", target_times(float(seconds), fps=1.0)),
            ("uniform 32", target_times(float(seconds), n=32)),
        ):
            baseline = None
            for name, method in methods.items():
                spent = best_of(lambda m=method, p=path, t=times: m(p, t), repeats)
                baseline = baseline or spent
                rows.append(
                    Measurement(
                        "sampling",
                        f"{label} {request}: {name}",
                        len(times) / spent,
                        "frames/s",
                        {"seconds": round(spent, 3), "speedup_vs_naive": round(baseline / spent, 2)},
                    )
                )
    for minutes in [1, 5] if settings.quick else [1, 60]:
        video = write_long_video(video_dir() / f"synthetic_{minutes}min.mp4", minutes)
        for backend in ["pyav", "decord"] if decord_available() else ["pyav"]:
            result = subprocess.run(
                [sys.executable, "-c", RSS_CHILD, str(video), backend],
                check=True,
                capture_output=True,
                text=True,
            )
            measured = json.loads(result.stdout.strip().splitlines()[-1])
            rows.append(
                Measurement(
                    "sampling",
                    f"{minutes} min @1fps streamed ({backend})",
                    measured["peak_rss_mb"],
                    "MiB peak RSS",
                    {"frames": measured["frames"]},
                )
            )
    return rows


BENCHMARK = Benchmark(
    "sampling", "sampler vs decord get_batch vs naive PyAV decode; peak RSS 1 vs 60 min", run
)
