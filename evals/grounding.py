"""Train and evaluate the temporal grounding head (``vidagent.ground_head``).

Data
----
* **QVHighlights** JSONL, one query per line: ``qid, query, vid, duration, relevant_windows``
  (seconds), ``relevant_clip_ids`` and ``saliency_scores`` (three annotators, 0-4, per relevant
  2 s clip). The test split without labels loads too (no windows).
* **Charades-STA** text files, one query per line: ``vid start end##query``. Durations come
  from the video files.

Videos are found as ``<videos dir>/<vid>.<mp4|mkv|webm|avi|mov>``.

Features
--------
The frozen CLIP runs once per video: one frame at the centre of every clip (``clip_seconds``,
2 s for QVHighlights, 1 s for Charades-STA by default), the tokens of its last ``K`` layers
saved as ``<cache>/<clip model>/clip<c>s-last<K>-grid<g>/<vid>.safetensors`` (float16, with the
video's duration). Later runs, and evaluation, read the cache. Query token features are
computed once per query string per run and kept in memory.

For ViT-B/32 a frame is 4 layers x 50 tokens x 768 x 2 bytes = 300 KB: 23 MB per 150 s
QVHighlights video at 2 s clips. ``--pool-grid 4`` (CLS + 4x4 pooled patches) cuts that to a
third.

Training
--------
:func:`train` uses accelerate's ``Accelerator`` (device, mixed precision), AdamW with linear
warm-up then cosine decay, gradient clipping, tqdm bars (on a terminal) and one JSONL line per epoch in
``<out>/metrics.jsonl`` (training losses, validation metrics, learning rate, time). After every
epoch ``<out>/last`` holds the head (``config.json`` + ``model.safetensors``), the optimizer /
scheduler / RNG state (``train_state/``, accelerate's ``save_state``) and ``trainer_state.json``;
``<out>/best`` holds the head with the best validation score. ``resume=<out>/last`` continues
where it stopped.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from vidagent.encoders import ClipEncoder
from vidagent.errors import VidagentError, VideoNotFound
from vidagent.evals.grounding_metrics import (
    charades_metrics,
    highlight_metrics,
    moment_metrics,
    saliency_matrix,
)
from vidagent.ground_head import (
    GroundConfig,
    GroundHead,
    GroundTargets,
    check_compatible,
    clip_grid,
    ground_loss,
    pad_batch,
    text_features,
    vision_features,
)

FORMATS = ("qvhighlights", "charades")
VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".avi", ".mov")
QVH_CLIP_SECONDS = 2.0  # QVHighlights' clip ids and saliency scores are per 2 s clip
DEFAULT_CLIP_SECONDS = {"qvhighlights": 2.0, "charades": 1.0}
DEFAULT_SELECT = {"qvhighlights": "MR-mAP", "charades": "R1@0.5"}
STATE_FILE = "trainer_state.json"


class GroundingDataError(VidagentError):
    """A grounding data file cannot be read."""


# --- data ------------------------------------------------------------------------------------------
@dataclass
class GroundingSample:
    """One query on one video; windows in seconds."""

    qid: str
    query: str
    vid: str
    duration: float  # seconds (0 until known, for Charades-STA)
    windows: list[tuple[float, float]]
    relevant_clip_ids: list[int] = field(default_factory=list)
    saliency_scores: list[list[float]] = field(default_factory=list)

    @property
    def has_saliency(self) -> bool:
        return bool(self.relevant_clip_ids) and bool(self.saliency_scores)


def load_qvhighlights(path: str | Path) -> list[GroundingSample]:
    """Read a QVHighlights JSONL file."""
    samples = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            samples.append(GroundingSample(
                qid=str(row["qid"]), query=str(row["query"]), vid=str(row["vid"]),
                duration=float(row.get("duration") or 0.0),
                windows=[(float(s), float(e)) for s, e in row.get("relevant_windows") or []],
                relevant_clip_ids=[int(c) for c in row.get("relevant_clip_ids") or []],
                saliency_scores=[[float(v) for v in scores] for scores in row.get("saliency_scores") or []],
            ))
        except (ValueError, KeyError, TypeError) as error:
            raise GroundingDataError(f"{path}:{number}: not a QVHighlights row ({error})") from None
    return samples


_CHARADES = re.compile(r"^\s*(\S+)\s+([0-9.]+)\s+([0-9.]+)\s*##(.*)$")


def load_charades(path: str | Path) -> list[GroundingSample]:
    """Read a Charades-STA file (``vid start end##query`` per line); durations are filled later."""
    samples = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        match = _CHARADES.match(line)
        if match is None:
            raise GroundingDataError(f"{path}:{number}: expected 'vid start end##query', got {line[:80]!r}")
        vid, start, end, query = match.groups()
        s, e = sorted((float(start), float(end)))
        samples.append(GroundingSample(qid=str(len(samples)), query=query.strip(), vid=vid, duration=0.0,
                                       windows=[(s, e)]))
    return samples


def load_samples(path: str | Path, fmt: str) -> list[GroundingSample]:
    if fmt not in FORMATS:
        raise GroundingDataError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if not Path(path).is_file():
        raise GroundingDataError(f"data file {str(path)!r} does not exist")
    return load_qvhighlights(path) if fmt == "qvhighlights" else load_charades(path)


def find_video(videos_dir: str | Path, vid: str) -> Path:
    """``<videos_dir>/<vid>.<suffix>`` for the first suffix that exists."""
    for suffix in VIDEO_SUFFIXES:
        path = Path(videos_dir) / f"{vid}{suffix}"
        if path.is_file():
            return path
    raise VideoNotFound(Path(videos_dir) / vid, f"no video file for {vid!r} ({'/'.join(VIDEO_SUFFIXES)})")


# --- features --------------------------------------------------------------------------------------
def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "--", text).strip("-") or "model"


class FeatureCache:
    """Per-video CLIP features on disk (computed once) with a small in-memory LRU in front."""

    def __init__(self, root: str | Path, encoder: ClipEncoder, config: GroundConfig, *, memory_items: int = 512,
                 chunk: int = 64) -> None:
        grid = config.pool_grid if config.pool_grid is not None else "all"
        self.encoder = encoder
        self.config = config
        self.directory = Path(root) / _slug(encoder.model_id) / (
            f"clip{config.clip_seconds:g}s-last{config.num_layers}-grid{grid}"
        )
        self.memory_items = memory_items
        self.chunk = chunk
        self._memory: OrderedDict[str, tuple[np.ndarray, float]] = OrderedDict()

    def path(self, vid: str) -> Path:
        return self.directory / f"{_slug(vid)}.safetensors"

    def has(self, vid: str) -> bool:
        return self.path(vid).is_file()

    def get(self, vid: str, video: str | Path | None = None) -> tuple[np.ndarray, float]:
        """(features float16 (T, K, N, D), duration s) of ``vid``, extracting from ``video`` if needed."""
        if vid in self._memory:
            self._memory.move_to_end(vid)
            return self._memory[vid]
        if not self.has(vid):
            if video is None:
                raise VidagentError(f"no cached features for {vid!r} in {self.directory} and no video given")
            self.extract(vid, video)
        from safetensors import safe_open

        with safe_open(str(self.path(vid)), framework="np") as handle:
            features = handle.get_tensor("features")
            duration = float((handle.metadata() or {}).get("duration", 0.0))
        self._memory[vid] = (features, duration)
        while len(self._memory) > self.memory_items:
            self._memory.popitem(last=False)
        return features, duration

    def extract(self, vid: str, video: str | Path) -> Path:
        """Run the frozen CLIP over the clip centres of ``video`` and save the features."""
        from safetensors.numpy import save_file

        from vidagent.video import Video

        with Video.open(video) as opened:
            duration = float(opened.duration)
            times = clip_grid(duration, self.config.clip_seconds)
            parts = []
            for start in range(0, len(times), self.chunk):
                frames = opened.sample_at(times[start : start + self.chunk], short_side=self.encoder.input_size)
                if len(frames):
                    parts.append(vision_features(self.encoder, frames.frames, self.config))
                if len(frames) < len(times[start : start + self.chunk]):
                    break  # truncated file: keep the clips that decode
        if not parts:
            raise VidagentError(f"{video}: no frame decodes")
        features = np.concatenate(parts)
        target = self.path(vid)
        target.parent.mkdir(parents=True, exist_ok=True)
        staged = target.with_name(f".{target.name}.tmp")
        metadata = {"duration": f"{duration:.6f}", "video": str(video), "model": self.encoder.model_id}
        save_file({"features": np.ascontiguousarray(features)}, str(staged), metadata=metadata)
        staged.replace(target)
        return target

    def ensure(self, videos: dict[str, Path], progress: bool = True) -> None:
        """Extract every video of ``videos`` (vid -> path) not cached yet, with a progress bar."""
        from tqdm import tqdm

        todo = [vid for vid in videos if not self.has(vid)]
        for vid in tqdm(todo, desc="CLIP features", unit="video", disable=None if progress and todo else True):
            self.extract(vid, videos[vid])


class QueryFeatures:
    """Text-tower features per query string, computed in batches and kept in memory."""

    def __init__(self, encoder: ClipEncoder, config: GroundConfig, batch_size: int = 128) -> None:
        self.encoder, self.config, self.batch_size = encoder, config, batch_size
        self._cache: dict[str, np.ndarray] = {}

    def get_many(self, queries: Sequence[str]) -> list[np.ndarray]:
        todo = sorted({q for q in queries if q not in self._cache})
        for start in range(0, len(todo), self.batch_size):
            batch = todo[start : start + self.batch_size]
            self._cache.update(zip(batch, text_features(self.encoder, batch, self.config), strict=True))
        return [self._cache[q] for q in queries]

    def get(self, query: str) -> np.ndarray:
        return self.get_many([query])[0]


def clip_targets(sample: GroundingSample, clips: int, clip_seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """(windows in clip units (G, 2), per-clip saliency in [0, 1] (clips,)) of one sample.

    Saliency: the mean annotator score / 4 of the QVHighlights 2 s clip under each clip's centre
    when scores are given; otherwise 1 for clips whose centre lies in a window (and the clip
    under the centre of a window too short to hold any clip centre).
    """
    limit = clips * clip_seconds
    windows = np.array([(min(s, limit), min(e, limit)) for s, e in sample.windows], dtype=np.float32).reshape(-1, 2)
    windows = windows[windows[:, 1] > windows[:, 0]] / clip_seconds
    centres = (np.arange(clips) + 0.5) * clip_seconds
    saliency = np.zeros(clips, dtype=np.float32)
    if sample.has_saliency:
        scores = {c: float(np.mean(s)) / 4.0 for c, s in zip(sample.relevant_clip_ids, sample.saliency_scores, strict=False)}
        for t, centre in enumerate(centres):
            saliency[t] = scores.get(int(centre // QVH_CLIP_SECONDS), 0.0)
    else:
        for start, end in windows:
            inside = ((np.arange(clips) + 0.5) >= start) & ((np.arange(clips) + 0.5) <= end)
            if not inside.any():
                inside[min(int((start + end) / 2), clips - 1)] = True
            saliency[inside] = 1.0
    return windows, saliency


class GroundingDataset(Dataset):
    """Samples with their cached features and targets (for the DataLoader)."""

    def __init__(self, samples: list[GroundingSample], features: FeatureCache, queries: QueryFeatures,
                 videos: dict[str, Path]) -> None:
        self.samples, self.features, self.queries, self.videos = samples, features, queries, videos
        self.config = features.config
        queries.get_many([s.query for s in samples])
        self.groups = {q: i for i, q in enumerate(sorted({s.query for s in samples}))}
        for sample in samples:  # durations from the files where the data leaves them out
            if not sample.duration:
                sample.duration = features.get(sample.vid, videos.get(sample.vid))[1]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.samples[index]
        video, _ = self.features.get(sample.vid, self.videos.get(sample.vid))
        windows, saliency = clip_targets(sample, len(video), self.config.clip_seconds)
        return {
            "video": video, "text": self.queries.get(sample.query), "windows": windows, "saliency": saliency,
            "group": self.groups[sample.query], "index": index,
        }


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    batch = pad_batch([i["video"] for i in items], [i["text"] for i in items])
    most = max(1, max(len(i["windows"]) for i in items))
    windows = torch.zeros(len(items), most, 2)
    window_mask = torch.zeros(len(items), most, dtype=torch.bool)
    saliency = torch.zeros(len(items), batch["video"].shape[1])
    for b, item in enumerate(items):
        windows[b, : len(item["windows"])] = torch.from_numpy(item["windows"])
        window_mask[b, : len(item["windows"])] = True
        saliency[b, : len(item["saliency"])] = torch.from_numpy(item["saliency"])
    batch.update(
        windows=windows, window_mask=window_mask, saliency=saliency,
        group=torch.tensor([i["group"] for i in items]), index=[i["index"] for i in items],
    )
    return batch


# --- prediction and scoring ------------------------------------------------------------------------
def _to_qvh_clips(saliency: np.ndarray, clip_seconds: float, duration: float) -> list[float]:
    """Per-clip saliency resampled onto QVHighlights' 2 s clips (``int(duration / 2)`` of them)."""
    count = max(int(duration / QVH_CLIP_SECONDS), 1)
    if math.isclose(clip_seconds, QVH_CLIP_SECONDS):
        values = saliency[:count]
    else:
        centres = (np.arange(count) + 0.5) * QVH_CLIP_SECONDS
        values = saliency[np.minimum((centres // clip_seconds).astype(int), len(saliency) - 1)]
    return [round(float(v), 4) for v in values]


def predict(head: GroundHead, dataset: GroundingDataset, batch_size: int = 32,
            progress: bool = False) -> list[dict[str, Any]]:
    """Predictions in QVHighlights' submission format, one dict per sample."""
    from tqdm import tqdm

    results = []
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=lambda items: items)
    for items in tqdm(loader, desc="predict", unit="batch", disable=None if progress else True):
        samples = [dataset.samples[i["index"]] for i in items]
        predictions = head.predict_batch([i["video"] for i in items], [i["text"] for i in items],
                                         [s.duration or None for s in samples])
        for sample, prediction in zip(samples, predictions, strict=True):
            results.append({
                "qid": sample.qid, "query": sample.query, "vid": sample.vid,
                "pred_relevant_windows": [[round(float(s), 3), round(float(e), 3), round(float(c), 5)]
                                          for s, e, c in prediction.moments],
                "pred_saliency_scores": _to_qvh_clips(prediction.saliency, prediction.clip_seconds, sample.duration),
            })
    return results


def score(predictions: list[dict[str, Any]], samples: list[GroundingSample], fmt: str) -> dict[str, float]:
    """The format's standard metrics (see ``vidagent.evals.grounding_metrics``)."""
    # qids are strings here; a submission file may write them as numbers (QVHighlights' own do)
    moments = {str(p["qid"]): p["pred_relevant_windows"] for p in predictions}
    truth = {s.qid: s.windows for s in samples}
    if fmt == "charades":
        return charades_metrics(moments, truth)
    metrics = moment_metrics(moments, truth)
    labelled = [s for s in samples if s.has_saliency]
    if labelled:
        saliency = {str(p["qid"]): p["pred_saliency_scores"] for p in predictions if "pred_saliency_scores" in p}
        gt = {s.qid: saliency_matrix(max(int(s.duration / QVH_CLIP_SECONDS), 1), s.relevant_clip_ids,
                                     s.saliency_scores) for s in labelled}
        metrics.update(highlight_metrics(saliency, gt))
    return metrics


def random_predictions(samples: list[GroundingSample], *, seed: int = 0, lengths: Sequence[float] | None = None,
                       windows: int = 10) -> list[dict[str, Any]]:
    """A random baseline: ``windows`` random spans per query (random scores) and random saliency.

    Spans are uniform (start and end two uniform points of the video) or, with ``lengths``, a
    length drawn from ``lengths`` (e.g. the training set's moment lengths) at a uniform position.
    """
    rng = np.random.default_rng(seed)
    out = []
    for s in samples:
        duration = max(s.duration, 1e-3)
        spans = []
        for _ in range(windows):
            if lengths:
                length = min(float(rng.choice(lengths)), duration)
                start = float(rng.uniform(0, duration - length))
                spans.append([start, start + length, float(rng.random())])
            else:
                a, b = sorted(rng.uniform(0, duration, size=2).tolist())
                spans.append([a, b, float(rng.random())])
        spans.sort(key=lambda w: -w[2])
        clips = max(int(duration / QVH_CLIP_SECONDS), 1)
        out.append({"qid": s.qid, "query": s.query, "vid": s.vid, "pred_relevant_windows": spans,
                    "pred_saliency_scores": rng.random(clips).tolist()})
    return out


def random_baseline(samples: list[GroundingSample], fmt: str, *, lengths: Sequence[float] | None = None,
                    seeds: int = 20) -> dict[str, float]:
    """Metrics of :func:`random_predictions`, averaged over ``seeds`` draws."""
    runs = [score(random_predictions(samples, seed=k, lengths=lengths), samples, fmt) for k in range(seeds)]
    return {key: float(np.mean([r[key] for r in runs])) for key in runs[0]} if runs else {}


def format_metrics(table: dict[str, dict[str, float]]) -> str:
    """Rows = runs (e.g. trained, random), columns = metrics, as a markdown table."""
    keys: list[str] = []
    for metrics in table.values():
        keys += [k for k in metrics if k not in keys]
    lines = ["| run | " + " | ".join(keys) + " |", "| --- |" + " ---: |" * len(keys)]
    for name, metrics in table.items():
        lines.append(f"| {name} | " + " | ".join(f"{metrics[k]:.2f}" if k in metrics else "" for k in keys) + " |")
    return "\n".join(lines)


# --- training --------------------------------------------------------------------------------------
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
    from vidagent.hub import ModelHub
    from vidagent.profile import load_profile

    return ClipEncoder(ModelHub(load_profile(profile)).get("clip"))


def _videos_of(samples: list[GroundingSample], videos_dir: Path) -> dict[str, Path]:
    return {vid: find_video(videos_dir, vid) for vid in sorted({s.vid for s in samples})}


def _feature_root(cache: Path | None) -> Path:
    if cache is not None:
        return Path(cache)
    from vidagent.paths import cache_dir

    return cache_dir() / "ground-features"


def _schedule(total: int, warmup: float) -> Callable[[int], float]:
    warm = max(1, int(total * warmup))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        progress = (step - warm) / max(1, total - warm)
        return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return factor


def _save_checkpoint(directory: Path, head: GroundHead, state: dict[str, Any], accelerator: Any = None) -> Path:
    """Head + trainer state (+ optimizer/scheduler/RNG via accelerate), replaced atomically."""
    from vidagent.paths import publish_dir, staging_dir

    staged = staging_dir(directory)
    head.save_pretrained(staged)
    if accelerator is not None:
        accelerator.save_state(str(staged / "train_state"), safe_serialization=True)
    (staged / STATE_FILE).write_text(json.dumps(state, indent=2, default=str) + "\n")
    publish_dir(staged, directory, replace=True)
    return directory


def train(settings: TrainSettings) -> TrainResult:
    """Train a head on ``settings.train``, validating on ``settings.val`` after each epoch."""
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
    videos = _videos_of(train_samples + val_samples, Path(settings.videos))
    features = FeatureCache(_feature_root(settings.cache), encoder, config)
    features.ensure(videos, progress=settings.progress)
    queries = QueryFeatures(encoder, config)
    train_data = GroundingDataset(train_samples, features, queries, videos)
    val_data = GroundingDataset(val_samples, features, queries, videos) if val_samples else None
    config.extra = {"train": str(settings.train), "format": fmt, "train_queries": len(train_samples)}

    accelerator = Accelerator(mixed_precision=settings.mixed_precision, cpu=settings.cpu)
    generator = torch.Generator().manual_seed(settings.seed)
    loader = DataLoader(train_data, batch_size=settings.batch_size, shuffle=True, collate_fn=collate,
                        generator=generator, drop_last=len(train_data) > settings.batch_size)
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
        bar = tqdm(loader, desc=f"epoch {epoch}/{settings.epochs}", unit="batch", leave=False,
                   disable=None if settings.progress else True)  # None: off when not a terminal
        for batch in bar:
            device = accelerator.device
            out_ = model(batch["video"].to(device), batch["video_mask"].to(device), batch["text"].to(device),
                         batch["text_mask"].to(device))
            targets = GroundTargets(batch["windows"].to(device), batch["window_mask"].to(device),
                                    batch["saliency"].to(device), batch["group"].to(device))
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
            "epoch": epoch, "step": step, "lr": scheduler.get_last_lr()[0],
            "train": {k: round(v / max(batches, 1), 5) for k, v in sums.items()},
        }
        if val_data is not None:
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
            "epoch": epoch, "step": step, "best_score": best_score, "best_metrics": best_metrics,
            "best_epoch": best_epoch, "select": select, "settings": asdict(settings),
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
        out=out, best=out / "best", last=out / "last", best_metrics=best_metrics, history=history,
        parameters=unwrapped.num_parameters(), seconds=time.perf_counter() - started,
    )


# --- evaluation of a checkpoint ----------------------------------------------------------------------
@dataclass
class EvalResult:
    metrics: dict[str, float]
    predictions: list[dict[str, Any]]
    samples: list[GroundingSample]


def evaluate_checkpoint(ckpt: str | Path, data: str | Path, videos: str | Path, *, fmt: str = "qvhighlights",
                        profile: str = "auto", cache: Path | None = None, batch_size: int = 32,
                        progress: bool = True) -> EvalResult:
    """Load a head from ``ckpt`` and score it on ``data`` (features from the cache or computed)."""
    encoder = load_encoder(profile)
    head = GroundHead.from_pretrained(ckpt, device=encoder.device)
    check_compatible(head.config, encoder)
    samples = load_samples(data, fmt)
    paths = _videos_of(samples, Path(videos))
    features = FeatureCache(_feature_root(cache), encoder, head.config)
    features.ensure(paths, progress=progress)
    dataset = GroundingDataset(samples, features, QueryFeatures(encoder, head.config), paths)
    predictions = predict(head, dataset, batch_size=batch_size, progress=progress)
    return EvalResult(score(predictions, samples, fmt), predictions, samples)


# --- the synthetic proof that the head learns ------------------------------------------------------
QUICK_SPEC = {"train_videos": 32, "val_videos": 12, "seconds": 24.0, "fps": 2.0, "events": 2, "max_clips": 3}
SYNTH_HEAD = {"hidden": 64, "heads": 4, "dropout": 0.0, "pyramid_levels": 3}


def run_synthetic(out: str | Path, *, quick: bool = False, epochs: int | None = None, seed: int = 0,
                  batch_size: int = 16, lr: float = 2e-3, progress: bool = True, threads: int | None = 1,
                  spec: Any = None) -> dict[str, Any]:
    """Generate the synthetic set, train on it with the TINY random-weight CLIP, score held-out videos.

    Returns the held-out metrics of the trained head after the last epoch (no checkpoint
    selection on the held-out videos; the best epoch's figures are given too, marked as
    selected on them), of two random baselines (uniform spans; spans with the training set's
    moment lengths), the time taken and the parameter count. ``threads``: torch CPU threads
    while training (1 by default: the tensors are tiny, and extra threads only contend).
    """
    from vidagent.evals.grounding_synth import SynthSpec, make_synthetic_set

    out = Path(out)
    spec = spec or SynthSpec(seed=seed, **(QUICK_SPEC if quick else {}))
    data = make_synthetic_set(out / "data", spec)
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        result = train(TrainSettings(
            train=data.train, val=data.val, videos=data.videos, format="qvhighlights", out=out / "run",
            epochs=epochs or (30 if quick else 60), batch_size=batch_size, lr=lr, seed=seed, profile="tiny",
            cpu=True, cache=out / "features", head=dict(SYNTH_HEAD), select="MR-R1@0.5", progress=progress,
            warmup=0.1,
        ))
    finally:
        torch.set_num_threads(before)
    val = load_qvhighlights(data.val)
    train_rows = load_qvhighlights(data.train)
    lengths = [e - s for sample in train_rows for s, e in sample.windows]
    last = result.history[-1].get("val", {}) if result.history else {}
    return {
        "trained": last,
        "trained_best_selected_on_val": result.best_metrics,
        "random_uniform": random_baseline(val, "qvhighlights"),
        "random_prior": random_baseline(val, "qvhighlights", lengths=lengths),
        "train_seconds": round(result.seconds, 1),
        "parameters": result.parameters,
        "train_queries": len(train_rows),
        "val_queries": len(val),
        "spec": asdict(spec),
        "checkpoint": str(result.best),
    }


__all__ = [
    "FORMATS", "EvalResult", "FeatureCache", "GroundingDataset", "GroundingSample", "QueryFeatures",
    "TrainResult", "TrainSettings", "clip_targets", "collate", "evaluate_checkpoint", "find_video",
    "format_metrics", "load_charades", "load_qvhighlights", "load_samples", "predict", "random_baseline",
    "random_predictions", "run_synthetic", "score", "train",
]
