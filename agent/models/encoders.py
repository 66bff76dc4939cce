"""The shared image-text encoder (CLIP or SigLIP) behind indexing, retrieval and grounding.

One forward pass of the vision tower gives both the pooled, projected embedding (stored by the
index, used by retrieval) and, on request, the hidden states of every layer (what the
temporal grounding head reads), so the two never run the tower twice on the same frames.

Scores: CLIP frames are scored by cosine similarity with the text (in [-1, 1]); SigLIP frames
by its sigmoid probability ``sigmoid(scale * cos + bias)`` (in [0, 1]), as each was trained.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from vidagent.models.hub import LoadedModel


@dataclass(frozen=True)
class ImageFeatures:
    """Outputs of one pass over a batch of frames."""

    embeddings: np.ndarray  # float32 (N, D), L2-normalised
    hidden_states: tuple[torch.Tensor, ...] | None  # per layer (N, tokens, width), if asked


class ClipEncoder:
    """Wraps a loaded CLIP/SigLIP model and its processor."""

    def __init__(self, loaded: LoadedModel, batch_size: int = 32) -> None:
        self.loaded = loaded
        self.model = loaded.model
        self.processor = loaded.processor
        self.batch_size = batch_size
        self.is_siglip = "siglip" in type(self.model).__name__.lower()

    @property
    def model_id(self) -> str:
        return str(self.loaded.spec.id)

    @property
    def device(self) -> torch.device:
        return torch.device(self.loaded.device)

    @property
    def input_size(self) -> int:
        """The short side the processor resizes frames to (decode at this size, not full)."""
        size: dict[str, int] = dict(self.processor.image_processor.size)
        return int(size.get("shortest_edge") or min(size.get("height", 224), size.get("width", 224)))

    def _pixels(self, frames: np.ndarray) -> torch.Tensor:
        """The model's pixel values for uint8 RGB frames (N, H, W, 3).

        Frames already at the processor's size (the index decodes them so) need only its centre
        crop, rescale and normalisation: done in torch on the model's device, so the CPU copies
        uint8 pixels and nothing else (the same values as the processor's, tested). Any other
        size goes through the processor.
        """
        plan = self._tensor_plan(frames.shape[1], frames.shape[2])
        if plan is None:
            inputs = self.processor(images=list(frames), return_tensors="pt")
            return inputs["pixel_values"].to(self.device, dtype=self.model.dtype)
        (top, left, height, width), scale, mean, std = plan
        cropped = np.ascontiguousarray(frames[:, top : top + height, left : left + width])
        pixels = torch.from_numpy(cropped).to(self.device, non_blocking=True).permute(0, 3, 1, 2)
        pixels = pixels.to(torch.float32) * scale
        return ((pixels - mean.to(self.device)) / std.to(self.device)).to(self.model.dtype)

    def _tensor_plan(
        self, height: int, width: int
    ) -> tuple[tuple[int, int, int, int], float, torch.Tensor, torch.Tensor] | None:
        """(crop box, rescale factor, mean, std) when the processor would not resample frames of
        this size (CLIP and SigLIP processors only), else None."""
        images = self.processor.image_processor
        if not type(images).__name__.startswith(("CLIPImageProcessor", "SiglipImageProcessor")):
            return None
        size = images.size
        if getattr(images, "do_resize", False):
            if size.get("shortest_edge") is not None:
                if min(height, width) != size["shortest_edge"]:
                    return None
            elif (size.get("height"), size.get("width")) != (height, width):
                return None
        box = (0, 0, height, width)
        if getattr(images, "do_center_crop", False):
            crop_height, crop_width = images.crop_size["height"], images.crop_size["width"]
            if crop_height > height or crop_width > width:
                return None
            box = ((height - crop_height) // 2, (width - crop_width) // 2, crop_height, crop_width)
        scale = float(images.rescale_factor) if getattr(images, "do_rescale", False) else 1.0
        normalise = getattr(images, "do_normalize", False)
        mean = torch.tensor(images.image_mean if normalise else (0.0, 0.0, 0.0), dtype=torch.float32)
        std = torch.tensor(images.image_std if normalise else (1.0, 1.0, 1.0), dtype=torch.float32)
        return box, scale, mean.view(1, 3, 1, 1), std.view(1, 3, 1, 1)

    @torch.inference_mode()
    def encode_images(self, frames: np.ndarray, *, hidden_states: bool = False) -> ImageFeatures:
        """Embed uint8 RGB frames (N, H, W, 3) in batches of ``batch_size``."""
        embeddings, layers = [], []
        for start in range(0, len(frames), self.batch_size):
            out = self.model.get_image_features(
                pixel_values=self._pixels(frames[start : start + self.batch_size]),
                output_hidden_states=hidden_states,
            )
            embeddings.append(_normalise(out.pooler_output))
            if hidden_states:
                layers.append(tuple(h.float().cpu() for h in out.hidden_states))
        joined = tuple(torch.cat(per_layer) for per_layer in zip(*layers, strict=True)) if layers else None
        stacked = np.concatenate(embeddings) if embeddings else np.zeros((0, self.embed_dim), np.float32)
        return ImageFeatures(embeddings=stacked, hidden_states=joined)

    @torch.inference_mode()
    def encode_texts(self, texts: list[str]) -> np.ndarray:
        """Embed text queries: float32 (M, D), L2-normalised."""
        padding: Any = "max_length" if self.is_siglip else True
        inputs = self.processor(text=texts, return_tensors="pt", padding=padding, truncation=True)
        inputs = {k: v.to(self.device) for k, v in inputs.items() if k in ("input_ids", "attention_mask")}
        return _normalise(self.model.get_text_features(**inputs).pooler_output)

    @property
    def embed_dim(self) -> int:
        config = self.model.config
        return int(getattr(config, "projection_dim", None) or config.text_config.hidden_size)

    def scores(self, text_embedding: np.ndarray, image_embeddings: np.ndarray) -> np.ndarray:
        """Per-frame scores for one query: cosine (CLIP) or sigmoid probability (SigLIP)."""
        cosine = image_embeddings.astype(np.float32) @ text_embedding.astype(np.float32)
        if not self.is_siglip:
            return cosine
        scale = float(self.model.logit_scale.exp())
        bias = float(self.model.logit_bias)
        return 1.0 / (1.0 + np.exp(-(cosine * scale + bias)))


def _normalise(features: torch.Tensor) -> np.ndarray:
    features = features.float()
    return (features / features.norm(dim=-1, keepdim=True).clamp_min(1e-12)).cpu().numpy()
