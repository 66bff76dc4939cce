"""SAM 2 video pre- and post-processing on torch alone, for installs without torchvision.

transformers' ``Sam2VideoProcessor`` is built from ``Sam2ImageProcessor`` and
``Sam2VideoVideoProcessor``, and both exist only with torchvision, which vidagent does not
install. :class:`TorchSam2VideoProcessor` is a ``Sam2VideoProcessor`` whose image side is
:class:`Sam2ImageProcessorTorch`: resize to the model's square input (bilinear, antialiased),
scale to [0, 1], normalise with the checkpoint's mean and std, and the very
``post_process_masks`` of ``Sam2ImageProcessor``. Everything else (the inference session,
adding box/point prompts, coordinate normalisation) is transformers' own code, inherited.
Frames are streamed one at a time (``processor(images=frame)``), so there is no video
processor: :meth:`init_video_session` is always called without a video.

It reads the settings from the same files a ``Sam2VideoProcessor.save_pretrained`` writes
(``processor_config.json`` with an ``image_processor`` entry, or an older
``preprocessor_config.json``); :func:`processor_config` writes them for the tiny checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from transformers import BatchFeature, Sam2VideoProcessor

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Sam2ImageProcessorTorch:
    """``Sam2ImageProcessor``'s resize / rescale / normalise and ``post_process_masks`` in plain torch."""

    def __init__(
        self,
        size: int = 1024,
        image_mean: tuple[float, ...] = IMAGENET_MEAN,
        image_std: tuple[float, ...] = IMAGENET_STD,
    ) -> None:
        self.size = {"height": int(size), "width": int(size)}
        self.image_mean = tuple(float(v) for v in image_mean)
        self.image_std = tuple(float(v) for v in image_std)

    def __call__(
        self, images: Any, return_tensors: str | None = "pt", device: Any = None, **_: Any
    ) -> BatchFeature:
        """RGB uint8 ``(H, W, 3)`` array(s) -> ``pixel_values`` ``(N, 3, S, S)`` and ``original_sizes``."""
        batch = [images] if isinstance(images, np.ndarray) and images.ndim == 3 else list(images)
        mean = torch.tensor(self.image_mean).view(1, 3, 1, 1)
        std = torch.tensor(self.image_std).view(1, 3, 1, 1)
        pixels, sizes = [], []
        for image in batch:
            array = torch.as_tensor(np.ascontiguousarray(image))
            sizes.append(list(array.shape[:2]))
            x = array.permute(2, 0, 1)[None].float().div_(255.0)
            if device is not None:
                x = x.to(device)
            x = F.interpolate(
                x,
                (self.size["height"], self.size["width"]),
                mode="bilinear",
                align_corners=False,
                antialias=True,
            )
            pixels.append((x - mean.to(x.device)) / std.to(x.device))
        data = {
            "pixel_values": torch.cat(pixels),
            "original_sizes": torch.tensor(sizes, dtype=torch.int64),
            "reshaped_input_sizes": torch.tensor([[self.size["height"], self.size["width"]]] * len(batch)),
        }
        return BatchFeature(data=data)

    def post_process_masks(
        self,
        masks: Any,
        original_sizes: Any,
        mask_threshold: float = 0.0,
        binarize: bool = True,
        max_hole_area: float = 0.0,
        max_sprinkle_area: float = 0.0,
        apply_non_overlapping_constraints: bool = False,
        **_: Any,
    ) -> list[torch.Tensor]:
        """Upscale low-resolution mask logits to each original size (and threshold them)."""
        if isinstance(original_sizes, torch.Tensor | np.ndarray):
            original_sizes = original_sizes.tolist()
        out = []
        for i, size in enumerate(original_sizes):
            mask = torch.from_numpy(masks[i]) if isinstance(masks[i], np.ndarray) else masks[i]
            mask = F.interpolate(mask.float(), [int(s) for s in size], mode="bilinear", align_corners=False)
            if apply_non_overlapping_constraints and mask.shape[0] > 1:
                winner = torch.argmax(mask, dim=0, keepdim=True)
                keep = winner == torch.arange(mask.shape[0], device=mask.device)[:, None, None, None]
                mask = torch.where(keep, mask, torch.clamp(mask, max=-10.0))
            out.append(mask > mask_threshold if binarize else mask)
        return out


class TorchSam2VideoProcessor(Sam2VideoProcessor):
    """A ``Sam2VideoProcessor`` (sessions, prompts, post-processing) without torchvision; frames are streamed."""

    def __init__(
        self,
        image_processor: Sam2ImageProcessorTorch,
        target_size: int | None = None,
        point_pad_value: int = -10,
    ) -> None:
        # ProcessorMixin.__init__ would insist on transformers' own (torchvision) sub-processors
        self.chat_template = None
        self.image_processor = image_processor
        self.video_processor = None
        self.point_pad_value = point_pad_value
        self.target_size = target_size if target_size is not None else image_processor.size["height"]

    def __repr__(self) -> str:
        return f"TorchSam2VideoProcessor(size={self.image_processor.size['height']}, target_size={self.target_size})"


def processor_config(
    size: int, image_mean: tuple[float, ...] = IMAGENET_MEAN, image_std: tuple[float, ...] = IMAGENET_STD
) -> dict[str, Any]:
    """``processor_config.json`` as ``Sam2VideoProcessor.save_pretrained`` writes it."""
    common = {
        "do_convert_rgb": True,
        "do_normalize": True,
        "do_rescale": True,
        "do_resize": True,
        "image_mean": list(image_mean),
        "image_std": list(image_std),
        "resample": 2,
        "rescale_factor": 1 / 255,
        "size": {"height": size, "width": size},
    }
    return {
        "image_processor": {
            **common,
            "image_processor_type": "Sam2ImageProcessor",
            "mask_size": {"height": size // 4, "width": size // 4},
        },
        "video_processor": {**common, "video_processor_type": "Sam2VideoVideoProcessor"},
        "point_pad_value": -10,
        "processor_class": "Sam2VideoProcessor",
        "target_size": size,
    }


def load(source: str, **pretrained_kwargs: Any) -> TorchSam2VideoProcessor:
    """A :class:`TorchSam2VideoProcessor` with the settings saved in ``source`` (a directory or a hub id)."""
    settings: dict[str, Any] = {}
    target_size = None
    found = _read(source, "processor_config.json", pretrained_kwargs)
    if isinstance(found, dict):
        settings = dict(found.get("image_processor") or {})
        target_size = found.get("target_size")
    if not settings:
        settings = _read(source, "preprocessor_config.json", pretrained_kwargs) or {}
    size = (settings.get("size") or {}).get("height", 1024)
    images = Sam2ImageProcessorTorch(
        size=size,
        image_mean=tuple(settings.get("image_mean") or IMAGENET_MEAN),
        image_std=tuple(settings.get("image_std") or IMAGENET_STD),
    )
    return TorchSam2VideoProcessor(images, target_size=target_size)


def _read(source: str, name: str, pretrained_kwargs: dict[str, Any]) -> Any:
    path = Path(source) / name
    if not path.is_file():
        from transformers.utils import cached_file

        kwargs = {k: v for k, v in pretrained_kwargs.items() if k in ("local_files_only", "revision")}
        try:
            resolved = cached_file(source, name, _raise_exceptions_for_missing_entries=False, **kwargs)
        except OSError:
            return None
        if resolved is None:
            return None
        path = Path(resolved)
    return json.loads(path.read_text())


__all__ = ["Sam2ImageProcessorTorch", "TorchSam2VideoProcessor", "load", "processor_config"]
