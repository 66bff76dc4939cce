"""Benchmark of the temporal grounding head at CLIP ViT-B/32 sizes (random weights, no download).

The CLIP is ``CLIPModel(CLIPConfig())`` (transformers' defaults are ViT-B/32: vision width 768,
12 layers, patch 32 at 224 px; text width 512), the head is ``GroundConfig.for_clip`` of it
(K = 4 layers, d = 256). Cases:

* ``parameters``: learnable parameters of the head.
* ``train_step``: one AdamW step (forward, backward, update) on a batch of queries, each on a
  150 s video (75 clips of 2 s, 50 tokens x 4 layers per clip), from cached features.
* ``head_infer``: the head alone, per minute of video (30 clips), one query.
* ``clip_features``: the frozen CLIP's pass over a minute's 30 frames (already decoded,
  224 px) with every layer's hidden states, plus the query's text tower pass.
* ``infer_total``: both, i.e. grounding one query in one new minute of video.
* ``feature_bytes``: what the cache stores per minute (float16).

``settings.device == "cuda"`` runs the same on the GPU (synchronised timings).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from vidagent.evals.benchmarks import Benchmark, Measurement, Settings, synchronize

NAME = "ground"


def _timed(fn: Callable[[], object], repeats: int, device: str, warmup: int = 1) -> float:
    """Median wall time of ``fn`` in milliseconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _encoder(device: str):  # -> ClipEncoder over a random-weight ViT-B/32
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPProcessor

    from vidagent.models.encoders import ClipEncoder
    from vidagent.models.hub import LoadedModel
    from vidagent.models.profile import RoleSpec
    from vidagent.models.tiny import clip_tokenizer

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = CLIPModel(CLIPConfig()).eval().to(device)
    processor = CLIPProcessor(image_processor=CLIPImageProcessorPil(), tokenizer=clip_tokenizer())
    loaded = LoadedModel(
        role="clip",
        spec=RoleSpec(id="random/clip-vit-base-patch32"),
        model=model,
        processor=processor,
        device=device,
        dtype=torch.float32,
        source="random weights",
    )
    return ClipEncoder(loaded)


def run(settings: Settings) -> list[Measurement]:
    from vidagent.grounding.head import (
        GroundConfig,
        GroundHead,
        GroundTargets,
        ground_loss,
        text_features,
        vision_features,
    )

    device = "cuda" if settings.device == "cuda" and torch.cuda.is_available() else "cpu"
    encoder = _encoder(device)
    config = GroundConfig.for_clip(encoder.model.config, encoder.model_id)
    head = GroundHead(config).to(device)
    extra = {"device": device, "clip": "ViT-B/32 (random)", "K": config.num_layers, "d": config.hidden}
    rows = [Measurement(NAME, "parameters", head.num_parameters(), "params", extra)]

    repeats = 3 if settings.quick else 10
    batch = 8 if settings.quick else 32
    clips, tokens, words = 75, 50, 20
    rng = torch.Generator().manual_seed(0)
    video = torch.randn(batch, clips, config.num_layers, tokens, config.vision_width, generator=rng).to(
        device
    )
    text = torch.randn(batch, words, config.num_layers, config.text_width, generator=rng).to(device)
    video_mask = torch.ones(batch, clips, dtype=torch.bool, device=device)
    text_mask = torch.ones(batch, words, dtype=torch.bool, device=device)
    windows = torch.tensor([[[10.0, 30.0]]] * batch, device=device)
    saliency = torch.zeros(batch, clips, device=device)
    saliency[:, 10:30] = 1.0
    targets = GroundTargets(
        windows,
        torch.ones(batch, 1, dtype=torch.bool, device=device),
        saliency,
        torch.arange(batch, device=device),
    )
    optimizer = torch.optim.AdamW(head.parameters(), lr=1e-4)

    def step() -> None:
        head.train()
        loss = ground_loss(head(video, video_mask, text, text_mask), targets, config)["total"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    rows.append(
        Measurement(
            NAME,
            "train_step",
            _timed(step, repeats, device),
            "ms",
            {**extra, "batch": batch, "clips": clips, "tokens": tokens},
        )
    )

    per_minute = int(60 / config.clip_seconds)
    frames = np.random.default_rng(0).integers(0, 256, size=(per_minute, 224, 224, 3), dtype=np.uint8)
    features = vision_features(encoder, frames, config)
    query = text_features(encoder, ["a person opens the door of a red car"], config)[0]
    head.eval()
    head_ms = _timed(lambda: head.predict(features, query), repeats, device)
    clip_ms = _timed(
        lambda: (
            vision_features(encoder, frames, config),
            text_features(encoder, ["a person opens the door of a red car"], config),
        ),
        max(2, repeats // 2),
        device,
    )
    rows += [
        Measurement(NAME, "head_infer", head_ms, "ms/min video", {**extra, "clips": per_minute}),
        Measurement(NAME, "clip_features", clip_ms, "ms/min video", {**extra, "frames": per_minute}),
        Measurement(NAME, "infer_total", head_ms + clip_ms, "ms/min video", extra),
        Measurement(
            NAME,
            "feature_bytes",
            features.nbytes / 2**20,
            "MiB/min video",
            {**extra, "shape": "x".join(map(str, features.shape))},
        ),
    ]
    return rows


BENCHMARK = Benchmark(
    name=NAME,
    description="Grounding head at ViT-B/32 sizes: parameters, training step, inference ms per minute of video.",
    run=run,
)
