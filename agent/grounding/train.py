"""Train the temporal grounding head (``vidagent.grounding.head``) and predict with it.

:func:`train` uses accelerate's ``Accelerator`` (device, mixed precision), AdamW with linear
warm-up then cosine decay, gradient clipping, tqdm bars (on a terminal) and one JSONL line per
epoch in ``<out>/metrics.jsonl`` (training losses, validation metrics, learning rate, time).
After every epoch ``<out>/last`` holds the head (``config.json`` + ``model.safetensors``), the
optimizer / scheduler / RNG state (``train_state/``, accelerate's ``save_state``) and
``trainer_state.json``; ``<out>/best`` holds the head with the best validation score (the
``score`` function passed in, e.g. ``vidagent.evals.grounding.score``; without a validation set,
the lowest training loss). ``resume=<out>/last`` continues where it stopped.

Features come from :class:`vidagent.grounding.features.FeatureCache` (computed once per video).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from vidagent.core.errors import VidagentError
from vidagent.grounding.data import (
    DEFAULT_CLIP_SECONDS,
    QVH_CLIP_SECONDS,
    GroundingDataset,
    GroundingSample,
    collate,
    find_video,
    load_samples,
)
from vidagent.grounding.features import FeatureCache, QueryFeatures
from vidagent.grounding.head import GroundConfig, GroundHead, GroundTargets, check_compatible, ground_loss
from vidagent.models.encoders import ClipEncoder

DEFAULT_SELECT = {"qvhighlights": "MR-mAP", "charades": "R1@0.5"}
STATE_FILE = "trainer_state.json"
# (predictions in QVHighlights' submission format, their samples, format) -> metrics
Scorer = Callable[[list[dict[str, Any]], list[GroundingSample], str], dict[str, float]]


def _to_qvh_clips(saliency: np.ndarray, clip_seconds: float, duration: float) -> list[float]:
    """Per-clip saliency resampled onto QVHighlights' 2 s clips (``int(duration / 2)`` of them)."""
    count = max(int(duration / QVH_CLIP_SECONDS), 1)
    if math.isclose(clip_seconds, QVH_CLIP_SECONDS):
        values = saliency[:count]
    else:
        centres = (np.arange(count) + 0.5) * QVH_CLIP_SECONDS
        values = saliency[np.minimum((centres // clip_seconds).astype(int), len(saliency) - 1)]
    return [round(float(v), 4) for v in values]


def predict(
    head: GroundHead, dataset: GroundingDataset, batch_size: int = 32, progress: bool = False
) -> list[dict[str, Any]]:
    """Predictions in QVHighlights' submission format, one dict per sample."""
    from tqdm import tqdm

    results = []
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=lambda items: items)
    for items in tqdm(loader, desc="predict", unit="batch", disable=None if progress else True):
        samples = [dataset.samples[i["index"]] for i in items]
        predictions = head.predict_batch(
            [i["video"] for i in items], [i["text"] for i in items], [s.duration or None for s in samples]
        )
        for sample, prediction in zip(samples, predictions, strict=True):
            results.append(
                {
                    "qid": sample.qid,
                    "query": sample.query,
                    "vid": sample.vid,
                    "pred_relevant_windows": [
                        [round(float(s), 3), round(float(e), 3), round(float(c), 5)]
                        for s, e, c in prediction.moments
                    ],
                    "pred_saliency_scores": _to_qvh_clips(
                        prediction.saliency, prediction.clip_seconds, sample.duration
                    ),
                }
            )
    return results


@dataclass
class TrainSettings:
    """What :func:`train` does; see the module docstring."""

    train: Path
    videos: Path
    val: Path | None = None
    format: str = "qvhighlights"
    out: Path = Path("runs/ground")
    epochs: int = 30
    batch_size: int = 32
    lr: float = 5e-4
    weight_decay: float = 0.01
    warmup: float = 0.05  # fraction of all steps
    grad_clip: float = 1.0
    seed: int = 0
    resume: Path | None = None
    profile: str = "auto"
    mixed_precision: str = "no"  # no | fp16 | bf16
    cpu: bool = False
    cache: Path | None = None  # feature cache root (default: <cache dir>/ground-features)
    head: dict[str, Any] = field(default_factory=dict)  # GroundConfig overrides (hidden, pool_grid, ...)
    select: str | None = None  # validation metric picking the best checkpoint
    loss_weights: dict[str, float] = field(default_factory=dict)
    progress: bool = True


@dataclass
class TrainResult:
    out: Path
    best: Path
    last: Path
    best_metrics: dict[str, float]
    history: list[dict[str, Any]]
    parameters: int
    seconds: float


def load_encoder(profile: str) -> ClipEncoder:
    from vidagent.models.hub import ModelHub
    from vidagent.models.profile import load_profile

    return ClipEncoder(ModelHub(load_profile(profile)).get("clip"))


def videos_of(samples: list[GroundingSample], videos_dir: Path) -> dict[str, Path]:
    return {vid: find_video(videos_dir, vid) for vid in sorted({s.vid for s in samples})}


def feature_root(cache: Path | None) -> Path:
    if cache is not None:
        return Path(cache)
    from vidagent.core.paths import cache_dir

    return cache_dir() / "ground-features"


def _schedule(total: int, warmup: float) -> Callable[[int], float]:
    warm = max(1, int(total * warmup))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        progress = (step - warm) / max(1, total - warm)
        return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return factor


def _save_checkpoint(
    directory: Path, head: GroundHead, state: dict[str, Any], accelerator: Any = None
) -> Path:
    """Head + trainer state (+ optimizer/scheduler/RNG via accelerate), replaced atomically."""
    from vidagent.core.paths import publish_dir, staging_dir

    staged = staging_dir(directory)
    head.save_pretrained(staged)
    if accelerator is not None:
        accelerator.save_state(str(staged / "train_state"), safe_serialization=True)
    (staged / STATE_FILE).write_text(json.dumps(state, indent=2, default=str) + "\n")
    publish_dir(staged, directory, replace=True)
    return directory


def train(settings: TrainSettings, *, score: Scorer | None = None) -> TrainResult:
    """Train a head on ``settings.train``, validating on ``settings.val`` with ``score`` after each epoch."""
    if settings.val is not None and score is None:
        raise VidagentError("a validation set needs a score function (e.g. vidagent.evals.grounding.score)")
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from tqdm import tqdm

    started = time.perf_counter()
    set_seed(settings.seed)
    fmt = settings.format
    encoder = load_encoder(settings.profile)
    resume_state: dict[str, Any] = {}
    if settings.resume is not None:
        resume = Path(settings.resume)
        if not (resume / STATE_FILE).is_file() or not (resume / "train_state").is_dir():
            raise VidagentError(f"{resume} is not a training checkpoint (no {STATE_FILE} / train_state)")
        config = GroundConfig.load(resume)
        resume_state = json.loads((resume / STATE_FILE).read_text())
    else:
        overrides = {"clip_seconds": DEFAULT_CLIP_SECONDS[fmt], **settings.head}
        config = GroundConfig.for_clip(encoder.model.config, encoder.model_id, **overrides)
    check_compatible(config, encoder)

    train_samples = load_samples(settings.train, fmt)
    val_samples = load_samples(settings.val, fmt) if settings.val is not None else []
    videos = videos_of(train_samples + val_samples, Path(settings.videos))
    features = FeatureCache(feature_root(settings.cache), encoder, config)
    features.ensure(videos, progress=settings.progress)
    queries = QueryFeatures(encoder, config)
    train_data = GroundingDataset(train_samples, features, queries, videos)
    val_data = GroundingDataset(val_samples, features, queries, videos) if val_samples else None
    config.extra = {"train": str(settings.train), "format": fmt, "train_queries": len(train_samples)}

    accelerator = Accelerator(mixed_precision=settings.mixed_precision, cpu=settings.cpu)
    generator = torch.Generator().manual_seed(settings.seed)
    loader = DataLoader(
        train_data,
        batch_size=settings.batch_size,
        shuffle=True,
        collate_fn=collate,
        generator=generator,
        drop_last=len(train_data) > settings.batch_size,
    )
    head = GroundHead(config)
    decay = [p for n, p in head.named_parameters() if p.ndim > 1 and "embed" not in n]
    rest = [p for n, p in head.named_parameters() if not (p.ndim > 1 and "embed" not in n)]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": settings.weight_decay}, {"params": rest, "weight_decay": 0.0}],
        lr=settings.lr,
    )
    total_steps = max(1, settings.epochs * len(loader))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(total_steps, settings.warmup))
    model, optimizer, scheduler = accelerator.prepare(head, optimizer, scheduler)

    out = Path(settings.out)
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "metrics.jsonl"
    select = settings.select or DEFAULT_SELECT[fmt]
    first_epoch, step = 1, 0
    best_score, best_metrics, best_epoch = -math.inf, {}, 0
    if resume_state:
        accelerator.load_state(str(Path(settings.resume) / "train_state"))  # type: ignore[arg-type]
        first_epoch = int(resume_state["epoch"]) + 1
        step = int(resume_state.get("step", 0))
        best_score = float(resume_state.get("best_score", -math.inf))
        best_metrics = resume_state.get("best_metrics", {})
        best_epoch = int(resume_state.get("best_epoch", 0))
        generator.manual_seed(settings.seed + first_epoch)

    history: list[dict[str, Any]] = []
    unwrapped = accelerator.unwrap_model(model)
    for epoch in range(first_epoch, settings.epochs + 1):
        epoch_started = time.perf_counter()
        model.train()
        sums: dict[str, float] = {}
        batches = 0
        bar = tqdm(
            loader,
            desc=f"epoch {epoch}/{settings.epochs}",
            unit="batch",
            leave=False,
            disable=None if settings.progress else True,
        )  # None: off when not a terminal
        for batch in bar:
            device = accelerator.device
            out_ = model(
                batch["video"].to(device),
                batch["video_mask"].to(device),
                batch["text"].to(device),
                batch["text_mask"].to(device),
            )
            targets = GroundTargets(
                batch["windows"].to(device),
                batch["window_mask"].to(device),
                batch["saliency"].to(device),
                batch["group"].to(device),
            )
            losses = ground_loss(out_, targets, config, weights=settings.loss_weights)
            optimizer.zero_grad(set_to_none=True)
            accelerator.backward(losses["total"])
            if settings.grad_clip:
                accelerator.clip_grad_norm_(model.parameters(), settings.grad_clip)
            optimizer.step()
            scheduler.step()
            step += 1
            batches += 1
            for name, value in losses.items():
                sums[name] = sums.get(name, 0.0) + float(value.detach())
            bar.set_postfix(loss=f"{sums['total'] / batches:.3f}")
        record: dict[str, Any] = {
            "epoch": epoch,
            "step": step,
            "lr": scheduler.get_last_lr()[0],
            "train": {k: round(v / max(batches, 1), 5) for k, v in sums.items()},
        }
        if val_data is not None and score is not None:
            metrics = score(predict(unwrapped, val_data), val_samples, fmt)
            record["val"] = {k: round(v, 3) for k, v in metrics.items()}
            current = metrics.get(select, -math.inf)
        else:
            metrics, current = {}, -float(record["train"].get("total", 0.0))
        record["seconds"] = round(time.perf_counter() - epoch_started, 3)
        improved = current > best_score
        if improved:
            best_score, best_metrics, best_epoch = current, metrics, epoch
        state = {
            "epoch": epoch,
            "step": step,
            "best_score": best_score,
            "best_metrics": best_metrics,
            "best_epoch": best_epoch,
            "select": select,
            "settings": asdict(settings),
        }
        if accelerator.is_main_process:
            if improved:
                _save_checkpoint(out / "best", unwrapped, state)
            _save_checkpoint(out / "last", unwrapped, state, accelerator)
            with log_path.open("a", encoding="utf-8") as log:
                log.write(json.dumps(record) + "\n")
        history.append(record)
        if settings.progress:
            shown = " ".join(f"{k}={v:.2f}" for k, v in record.get("val", {}).items())
            tqdm.write(f"epoch {epoch}: loss {record['train'].get('total', 0):.3f} {shown}")
    if not (out / "best").is_dir():  # nothing trained (resumed at the end): keep what there is
        _save_checkpoint(out / "best", unwrapped, {"epoch": first_epoch - 1, "best_metrics": best_metrics})
    return TrainResult(
        out=out,
        best=out / "best",
        last=out / "last",
        best_metrics=best_metrics,
        history=history,
        parameters=unwrapped.num_parameters(),
        seconds=time.perf_counter() - started,
    )
