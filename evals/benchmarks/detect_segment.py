"""Benchmark of detect_track's detector and segment's SAM / SAM 2 at real sizes (random weights, no download).

Architectures are built from their config classes with the published hyper-parameters:

* CPU (default): the ``cpu`` profile's grounding-dino-tiny (Swin-T, BERT-base; transformers'
  ``GroundingDinoConfig()`` defaults), sam-vit-base (``SamConfig()`` defaults: ViT-B, 1024 px)
  and sam2.1-hiera-tiny (``Sam2VideoConfig()`` defaults).
* ``settings.full_size`` with CUDA: the ``gpu`` profile's grounding-dino-base (Swin-B 384),
  sam-vit-huge (ViT-H) and sam2.1-hiera-large, in bfloat16.

Cases, each in frames per second through the tools' own code paths on 1280x720 input:

* ``detect``: ``detect_frames`` (processor, GroundingDINO forward, post-processing, label
  assignment) on frames decoded at the processor's size (750x1333), 3-label prompt, batches of 4.
* ``segment_sam``: ``sam_masks``, one box prompt per frame, frames at 576x1024.
* ``propagate_sam2``: ``propagate`` (decode, SAM 2 streaming, mask post-processing and session
  pruning) through a generated 720p clip; ``extra`` reports the process's peak RSS after it.

``settings.quick`` runs a few frames only.
"""

from __future__ import annotations

import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from vidagent.evals.benchmarks import Benchmark, Measurement, Settings, peak_rss_mb, synchronize

NAME = "detect_segment"
WIDTH, HEIGHT = 1280, 720


def _loaded(role: str, model: torch.nn.Module, processor: object, device: str, dtype: torch.dtype, name: str):
    from vidagent.models.hub import LoadedModel
    from vidagent.models.profile import RoleSpec

    return LoadedModel(
        role=role,
        spec=RoleSpec(id=f"random/{name}"),
        model=model.eval().to(device, dtype),
        processor=processor,
        device=device,
        dtype=dtype,
        source="random weights",
    )


def _image_processor(name: str, module: str) -> type:
    """transformers' PIL image processor ``name`` (its torchvision twin where this transformers has no PIL one)."""
    import importlib

    try:
        return getattr(importlib.import_module(f"transformers.models.{module}"), f"{name}Pil")
    except (ImportError, AttributeError):
        return getattr(importlib.import_module("transformers"), name)


def _build(factory):  # random init, same seed every run, caller's RNG untouched
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return factory()


def detector(full: bool, device: str, dtype: torch.dtype):
    from transformers import (
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoProcessor,
        SwinConfig,
    )

    from vidagent.models.tiny import bert_tokenizer

    if full:  # grounding-dino-base: Swin-B at 384 px
        backbone = SwinConfig(
            embed_dim=128,
            depths=[2, 2, 18, 2],
            num_heads=[4, 8, 16, 32],
            window_size=12,
            image_size=384,
            out_indices=[2, 3, 4],
        )
        config, name = GroundingDinoConfig(backbone_config=backbone), "grounding-dino-base"
    else:
        config, name = GroundingDinoConfig(), "grounding-dino-tiny"
    model = _build(lambda: GroundingDinoForObjectDetection(config))
    images = _image_processor(
        "GroundingDinoImageProcessor", "grounding_dino.image_processing_pil_grounding_dino"
    )()
    processor = GroundingDinoProcessor(
        image_processor=images, tokenizer=bert_tokenizer(vocab_size=30522, model_max_length=512)
    )
    return _loaded("detector", model, processor, device, dtype, name)


def segmenter(full: bool, device: str, dtype: torch.dtype):
    from transformers import SamConfig, SamModel, SamProcessor, SamVisionConfig

    if full:  # sam-vit-huge
        vision = SamVisionConfig(
            hidden_size=1280,
            num_hidden_layers=32,
            num_attention_heads=16,
            mlp_dim=5120,
            global_attn_indexes=[7, 15, 23, 31],
        )
        config, name = SamConfig(vision_config=vision), "sam-vit-huge"
    else:
        config, name = SamConfig(), "sam-vit-base"
    model = _build(lambda: SamModel(config))
    return _loaded(
        "segmenter",
        model,
        SamProcessor(image_processor=_image_processor("SamImageProcessor", "sam.image_processing_pil_sam")()),
        device,
        dtype,
        name,
    )


def video_segmenter(full: bool, device: str, dtype: torch.dtype):
    from transformers import Sam2HieraDetConfig, Sam2VideoConfig, Sam2VideoModel, Sam2VisionConfig

    from vidagent.models.sam2_processor import Sam2ImageProcessorTorch, TorchSam2VideoProcessor

    if full:  # sam2.1-hiera-large
        backbone = Sam2HieraDetConfig(
            hidden_size=144,
            blocks_per_stage=[2, 6, 36, 4],
            embed_dim_per_stage=[144, 288, 576, 1152],
            num_attention_heads_per_stage=[2, 4, 8, 16],
            window_size_per_stage=[8, 4, 16, 8],
            global_attention_blocks=[23, 33, 43],
            window_positional_embedding_background_size=[7, 7],
        )
        vision = Sam2VisionConfig(backbone_config=backbone, backbone_channel_list=[1152, 576, 288, 144])
        config, name = Sam2VideoConfig(vision_config=vision), "sam2.1-hiera-large"
    else:
        config, name = Sam2VideoConfig(), "sam2.1-hiera-tiny"
    model = _build(lambda: Sam2VideoModel(config))
    processor = TorchSam2VideoProcessor(Sam2ImageProcessorTorch(size=1024))
    return _loaded("video_segmenter", model, processor, device, dtype, name)


def write_clip(path: Path, frames: int, fps: float = 10.0) -> Path:
    """A 720p H.264 clip of a bright square drifting over noise."""
    import av

    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.codec_context.options = {"preset": "ultrafast"}
        for i in range(frames):
            image = rng.integers(0, 80, (HEIGHT, WIDTH, 3), dtype=np.uint8)
            x = 100 + 20 * i
            image[300:460, x : x + 200] = 230
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(stream.encode())
    return path


def _per_second(fn, frames: int, device: str) -> float:
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return frames / (time.perf_counter() - start)


def run(settings: Settings) -> list[Measurement]:
    from vidagent.media.video import Video
    from vidagent.tools.detect_track import detect_frames
    from vidagent.tools.segment import propagate, sam_masks

    device = "cuda:0" if settings.device == "cuda" and torch.cuda.is_available() else "cpu"
    full = settings.full_size and device != "cpu"
    dtype = torch.bfloat16 if full and torch.cuda.is_bf16_supported() else torch.float32
    n_detect, n_sam, n_sam2 = (2, 2, 4) if settings.quick else (8, 8, 24)
    batch = 4 if n_detect >= 4 else n_detect
    base = {"device": device, "dtype": str(dtype).removeprefix("torch."), "threads": torch.get_num_threads()}
    rng = np.random.default_rng(0)
    rows = []

    loaded = detector(full, device, dtype)
    labels = ["person", "bicycle", "car"]
    frames = rng.integers(0, 256, (n_detect, 750, 1333, 3), dtype=np.uint8)  # the tool's decode size for 720p

    def detect() -> None:
        for start in range(0, n_detect, batch):
            detect_frames(loaded, frames[start : start + batch], labels, (WIDTH, HEIGHT), 0.35, 0.25)

    detect_frames(loaded, frames[:batch], labels, (WIDTH, HEIGHT), 0.35, 0.25)  # warm-up
    rows.append(
        Measurement(
            NAME,
            "detect",
            _per_second(detect, n_detect, device),
            "frames/s",
            {**base, "model": loaded.spec.id, "frames": n_detect, "batch": batch, "input": "750x1333"},
        )
    )
    del loaded

    loaded = segmenter(full, device, dtype)
    frames = rng.integers(0, 256, (n_sam, 576, 1024, 3), dtype=np.uint8)
    boxes = np.tile(np.array([[200, 150, 500, 400]], np.float32), (n_sam, 1))

    def segment() -> None:
        for i in range(n_sam):
            sam_masks(loaded, frames[i : i + 1], boxes[i : i + 1])

    sam_masks(loaded, frames[:1], boxes[:1])  # warm-up
    rows.append(
        Measurement(
            NAME,
            "segment_sam",
            _per_second(segment, n_sam, device),
            "frames/s",
            {**base, "model": loaded.spec.id, "frames": n_sam, "input": "576x1024"},
        )
    )
    del loaded

    loaded = video_segmenter(full, device, dtype)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    workdir = Path(settings.workdir or ".")
    clip = write_clip(workdir / "detect_segment_720p.mp4", n_sam2 + 1)
    with Video.open(clip) as video:
        times = (np.arange(n_sam2) + 0.5) / video.fps

        def follow() -> None:
            for _ in propagate(loaded, video, times, [100, 300, 300, 460], None):
                pass

        list(propagate(loaded, video, times[:2], [100, 300, 300, 460], None))  # warm-up
        fps = _per_second(follow, n_sam2, device)
    extra = {
        **base,
        "model": loaded.spec.id,
        "frames": n_sam2,
        "input": "720p clip",
        "peak_rss_mb": round(peak_rss_mb()),
    }
    if device.startswith("cuda"):
        extra["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20)
    rows.append(Measurement(NAME, "propagate_sam2", fps, "frames/s", extra))
    return rows


BENCHMARK = Benchmark(
    name=NAME,
    description="GroundingDINO detection, SAM masks and SAM 2 propagation in frames/s at real sizes (random weights).",
    run=run,
)
