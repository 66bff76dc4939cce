"""A small temporal grounding head on the frozen, shared CLIP (ideas of R2-Tuning, our own code).

Given a natural-language query and a video cut into fixed-length clips (one frame per clip, at
its centre), the head returns moments ``(start s, end s, score)`` and a saliency score per clip.
CLIP stays frozen; the head reads the hidden states of its last ``K`` layers:

* **Inputs.** Per clip, the tokens (CLS + patches) of the last ``K`` vision layers
  ``(T, K, N, Dv)``; per query, the token features of the last ``K`` text layers ``(L, K, Dt)``.
  :func:`vision_features` / :func:`text_features` compute them with a :class:`ClipEncoder` (one
  vision pass gives every layer). ``pool_grid`` may average the patch grid down (e.g. 7x7 -> 4x4)
  before anything is stored, to shrink feature caches.
* **Query-modulated spatial pooling.** Each layer's tokens and the query's tokens are projected
  to a small width ``d``; the query's tokens are attention-pooled into one vector, which scores
  the patches of every frame; the softmax-weighted patch sum plus the CLS token is the clip's
  feature for that layer.
* **Reversed recurrent refinement.** One shared block runs once per layer, from the deepest
  (coarse, semantic) layer to the shallowest (fine, spatial) one. Each step gates the state of
  the previous step with the current layer's clip features, lets the clips attend to the query
  tokens of the same layer (cross-attention), then to each other (temporal self-attention with
  sinusoidal positions), then a feed-forward layer.
* **Heads.** Saliency per clip = scaled cosine between the refined clip features and the
  query. Moments: a temporal pyramid (stride-2 convolutions, ``pyramid_levels`` levels); at each
  position a foreground logit and the distances to the moment's start and end (anchor-free),
  decoded and filtered by temporal NMS.
* **Training objective** (:func:`ground_loss`): focal loss on the foreground logits, 1-IoU + L1
  on the distances, a within-video saliency loss (InfoNCE of relevant clips against the others,
  plus a ranking hinge for graded scores) and a layer-wise video-level contrastive loss (each
  layer's query vector against the CLS features of the matching moment, other videos in the batch
  as negatives).

With ViT-B/32 widths (768 vision, 512 text), ``K = 4`` and ``d = 256`` the head has ~2.7 M
learnable parameters. It is saved as ``config.json`` (a :class:`GroundConfig`) and
``model.safetensors`` (``save_pretrained`` / ``from_pretrained``) and loaded by the hub for the
``ground_head`` role (the loader is registered here).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vidagent.core.errors import VidagentError
from vidagent.models.hub import LoadRequest, register_loader

if TYPE_CHECKING:
    from vidagent.models.encoders import ClipEncoder

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
MODEL_TYPE = "vidagent-ground-head"

__all__ = [
    "GroundConfig",
    "GroundHead",
    "GroundOutput",
    "GroundTargets",
    "HeadMismatch",
    "MomentPrediction",
    "check_compatible",
    "clip_grid",
    "ground_loss",
    "temporal_nms",
    "text_features",
    "vision_features",
]


# --- configuration -------------------------------------------------------------------------------
@dataclass
class GroundConfig:
    """Everything that shapes the head (saved as ``config.json`` next to the weights)."""

    vision_width: int = 768  # hidden size of the CLIP vision tower
    text_width: int = 512  # hidden size of the CLIP text tower
    num_layers: int = 4  # K: how many of the last layers are read
    hidden: int = 256  # d: the head's width
    heads: int = 8
    ffn_mult: int = 2
    dropout: float = 0.1
    clip_seconds: float = 2.0  # one clip (one frame, at its centre) every this many seconds
    pool_grid: int | None = None  # average-pool the patch grid to g x g before use (None: keep all)
    cls_token: bool = True  # the first vision token is CLS (False for SigLIP: mean of patches)
    pyramid_levels: int = 4
    base_range: float = 2.0  # clips; level l regresses moments of half-extent in [b*2^(l-1), b*2^l)
    max_query_tokens: int = 32
    nms_iou: float = 0.7
    max_moments: int = 10
    clip_model: str = ""  # id of the frozen CLIP the head was trained with
    model_type: str = MODEL_TYPE
    version: int = 1
    extra: dict[str, Any] = field(default_factory=dict)  # free notes (training data, metrics)

    def __post_init__(self) -> None:
        if self.hidden % self.heads:
            raise ValueError(f"hidden ({self.hidden}) must be divisible by heads ({self.heads})")
        if self.num_layers < 1 or self.pyramid_levels < 1:
            raise ValueError("num_layers and pyramid_levels must be at least 1")
        if not self.clip_seconds > 0:
            raise ValueError(f"clip_seconds must be positive, got {self.clip_seconds}")

    @classmethod
    def for_clip(cls, clip_config: Any, clip_model: str = "", **overrides: Any) -> GroundConfig:
        """A config matching a transformers CLIP/SigLIP config (widths, depth, CLS token)."""
        vision, text = clip_config.vision_config, clip_config.text_config
        depth = min(int(vision.num_hidden_layers), int(text.num_hidden_layers))
        siglip = "siglip" in str(getattr(clip_config, "model_type", "")).lower()
        values: dict[str, Any] = {
            "vision_width": int(vision.hidden_size),
            "text_width": int(text.hidden_size),
            "num_layers": min(4, depth),
            "cls_token": not siglip,
            "clip_model": clip_model,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / CONFIG_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, directory: str | Path) -> GroundConfig:
        path = Path(directory) / CONFIG_NAME
        data = json.loads(path.read_text())
        if data.get("model_type") != MODEL_TYPE:
            raise ValueError(f"{path} is not a {MODEL_TYPE} config (model_type={data.get('model_type')!r})")
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


class HeadMismatch(VidagentError):
    """A trained head does not fit the loaded CLIP (other widths or fewer layers)."""


# --- features from the frozen CLIP -----------------------------------------------------------------
def clip_grid(duration: float, clip_seconds: float) -> np.ndarray:
    """Centre times of the clips ``[k c, (k + 1) c)`` covering ``[0, duration)`` (at least one).

    The last clip may be partial; its frame is taken at its centre or just before the end.
    """
    count = max(1, math.ceil(duration / clip_seconds - 1e-6))
    times = (np.arange(count) + 0.5) * clip_seconds
    return np.minimum(times, max(duration - 1e-3, 0.0))


def _pool_patches(tokens: torch.Tensor, grid: int | None, cls_token: bool) -> torch.Tensor:
    """Average-pool the square patch grid of ``tokens`` (..., N, D) down to ``grid`` x ``grid``."""
    if grid is None:
        return tokens
    head, patches = (tokens[..., :1, :], tokens[..., 1:, :]) if cls_token else (tokens[..., :0, :], tokens)
    side = math.isqrt(patches.shape[-2])
    if side * side != patches.shape[-2] or side <= grid:
        return tokens
    lead = patches.shape[:-2]
    width = patches.shape[-1]
    square = patches.reshape(-1, side, side, width).permute(0, 3, 1, 2)
    pooled = F.adaptive_avg_pool2d(square, grid).permute(0, 2, 3, 1).reshape(*lead, grid * grid, width)
    return torch.cat([head, pooled], dim=-2)


def vision_features(encoder: ClipEncoder, frames: np.ndarray, config: GroundConfig) -> np.ndarray:
    """Tokens of the last ``K`` vision layers for uint8 frames ``(T, H, W, 3)``: float16 ``(T, K, N, Dv)``.

    One pass of the vision tower (``encode_images(..., hidden_states=True)``).
    """
    out = encoder.encode_images(frames, hidden_states=True)
    assert out.hidden_states is not None
    layers = out.hidden_states[-config.num_layers :]
    if len(layers) < config.num_layers:
        raise ValueError(f"the CLIP has {len(layers)} layers, the head reads {config.num_layers}")
    stacked = torch.stack([h.float() for h in layers], dim=1)  # (T, K, N, D)
    stacked = _pool_patches(stacked, config.pool_grid, config.cls_token)
    return stacked.to(torch.float16).numpy()


@torch.inference_mode()
def text_features(encoder: ClipEncoder, queries: list[str], config: GroundConfig) -> list[np.ndarray]:
    """Token features of the last ``K`` text layers, one float16 ``(L_i, K, Dt)`` array per query."""
    if not queries:
        return []
    inputs = encoder.processor(
        text=list(queries),
        return_tensors="pt",
        padding=True,
        truncation=True,
        max_length=config.max_query_tokens,
    )
    ids = inputs["input_ids"].to(encoder.device)
    mask = inputs.get("attention_mask")
    mask = torch.ones_like(ids) if mask is None else mask.to(encoder.device)
    out = encoder.model.text_model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    layers = out.hidden_states[-config.num_layers :]
    stacked = torch.stack([h.float() for h in layers], dim=2).cpu()  # (B, L, K, D)
    lengths = mask.sum(dim=1).cpu().tolist()
    return [stacked[i, : int(n)].to(torch.float16).numpy() for i, n in enumerate(lengths)]


def check_compatible(config: GroundConfig, encoder: ClipEncoder) -> None:
    """Refuse a head whose widths or depth do not fit the loaded CLIP."""
    model_config = encoder.model.config
    vision, text = model_config.vision_config, model_config.text_config
    problems = []
    if config.vision_width != vision.hidden_size:
        problems.append(f"vision width {config.vision_width} != {vision.hidden_size}")
    if config.text_width != text.hidden_size:
        problems.append(f"text width {config.text_width} != {text.hidden_size}")
    if config.num_layers > min(vision.num_hidden_layers, text.num_hidden_layers):
        problems.append(f"reads {config.num_layers} layers, the CLIP has fewer")
    if problems:
        raise HeadMismatch(
            f"the ground head (trained with {config.clip_model or 'an unknown CLIP'!r}) does not fit the "
            f"profile's CLIP {encoder.model_id!r}: "
            + "; ".join(problems)
            + "; train one for this CLIP with `vidagent train-ground`"
        )


# --- the model -------------------------------------------------------------------------------------
def _sinusoid(length: int, width: int, device: torch.device) -> torch.Tensor:
    position = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    rate = torch.exp(
        torch.arange(0, width, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / width)
    )
    table = torch.zeros(length, width, device=device)
    table[:, 0::2] = torch.sin(position * rate)
    table[:, 1::2] = torch.cos(position * rate[: width // 2])
    return table


class _RefineBlock(nn.Module):
    """One recurrent step: gate in the new layer, attend to the query, then across time."""

    def __init__(self, d: int, heads: int, ffn_mult: int, dropout: float) -> None:
        super().__init__()
        self.gate = nn.Linear(2 * d, d)
        self.norm_cross = nn.LayerNorm(d)
        self.cross = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.norm_time = nn.LayerNorm(d)
        self.time = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.norm_ffn = nn.LayerNorm(d)
        self.ffn = nn.Sequential(
            nn.Linear(d, ffn_mult * d), nn.GELU(), nn.Dropout(dropout), nn.Linear(ffn_mult * d, d)
        )
        self.drop = nn.Dropout(dropout)

    def forward(
        self,
        clips: torch.Tensor,
        state: torch.Tensor | None,
        text: torch.Tensor,
        text_mask: torch.Tensor,
        video_mask: torch.Tensor,
        positions: torch.Tensor,
    ) -> torch.Tensor:
        if state is None:
            x = clips
        else:
            z = torch.sigmoid(self.gate(torch.cat([clips, state], dim=-1)))
            x = z * clips + (1 - z) * state
        y = self.norm_cross(x)
        x = x + self.drop(self.cross(y, text, text, key_padding_mask=~text_mask, need_weights=False)[0])
        y = self.norm_time(x)
        qk = y + positions
        x = x + self.drop(self.time(qk, qk, y, key_padding_mask=~video_mask, need_weights=False)[0])
        x = x + self.drop(self.ffn(self.norm_ffn(x)))
        return x * video_mask[..., None]


class _ConvHead(nn.Module):
    def __init__(self, d: int, out: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(d, d, 3, padding=1)
        self.conv2 = nn.Conv1d(d, out, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, d) -> (B, T, out)
        return self.conv2(F.gelu(self.conv1(x.transpose(1, 2)))).transpose(1, 2)


@dataclass
class GroundOutput:
    """What one forward pass gives (batch first; ``T`` clips, pyramid levels in lists)."""

    saliency: torch.Tensor  # (B, T) scores (scaled cosine)
    logits: list[torch.Tensor]  # per level (B, T_l) foreground logits
    distances: list[torch.Tensor]  # per level (B, T_l, 2) distances to start / end, in clips
    masks: list[torch.Tensor]  # per level (B, T_l) valid positions
    layer_queries: list[torch.Tensor]  # per refinement step (deepest first) (B, d)
    layer_cls: list[torch.Tensor]  # per refinement step (B, T, d) projected CLS features


@dataclass
class MomentPrediction:
    """Decoded output for one query: moments in seconds, best first, and per-clip saliency."""

    moments: np.ndarray  # float64 (M, 3): start s, end s, score in [0, 1]
    saliency: np.ndarray  # float32 (T,)
    clip_seconds: float


class GroundHead(nn.Module):
    """The grounding head; see the module docstring."""

    def __init__(self, config: GroundConfig) -> None:
        super().__init__()
        self.config = config
        d, k = config.hidden, config.num_layers
        self.vision_norm = nn.ModuleList(nn.LayerNorm(config.vision_width) for _ in range(k))
        self.vision_proj = nn.ModuleList(nn.Linear(config.vision_width, d) for _ in range(k))
        self.text_norm = nn.ModuleList(nn.LayerNorm(config.text_width) for _ in range(k))
        self.text_proj = nn.Linear(config.text_width, d)
        self.layer_embed = nn.Parameter(torch.zeros(k, d))
        self.query_score = nn.Linear(d, 1)
        self.pool_key = nn.Linear(d, d)
        self.pool_query = nn.Linear(d, d)
        self.block = _RefineBlock(d, config.heads, config.ffn_mult, config.dropout)
        self.out_norm = nn.LayerNorm(d)
        self.sal_video = nn.Linear(d, d)
        self.sal_text = nn.Linear(d, d)
        self.sal_scale = nn.Parameter(torch.tensor(math.log(10.0)))
        self.down = nn.Conv1d(d, d, 3, stride=2, padding=1)
        self.down_norm = nn.LayerNorm(d)
        self.cls_head = _ConvHead(d, 1)
        self.reg_head = _ConvHead(d, 2)
        self.level_scale = nn.Parameter(torch.ones(config.pyramid_levels))
        nn.init.constant_(self.cls_head.conv2.bias, -math.log(99.0))  # foreground prior 0.01

    # -- bookkeeping ------------------------------------------------------------------------------
    def num_parameters(self, trainable_only: bool = True) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write ``config.json`` and ``model.safetensors`` into ``directory``."""
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.config.save(directory)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        save_file(state, str(directory / WEIGHTS_NAME), metadata={"format": "pt", "model_type": MODEL_TYPE})
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device = "cpu") -> GroundHead:
        """Load a head written by :meth:`save_pretrained` (eval mode)."""
        from safetensors.torch import load_file

        directory = Path(directory)
        head = cls(GroundConfig.load(directory))
        head.load_state_dict(load_file(str(directory / WEIGHTS_NAME)), strict=True)
        return head.to(device).eval()

    # -- forward ------------------------------------------------------------------------------------
    def forward(
        self, video: torch.Tensor, video_mask: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor
    ) -> GroundOutput:
        """``video`` (B, T, K, N, Dv), ``text`` (B, L, K, Dt), boolean masks (B, T) and (B, L)."""
        cfg = self.config
        d = cfg.hidden
        video_mask, text_mask = video_mask.bool(), text_mask.bool()
        positions = _sinusoid(video.shape[1], d, video.device)[None]
        state: torch.Tensor | None = None
        queries, cls_feats = [], []
        for k in reversed(range(cfg.num_layers)):  # deepest layer first
            tokens = self.vision_proj[k](self.vision_norm[k](video[:, :, k]))  # (B, T, N, d)
            words = self.text_proj(self.text_norm[k](text[:, :, k]))  # (B, L, d)
            weights = self.query_score(words).squeeze(-1).masked_fill(~text_mask, float("-inf"))
            query = torch.einsum("bl,bld->bd", weights.softmax(dim=-1), words)  # (B, d)
            if cfg.cls_token:
                cls, patches = tokens[:, :, 0], tokens[:, :, 1:]
            else:
                cls, patches = tokens.mean(dim=2), tokens
            scores = torch.einsum("btnd,bd->btn", self.pool_key(patches), self.pool_query(query)) / math.sqrt(
                d
            )
            clips = cls + torch.einsum("btn,btnd->btd", scores.softmax(dim=-1), patches) + self.layer_embed[k]
            state = self.block(clips, state, words, text_mask, video_mask, positions)
            queries.append(query)
            cls_feats.append(cls)
        assert state is not None
        feats = self.out_norm(state)
        video_vec = F.normalize(self.sal_video(feats), dim=-1)
        query_vec = F.normalize(self.sal_text(queries[0]), dim=-1)
        saliency = torch.einsum("btd,bd->bt", video_vec, query_vec) * self.sal_scale.exp().clamp(max=100.0)

        logits, distances, masks = [], [], []
        level, mask = feats, video_mask
        for lvl in range(cfg.pyramid_levels):
            if lvl:
                level = self.down(level.transpose(1, 2)).transpose(1, 2)
                level = F.gelu(self.down_norm(level))
                mask = F.max_pool1d(mask[:, None].float(), 2, 2, ceil_mode=True)[:, 0].bool()
                level = level * mask[..., None]
            logits.append(self.cls_head(level)[..., 0])
            distances.append(F.softplus(self.reg_head(level)) * self.level_scale[lvl].abs() * (2**lvl))
            masks.append(mask)
        return GroundOutput(saliency, logits, distances, masks, queries, cls_feats)

    # -- inference ----------------------------------------------------------------------------------
    @torch.inference_mode()
    def predict(self, video: np.ndarray, text: np.ndarray, duration: float | None = None) -> MomentPrediction:
        """Ground one query (``text`` (L, K, Dt)) in one video's clips (``video`` (T, K, N, Dv))."""
        return self.predict_batch([video], [text], [duration])[0]

    @torch.inference_mode()
    def predict_batch(
        self, videos: list[np.ndarray], texts: list[np.ndarray], durations: list[float | None] | None = None
    ) -> list[MomentPrediction]:
        """:meth:`predict` for several (video, query) pairs at once (padded, one forward pass)."""
        cfg = self.config
        durations = durations or [None] * len(videos)
        batch = pad_batch(videos, texts, device=self.device)
        was_training = self.training
        self.eval()
        out = self(batch["video"], batch["video_mask"], batch["text"], batch["text_mask"])
        self.train(was_training)
        results = []
        for b, (clips, duration) in enumerate(zip(batch["lengths"], durations, strict=True)):
            limit = float(duration) if duration is not None else clips * cfg.clip_seconds
            moments = decode_moments(out, b, int(clips), cfg, limit)
            results.append(
                MomentPrediction(moments, out.saliency[b, :clips].float().cpu().numpy(), cfg.clip_seconds)
            )
        return results


def pad_batch(
    videos: list[np.ndarray], texts: list[np.ndarray], device: torch.device | str = "cpu"
) -> dict[str, Any]:
    """Pad per-sample features into batch tensors (float32) with boolean masks."""
    lengths = [len(v) for v in videos]
    words = [len(t) for t in texts]
    first, text0 = videos[0], texts[0]
    video = torch.zeros((len(videos), max(lengths), *first.shape[1:]), dtype=torch.float32)
    text = torch.zeros((len(texts), max(words), *text0.shape[1:]), dtype=torch.float32)
    video_mask = torch.zeros((len(videos), max(lengths)), dtype=torch.bool)
    text_mask = torch.zeros((len(texts), max(words)), dtype=torch.bool)
    for i, (v, t) in enumerate(zip(videos, texts, strict=True)):
        video[i, : len(v)] = torch.from_numpy(np.asarray(v, dtype=np.float32))
        text[i, : len(t)] = torch.from_numpy(np.asarray(t, dtype=np.float32))
        video_mask[i, : len(v)] = True
        text_mask[i, : len(t)] = True
    return {
        "video": video.to(device),
        "video_mask": video_mask.to(device),
        "text": text.to(device),
        "text_mask": text_mask.to(device),
        "lengths": lengths,
    }


def _centres(length: int, level: int, device: torch.device) -> torch.Tensor:
    return (torch.arange(length, device=device, dtype=torch.float32) + 0.5) * (2**level)


def temporal_nms(windows: np.ndarray, scores: np.ndarray, iou: float, limit: int | None = None) -> np.ndarray:
    """Greedy 1-D NMS: indices of kept windows, best first (a window overlapping a kept one by
    more than ``iou`` is dropped)."""
    order = np.argsort(-scores, kind="stable")
    kept: list[int] = []
    for i in order:
        if limit is not None and len(kept) >= limit:
            break
        if kept:
            other = windows[kept]
            inter = np.clip(
                np.minimum(other[:, 1], windows[i, 1]) - np.maximum(other[:, 0], windows[i, 0]), 0, None
            )
            union = np.maximum(other[:, 1], windows[i, 1]) - np.minimum(other[:, 0], windows[i, 0])
            overlap = np.where(union > 0, inter / np.maximum(union, 1e-9), 1.0)
            if (overlap > iou).any():
                continue
        kept.append(int(i))
    return np.array(kept, dtype=np.int64)


def decode_moments(
    out: GroundOutput, b: int, clips: int, cfg: GroundConfig, limit_seconds: float
) -> np.ndarray:
    """Moments (start s, end s, score) of sample ``b``: every valid pyramid position, then NMS."""
    windows, scores = [], []
    for lvl, (logit, dist, mask) in enumerate(zip(out.logits, out.distances, out.masks, strict=True)):
        valid = mask[b]
        centre = _centres(logit.shape[1], lvl, logit.device)
        start = (centre - dist[b, :, 0]).clamp(min=0.0, max=float(clips))
        end = (centre + dist[b, :, 1]).clamp(min=0.0, max=float(clips))
        windows.append(torch.stack([start, end], dim=-1)[valid])
        scores.append(torch.sigmoid(logit[b])[valid])
    joined = torch.cat(windows).float().cpu().numpy() * cfg.clip_seconds
    joined = np.clip(joined, 0.0, limit_seconds)
    score = torch.cat(scores).float().cpu().numpy()
    keep = (joined[:, 1] - joined[:, 0]) > 1e-6
    joined, score = joined[keep], score[keep]
    if not len(joined):
        return np.zeros((0, 3))
    kept = temporal_nms(joined, score, cfg.nms_iou, cfg.max_moments)
    return np.concatenate([joined[kept], score[kept, None]], axis=1).astype(np.float64)


# --- training objective ----------------------------------------------------------------------------
@dataclass
class GroundTargets:
    """Batch targets: moments in clip units and per-clip saliency in [0, 1] (0 = not relevant)."""

    windows: torch.Tensor  # (B, G, 2) start, end in clips
    window_mask: torch.Tensor  # (B, G) bool
    saliency: torch.Tensor  # (B, T)
    query_group: torch.Tensor  # (B,) equal ids for identical query texts (not negatives of each other)


def _focal(
    logits: torch.Tensor, target: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0
) -> torch.Tensor:
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = p * target + (1 - p) * (1 - target)
    weight = alpha * target + (1 - alpha) * (1 - target)
    return weight * ce * (1 - p_t) ** gamma


def _assign(
    out: GroundOutput, targets: GroundTargets, cfg: GroundConfig
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per level: (positive mask (B, T_l), regression targets (B, T_l, 2)) FCOS-style.

    A position is positive for a ground-truth moment when its centre lies inside the moment and
    the moment's larger half-extent from it falls in the level's range; among several, the
    shortest moment wins. A moment that got no position anywhere takes the level-0 position
    under its centre.
    """
    windows, gmask = targets.windows.float(), targets.window_mask.bool()
    levels = len(out.logits)
    result = []
    covered = torch.zeros_like(gmask)
    big = torch.tensor(float("inf"), device=windows.device)
    for lvl in range(levels):
        length = out.logits[lvl].shape[1]
        centre = _centres(length, lvl, windows.device)[None, :, None]  # (1, T_l, 1)
        left = centre - windows[:, None, :, 0]  # (B, T_l, G)
        right = windows[:, None, :, 1] - centre
        extent = torch.maximum(left, right)
        low = 0.0 if lvl == 0 else cfg.base_range * 2 ** (lvl - 1)
        high = big if lvl == levels - 1 else cfg.base_range * 2**lvl
        ok = (left >= 0) & (right >= 0) & gmask[:, None, :] & (extent >= low) & (extent < high)
        ok = ok & out.masks[lvl][:, :, None]
        span = (windows[..., 1] - windows[..., 0])[:, None, :].expand_as(ok)
        chosen = torch.where(ok, span, big).argmin(dim=-1)  # (B, T_l)
        positive = ok.any(dim=-1)
        covered |= ok.any(dim=1)
        picked = torch.gather(
            torch.stack([left, right], dim=-1), 2, chosen[..., None, None].expand(-1, -1, 1, 2)
        )[:, :, 0]
        result.append((positive, picked))
    missing = gmask & ~covered
    if missing.any():
        positive, picked = result[0]
        positive, picked = positive.clone(), picked.clone()
        length = positive.shape[1]
        for b, g in missing.nonzero().tolist():
            start, end = windows[b, g].tolist()
            j = min(max(int((start + end) / 2), 0), length - 1)
            if not out.masks[0][b, j]:
                continue
            positive[b, j] = True
            picked[b, j, 0] = max(j + 0.5 - start, 0.0)
            picked[b, j, 1] = max(end - (j + 0.5), 0.0)
        result[0] = (positive, picked)
    return result


def ground_loss(
    out: GroundOutput,
    targets: GroundTargets,
    cfg: GroundConfig,
    *,
    weights: dict[str, float] | None = None,
    temperature: float = 0.07,
) -> dict[str, torch.Tensor]:
    """The training losses (``total`` and each part); see the module docstring."""
    w = {"cls": 1.0, "reg": 1.0, "sal": 1.0, "rank": 0.5, "layer": 0.2, **(weights or {})}
    device = out.saliency.device
    zero = out.saliency.sum() * 0.0

    # moment boundaries: focal loss on foreground, 1-IoU + L1 on distances at positives
    cls_terms, iou_terms, l1_terms, positives = [], [], [], 0
    for lvl, (positive, picked) in enumerate(_assign(out, targets, cfg)):
        mask = out.masks[lvl]
        logit = out.logits[lvl].float()
        cls_terms.append(_focal(logit[mask], positive[mask].float()).sum())
        if positive.any():
            pred = out.distances[lvl][positive].float()
            goal = picked[positive].float()
            inter = torch.minimum(pred, goal).sum(-1)
            union = torch.maximum(pred, goal).sum(-1).clamp_min(1e-6)
            iou_terms.append((1 - inter / union).sum())
            l1_terms.append((pred - goal).abs().sum(-1).div(2**lvl).sum())
            positives += int(positive.sum())
    norm = max(positives, 1)
    loss_cls = torch.stack(cls_terms).sum() / norm
    loss_reg = (
        (torch.stack(iou_terms).sum() + 0.5 * torch.stack(l1_terms).sum()) / norm if iou_terms else zero
    )

    # saliency: relevant clips against the rest of the same video, plus graded ranking
    s = out.saliency.float()
    valid = out.masks[0]
    y = targets.saliency.to(device).float()
    pos = (y > 0) & valid
    neg = (y <= 0) & valid
    neg_lse = torch.logsumexp(s.masked_fill(~neg, float("-inf")), dim=1, keepdim=True)  # (B, 1)
    has_both = pos.any(1, keepdim=True) & neg.any(1, keepdim=True)
    nce = F.softplus(neg_lse - s)  # -log(e^s / (e^s + sum e^neg))
    use = pos & has_both
    loss_sal = nce[use].mean() if use.any() else zero
    higher = (y[:, :, None] > y[:, None, :]) & valid[:, :, None] & valid[:, None, :]
    if higher.any():
        gap = s[:, :, None] - s[:, None, :]
        loss_rank = F.relu(1.0 - gap)[higher].mean()
    else:
        loss_rank = zero

    # layer-wise, video-level contrast: each step's query vs the CLS features of its moment
    terms = []
    has_moment = pos.any(1)
    if has_moment.sum() > 1:
        groups = targets.query_group.to(device)
        same = (groups[:, None] == groups[None, :]) & ~torch.eye(len(groups), dtype=torch.bool, device=device)
        keep = has_moment
        weight = pos.float() / pos.float().sum(1, keepdim=True).clamp_min(1.0)
        for query, cls in zip(out.layer_queries, out.layer_cls, strict=True):
            moment = F.normalize(torch.einsum("bt,btd->bd", weight, cls.float()), dim=-1)[keep]
            q = F.normalize(query.float(), dim=-1)[keep]
            sim = (q @ moment.T) / temperature
            block = same[keep][:, keep]
            sim = sim.masked_fill(block, float("-inf"))
            labels = torch.arange(len(q), device=device)
            terms.append((F.cross_entropy(sim, labels) + F.cross_entropy(sim.T, labels)) / 2)
    loss_layer = torch.stack(terms).mean() if terms else zero

    parts = {"cls": loss_cls, "reg": loss_reg, "sal": loss_sal, "rank": loss_rank, "layer": loss_layer}
    total = sum(w[name] * value for name, value in parts.items())
    return {"total": total, **parts}  # type: ignore[dict-item]


# --- the hub's loader for the `ground_head` role -------------------------------------------------------
@register_loader("ground_head")
def _load_ground_head(request: LoadRequest) -> tuple[GroundHead, None]:
    """A ``save_pretrained`` directory of a :class:`GroundHead` (kept in float32: it is small)."""
    source = Path(request.source)
    if not (source / CONFIG_NAME).is_file() or not (source / WEIGHTS_NAME).is_file():
        raise FileNotFoundError(f"{source} holds no trained ground head ({CONFIG_NAME} + {WEIGHTS_NAME})")
    return GroundHead.from_pretrained(source, device=request.device), None
