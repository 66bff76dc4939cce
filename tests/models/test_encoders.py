"""The image-text encoder's pixels: frames at the processor's size skip the processor, same values."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from transformers import CLIPImageProcessorPil, SiglipImageProcessorPil

from vidagent.models.encoders import ClipEncoder


@pytest.fixture
def encoder(tiny_hub) -> ClipEncoder:
    """The tiny CLIP with a processor of its own (the hub's is shared by the session's tests)."""
    made = ClipEncoder(tiny_hub.get("clip"))
    made.processor = copy.deepcopy(made.processor)
    return made


def processor_pixels(encoder: ClipEncoder, frames: np.ndarray) -> torch.Tensor:
    return encoder.processor(images=list(frames), return_tensors="pt")["pixel_values"]


@pytest.mark.parametrize(
    ("images", "shapes"),
    [
        (None, [(32, 57), (45, 32), (32, 32), (32, 33)]),  # the tiny CLIP's: short side 32, crop 32
        (CLIPImageProcessorPil(), [(224, 301), (301, 224), (224, 398)]),  # ViT-B/32's: 224, crop 224
        (SiglipImageProcessorPil(), [(224, 224)]),  # SigLIP's: 224x224, no crop
    ],
)
def test_frames_at_the_processors_size_are_cropped_and_normalised_in_torch(
    encoder: ClipEncoder, images, shapes: list[tuple[int, int]]
) -> None:
    if images is not None:
        encoder.processor.image_processor = images
    rng = np.random.default_rng(0)
    for height, width in shapes:
        frames = rng.integers(0, 256, (3, height, width, 3), dtype=np.uint8)
        assert encoder._tensor_plan(height, width) is not None, (height, width)
        torch.testing.assert_close(
            encoder._pixels(frames), processor_pixels(encoder, frames), atol=1e-6, rtol=0
        )


def test_other_sizes_go_through_the_processor(encoder: ClipEncoder) -> None:
    encoder.processor.image_processor = CLIPImageProcessorPil()
    frames = np.random.default_rng(1).integers(0, 256, (2, 225, 300, 3), dtype=np.uint8)  # would be resized
    assert encoder._tensor_plan(225, 300) is None
    assert torch.equal(encoder._pixels(frames), processor_pixels(encoder, frames))


def test_the_embeddings_are_the_processors(encoder: ClipEncoder, monkeypatch: pytest.MonkeyPatch) -> None:
    frames = np.random.default_rng(2).integers(0, 256, (5, 32, 48, 3), dtype=np.uint8)
    ours = encoder.encode_images(frames).embeddings
    monkeypatch.setattr(ClipEncoder, "_tensor_plan", lambda self, h, w: None)
    np.testing.assert_allclose(ours, encoder.encode_images(frames).embeddings, atol=1e-6)
