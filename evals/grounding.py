"""Score the temporal grounding head: official metrics, random baselines, checkpoints, the synthetic proof.

The head, its data, features and training live in ``vidagent.grounding``; this module holds what
measures them: :func:`score` (QVHighlights' and Charades-STA's official metrics, see
``vidagent.evals.grounding_metrics``), random baselines, :func:`evaluate_checkpoint` and
:func:`run_synthetic` (train on generated clips with the tiny CLIP, score held-out ones).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidagent.evals.grounding_metrics import (
    charades_metrics,
    highlight_metrics,
    moment_metrics,
    saliency_matrix,
)
from vidagent.grounding.data import (
    QVH_CLIP_SECONDS,
    GroundingDataset,
    GroundingSample,
    load_qvhighlights,
    load_samples,
)
from vidagent.grounding.features import FeatureCache, QueryFeatures
from vidagent.grounding.head import GroundHead, check_compatible
from vidagent.grounding.train import TrainSettings, feature_root, load_encoder, predict, train, videos_of


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
        saliency = {
            str(p["qid"]): p["pred_saliency_scores"] for p in predictions if "pred_saliency_scores" in p
        }
        gt = {
            s.qid: saliency_matrix(
                max(int(s.duration / QVH_CLIP_SECONDS), 1), s.relevant_clip_ids, s.saliency_scores
            )
            for s in labelled
        }
        metrics.update(highlight_metrics(saliency, gt))
    return metrics


def random_predictions(
    samples: list[GroundingSample],
    *,
    seed: int = 0,
    lengths: Sequence[float] | None = None,
    windows: int = 10,
) -> list[dict[str, Any]]:
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
        out.append(
            {
                "qid": s.qid,
                "query": s.query,
                "vid": s.vid,
                "pred_relevant_windows": spans,
                "pred_saliency_scores": rng.random(clips).tolist(),
            }
        )
    return out


def random_baseline(
    samples: list[GroundingSample], fmt: str, *, lengths: Sequence[float] | None = None, seeds: int = 20
) -> dict[str, float]:
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
        lines.append(
            f"| {name} | " + " | ".join(f"{metrics[k]:.2f}" if k in metrics else "" for k in keys) + " |"
        )
    return "\n".join(lines)


# --- evaluation of a checkpoint ----------------------------------------------------------------------
@dataclass
class EvalResult:
    metrics: dict[str, float]
    predictions: list[dict[str, Any]]
    samples: list[GroundingSample]


def evaluate_checkpoint(
    ckpt: str | Path,
    data: str | Path,
    videos: str | Path,
    *,
    fmt: str = "qvhighlights",
    profile: str = "auto",
    cache: Path | None = None,
    batch_size: int = 32,
    progress: bool = True,
) -> EvalResult:
    """Load a head from ``ckpt`` and score it on ``data`` (features from the cache or computed)."""
    encoder = load_encoder(profile)
    head = GroundHead.from_pretrained(ckpt, device=encoder.device)
    check_compatible(head.config, encoder)
    samples = load_samples(data, fmt)
    paths = videos_of(samples, Path(videos))
    features = FeatureCache(feature_root(cache), encoder, head.config)
    features.ensure(paths, progress=progress)
    dataset = GroundingDataset(samples, features, QueryFeatures(encoder, head.config), paths)
    predictions = predict(head, dataset, batch_size=batch_size, progress=progress)
    return EvalResult(score(predictions, samples, fmt), predictions, samples)


# --- the synthetic proof that the head learns ------------------------------------------------------
QUICK_SPEC = {"train_videos": 32, "val_videos": 12, "seconds": 24.0, "fps": 2.0, "events": 2, "max_clips": 3}
SYNTH_HEAD = {"hidden": 64, "heads": 4, "dropout": 0.0, "pyramid_levels": 3}


def run_synthetic(
    out: str | Path,
    *,
    quick: bool = False,
    epochs: int | None = None,
    seed: int = 0,
    batch_size: int = 16,
    lr: float = 2e-3,
    progress: bool = True,
    threads: int | None = 1,
    spec: Any = None,
) -> dict[str, Any]:
    """Generate the synthetic set, train on it with the TINY random-weight CLIP, score held-out videos.

    Returns the held-out metrics of the trained head after the last epoch (no checkpoint
    selection on the held-out videos; the best epoch's figures are given too, marked as
    selected on them), of two random baselines (uniform spans; spans with the training set's
    moment lengths), the time taken and the parameter count. ``threads``: torch CPU threads
    while training (1 by default: the tensors are tiny, and extra threads only contend).
    """
    from vidagent.grounding.synthetic import SynthSpec, make_synthetic_set

    out = Path(out)
    spec = spec or SynthSpec(seed=seed, **(QUICK_SPEC if quick else {}))
    data = make_synthetic_set(out / "data", spec)
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        result = train(
            TrainSettings(
                train=data.train,
                val=data.val,
                videos=data.videos,
                format="qvhighlights",
                out=out / "run",
                epochs=epochs or (30 if quick else 60),
                batch_size=batch_size,
                lr=lr,
                seed=seed,
                profile="tiny",
                cpu=True,
                cache=out / "features",
                head=dict(SYNTH_HEAD),
                select="MR-R1@0.5",
                progress=progress,
                warmup=0.1,
            ),
            score=score,
        )
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
