"""The grounding head: size at ViT-B/32 widths, outputs, loss, save/load, the hub's loader."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from vidagent.grounding.head import (
    GroundConfig,
    GroundHead,
    GroundTargets,
    HeadMismatch,
    check_compatible,
    clip_grid,
    ground_loss,
    temporal_nms,
    text_features,
    vision_features,
)
from vidagent.models.hub import ModelHub
from vidagent.models.profile import parse_profile
from vidagent.models.tiny import ensure_tiny

SMALL = {"vision_width": 32, "text_width": 32, "num_layers": 2, "hidden": 32, "heads": 4, "dropout": 0.0}


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny tensors: one CPU thread (extra threads only contend on a busy machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VIDAGENT_CACHE", str(root))
        ensure_tiny("clip")
        yield root


def _inputs(
    batch: int = 2, clips: int = 10, words: int = 6, tokens: int = 17, cfg: GroundConfig | None = None
):
    cfg = cfg or GroundConfig(**SMALL)
    g = torch.Generator().manual_seed(0)
    video = torch.randn(batch, clips, cfg.num_layers, tokens, cfg.vision_width, generator=g)
    text = torch.randn(batch, words, cfg.num_layers, cfg.text_width, generator=g)
    video_mask = torch.ones(batch, clips, dtype=torch.bool)
    text_mask = torch.ones(batch, words, dtype=torch.bool)
    video_mask[-1, clips // 2 :] = False
    text_mask[0, -2:] = False
    return video, video_mask, text, text_mask


def test_vit_b32_sizes_stay_under_three_million_parameters() -> None:
    head = GroundHead(GroundConfig(vision_width=768, text_width=512, num_layers=4))
    count = head.num_parameters()
    assert 2_000_000 < count <= 3_000_000, count


def test_for_clip_reads_the_clip_config() -> None:
    from transformers import CLIPConfig

    cfg = GroundConfig.for_clip(CLIPConfig(), "openai/clip-vit-base-patch32", hidden=128)
    assert (cfg.vision_width, cfg.text_width, cfg.num_layers, cfg.hidden) == (768, 512, 4, 128)
    assert cfg.cls_token and cfg.clip_model == "openai/clip-vit-base-patch32"


def test_forward_shapes_and_padding() -> None:
    cfg = GroundConfig(**SMALL)
    head = GroundHead(cfg).eval()
    video, video_mask, text, text_mask = _inputs(cfg=cfg)
    out = head(video, video_mask, text, text_mask)
    assert out.saliency.shape == (2, 10)
    assert [tuple(x.shape) for x in out.logits] == [(2, 10), (2, 5), (2, 3), (2, 2)]
    assert [tuple(x.shape) for x in out.distances] == [(2, 10, 2), (2, 5, 2), (2, 3, 2), (2, 2, 2)]
    assert out.masks[1][1].tolist() == [True, True, True, False, False]
    assert torch.isfinite(out.saliency).all() and all(torch.isfinite(d).all() for d in out.distances)
    # padded clips do not change the valid ones
    changed = video.clone()
    changed[-1, 5:] = 100.0
    again = head(changed, video_mask, text, text_mask)
    assert torch.allclose(again.saliency[-1, :5], out.saliency[-1, :5], atol=1e-5)


def test_loss_is_finite_and_training_reduces_it() -> None:
    torch.manual_seed(0)
    cfg = GroundConfig(**SMALL)
    head = GroundHead(cfg)
    video, video_mask, text, text_mask = _inputs(batch=3, cfg=cfg)
    video_mask[:] = True
    windows = torch.tensor([[[2.0, 5.0], [0, 0]], [[0.2, 0.4], [6.0, 9.0]], [[0.0, 10.0], [0, 0]]])
    window_mask = torch.tensor([[True, False], [True, True], [True, False]])
    saliency = torch.zeros(3, 10)
    saliency[0, 2:5] = 1.0
    saliency[1, 6:9] = 0.5
    saliency[1, 0] = 1.0
    saliency[2, :] = 1.0
    targets = GroundTargets(windows, window_mask, saliency, torch.tensor([0, 1, 2]))
    optimizer = torch.optim.AdamW(head.parameters(), lr=3e-3)
    first = None
    for _ in range(30):
        losses = ground_loss(head(video, video_mask, text, text_mask), targets, cfg)
        assert all(torch.isfinite(v) for v in losses.values())
        first = first if first is not None else float(losses["total"].detach())
        optimizer.zero_grad()
        losses["total"].backward()
        optimizer.step()
    assert float(losses["total"].detach()) < 0.6 * first


def test_predict_decodes_sorted_moments_inside_the_video() -> None:
    cfg = GroundConfig(**SMALL, max_moments=5)
    head = GroundHead(cfg)
    video = np.random.default_rng(0).normal(size=(12, 2, 17, 32)).astype(np.float16)
    text = np.random.default_rng(1).normal(size=(6, 2, 32)).astype(np.float16)
    pred = head.predict(video, text, duration=23.0)
    assert pred.saliency.shape == (12,) and pred.clip_seconds == 2.0
    assert 1 <= len(pred.moments) <= 5
    starts, ends, scores = pred.moments.T
    assert (starts >= 0).all() and (ends <= 23.0).all() and (ends > starts).all()
    assert (np.diff(scores) <= 0).all() and ((scores > 0) & (scores < 1)).all()


def test_temporal_nms() -> None:
    windows = np.array([[0, 10], [1, 10], [20, 30], [0, 9.5]], dtype=float)
    scores = np.array([0.9, 0.8, 0.7, 0.95])
    assert temporal_nms(windows, scores, iou=0.7).tolist() == [3, 2]
    assert temporal_nms(windows, scores, iou=0.7, limit=1).tolist() == [3]


def test_clip_grid() -> None:
    assert clip_grid(6.0, 2.0).tolist() == [1.0, 3.0, 5.0]
    assert clip_grid(5.0, 2.0).tolist() == pytest.approx([1.0, 3.0, 4.999])  # partial last clip
    assert clip_grid(0.5, 2.0).tolist() == pytest.approx([0.499])


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    cfg = GroundConfig(**SMALL, pool_grid=2, clip_model="tiny/clip")
    head = GroundHead(cfg).eval()
    head.save_pretrained(tmp_path / "ckpt")
    assert {p.name for p in (tmp_path / "ckpt").iterdir()} == {"config.json", "model.safetensors"}
    loaded = GroundHead.from_pretrained(tmp_path / "ckpt")
    assert loaded.config == cfg and not loaded.training
    inputs = _inputs(cfg=cfg)
    assert torch.allclose(head(*inputs).saliency, loaded(*inputs).saliency)


def test_features_from_the_tiny_clip_and_the_hub_loader(cache: Path, tmp_path: Path) -> None:
    hub = ModelHub(
        parse_profile({"name": "t", "roles": {"clip": "tiny/clip", "ground_head": str(tmp_path / "h")}})
    )
    from vidagent.models.encoders import ClipEncoder

    encoder = ClipEncoder(hub.get("clip"))
    cfg = GroundConfig.for_clip(encoder.model.config, encoder.model_id, hidden=32, heads=4)
    assert (cfg.vision_width, cfg.num_layers) == (32, 2)
    frames = np.random.default_rng(0).integers(0, 255, size=(3, 40, 40, 3), dtype=np.uint8)
    feats = vision_features(encoder, frames, cfg)
    assert feats.shape == (3, 2, 17, 32) and feats.dtype == np.float16
    pooled = vision_features(encoder, frames, GroundConfig(**{**cfg.to_dict(), "pool_grid": 2}))
    assert pooled.shape == (3, 2, 5, 32)  # CLS + 2x2
    words = text_features(encoder, ["a red circle", "a big blue square"], cfg)
    assert [w.shape for w in words] == [
        (12, 2, 32),
        (16, 2, 32),
    ]  # a token per character (spaces merged) + BOS/EOS

    GroundHead(cfg).save_pretrained(tmp_path / "h")
    loaded = hub.get("ground_head")
    assert isinstance(loaded.model, GroundHead) and loaded.processor is None
    check_compatible(loaded.model.config, encoder)
    with pytest.raises(HeadMismatch, match="vision width 64 != 32"):
        check_compatible(GroundConfig(**{**cfg.to_dict(), "vision_width": 64}), encoder)
