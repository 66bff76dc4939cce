"""Index throughput (frames/s) and peak memory as video length grows.

Each case runs in a fresh subprocess so its peak RSS is its own. Videos are synthetic (moving
gradient + noise, 320x240, 10 fps, H.264) written once per length into the work dir. The
encoder is the tiny CLIP (``tiny``) or the cpu profile's architecture, CLIP ViT-B/32, built
from its config with random weights (``vit-b32``): speed does not depend on the weights.
``vit-b32+compile`` is the same tower under torch.compile. Each case warms up on one chunk
(model load, compilation) before the clock starts.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from vidagent.evals.benchmarks import Benchmark, Measurement, Settings, synchronize

CHILD = textwrap.dedent(
    """
    import json, sys, time
    import numpy as np
    from vidagent.evals.benchmarks import flush_denormals, peak_rss_mb
    from vidagent.evals.benchmarks.index import hub_for
    from vidagent.media.index import Index
    from vidagent.media.store import Store

    flush_denormals()
    video, store, encoder, device = sys.argv[1:5]
    hub = hub_for(encoder, device)
    index = Index(hub, Store(store), chunk_size=64 if device == "cuda" else 32)
    size = index.encoder.input_size  # load, then warm up (torch.compile compiles here) before timing
    index.encoder.encode_images(np.zeros((index.chunk_size, size, size, 3), np.uint8))
    report = index.add(video, fps=1.0)
    print(json.dumps({"frames": report.frames_added, "seconds": report.seconds,
                      "peak_rss_mb": peak_rss_mb()}))
    """
)


def hub_for(encoder: str, device: str):  # -> ModelHub
    """A hub whose `clip` role is the tiny CLIP or a random-weight ViT-B/32 (ViT-L/14) saved locally.

    ``ENCODER+compile`` runs the same vision tower under torch.compile (``options: {compile: true}``).
    """
    from vidagent.core.paths import cache_dir
    from vidagent.models.hub import ModelHub
    from vidagent.models.profile import parse_profile

    base, compiled = encoder.removesuffix("+compile"), encoder.endswith("+compile")
    if base == "tiny":
        clip_id = "tiny/clip"
    else:
        clip_id = str(random_clip(cache_dir() / "bench" / base, large=base == "vit-l14"))
    dtype = "bfloat16" if device == "cuda" else "float32"
    role = {"id": clip_id, "device": device, "dtype": dtype, "options": {"compile": True} if compiled else {}}
    return ModelHub(
        parse_profile(
            {"name": f"bench-{encoder}", "roles": {"clip": role}}, source="bench", default_name="bench"
        )
    )


def random_clip(out: Path, large: bool = False) -> Path:
    """CLIP ViT-B/32 (or ViT-L/14) architecture with random weights and a working processor."""
    if (out / "config.json").exists():
        return out
    import torch
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPProcessor

    from vidagent.models.tiny import clip_tokenizer

    torch.manual_seed(0)
    if large:
        config = CLIPConfig(
            text_config={"hidden_size": 768, "intermediate_size": 3072, "num_attention_heads": 12},
            vision_config={
                "hidden_size": 1024,
                "intermediate_size": 4096,
                "num_attention_heads": 16,
                "num_hidden_layers": 24,
                "patch_size": 14,
            },
            projection_dim=768,
        )
    else:
        config = CLIPConfig(vision_config={"patch_size": 32})  # the ViT-B/32 defaults
    model = CLIPModel(config).eval()
    processor = CLIPProcessor(image_processor=CLIPImageProcessorPil(), tokenizer=clip_tokenizer())
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def video_dir() -> Path:
    """Generated benchmark videos are kept between runs (they take a while to encode)."""
    from vidagent.core.paths import cache_dir

    path = cache_dir() / "bench" / "videos"
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_long_video(path: Path, minutes: float, fps: int = 10, size: tuple[int, int] = (320, 240)) -> Path:
    """A synthetic H.264 video of the given length (cheap to encode, real to decode)."""
    if path.exists():
        return path
    from fractions import Fraction

    import av
    import numpy as np

    width, height = size
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 40, (height, width, 3), dtype=np.uint8)
    ramp = np.linspace(0, 215, width, dtype=np.uint8)[None, :, None]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.options = {"preset": "ultrafast", "crf": "30"}
        stream.codec_context.time_base = Fraction(1, fps)
        for i in range(int(minutes * 60 * fps)):
            frame = np.roll(ramp, i % width, axis=1) + noise
            frame = np.broadcast_to(frame, (height, width, 3)).copy()
            video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
            video_frame.pts = i
            out.mux(stream.encode(video_frame))
        out.mux(stream.encode())
    return path


def run(settings: Settings) -> list[Measurement]:
    work = Path(settings.workdir)
    lengths = [1, 5] if settings.quick else [1, 10, 60]
    encoders = ["tiny"] if settings.quick else ["tiny", "vit-b32", "vit-b32+compile"]
    if settings.full_size:
        encoders = ["vit-b32", "vit-b32+compile", "vit-l14"]
    rows = []
    for minutes in lengths:
        video = write_long_video(video_dir() / f"synthetic_{minutes}min.mp4", minutes)
        for encoder in encoders:
            store = work / f"{encoder.replace('+', '-')}_{minutes}.sqlite"
            result = subprocess.run(
                [sys.executable, "-c", CHILD, str(video), str(store), encoder, settings.device],
                check=True,
                capture_output=True,
                text=True,
            )
            measured = json.loads(result.stdout.strip().splitlines()[-1])
            case = f"{encoder} {minutes} min @1fps"
            fps = measured["frames"] / measured["seconds"]
            rows.append(
                Measurement(
                    "index",
                    case,
                    fps,
                    "frames/s",
                    {"frames": measured["frames"], "realtime_x": round(fps, 1), "device": settings.device},
                )
            )
            rows.append(Measurement("index", case, measured["peak_rss_mb"], "MiB peak RSS"))
    return rows + preprocessing(settings)


def preprocessing(settings: Settings) -> list[Measurement]:
    """ViT-B/32's pixels for 32 frames decoded at 224x398 (as the index decodes a 16:9 video):
    the processor (PIL) against our crop and normalisation in torch on the device, same values."""
    import time

    import numpy as np
    from transformers import CLIPImageProcessorPil, CLIPProcessor

    from vidagent.models.encoders import ClipEncoder
    from vidagent.models.tiny import clip_tokenizer

    encoder = ClipEncoder(hub_for("tiny", settings.device).get("clip"))
    encoder.processor = CLIPProcessor(image_processor=CLIPImageProcessorPil(), tokenizer=clip_tokenizer())
    frames = np.random.default_rng(0).integers(0, 256, (32, 224, 398, 3), dtype=np.uint8)

    def best(pixels) -> float:
        timings = []
        for _ in range(5):
            started = time.perf_counter()
            pixels(frames)
            synchronize(settings.device)
            timings.append(time.perf_counter() - started)
        return min(timings)

    processor = best(
        lambda f: encoder.processor(images=list(f), return_tensors="pt")["pixel_values"].to(encoder.device)
    )
    ours = best(encoder._pixels)
    return [
        Measurement("index", "ViT-B/32 pixels, 32 frames 224x398: processor", processor * 1000, "ms"),
        Measurement(
            "index",
            "ViT-B/32 pixels, 32 frames 224x398: torch on the device",
            ours * 1000,
            "ms",
            {"speedup": round(processor / ours, 2), "device": settings.device},
        ),
    ]


BENCHMARK = Benchmark("index", "index frames/s and peak RSS for 1/10/60-minute videos (flat memory)", run)
