"""Temporal grounding metrics, equal to QVHighlights' official ``standalone_eval/eval.py``
(moment_detr; the script QVHighlights, R2-Tuning and Lighthouse report with) on every input,
malformed ones included (tests/evals/test_conformance_qvhighlights.py checks the numbers that
script printed), and Charades-STA's R1/mIoU.

Moment retrieval: predictions per query are windows ``[start, end, score]`` in the order the
submission lists them (the official protocol expects them best first and does not sort); a
query may have several ground-truth windows.

* ``MR-R1@t``: the *first listed* window's IoU with the ground-truth window it overlaps most is
  ``>= t``; percentage of queries.
* ``MR-mAP@t``: per query, ActivityNet-style average precision of the first 10 listed windows,
  ranked by score: a window is a true positive when it reaches IoU ``t`` with a ground-truth
  window not matched yet by a higher-ranked window (trying ground-truth windows in order of IoU);
  precision is made monotone and integrated over recall (all points). The mean over queries.
* ``MR-mAP``: the mean of ``MR-mAP@t`` over ``t`` in 0.5:0.05:0.95.

Highlight detection (QVHighlights): per query, every clip of the video (2 s, ``int(duration /
2)`` clips) gets a predicted saliency; three annotators scored the relevant clips 0-4. A clip is
positive for an annotator at score ``>= k`` for k = 2, 3, 4 (Fair, Good, VeryGood; VeryGood is
the reported one, also under the plain names ``HL-mAP`` and ``HL-HIT@1``).

* ``HL-mAP@k``: per query and annotator, the AP of the predicted ranking of clips (precision
  interpolated to the max at higher recall, averaged at each distinct recall level, as
  QVHighlights' ``get_ap``; 1 if every clip is positive, 0 if none is); mean over both. A
  saliency list shorter than the video's clips is padded with 0, a longer one cut (as the
  official script).
* ``HL-HIT@1@k``: the clip with the highest listed saliency (the first of ties; its index as
  given, so one past the video's clips is a miss) is positive for at least one annotator.

Charades-STA (one ground-truth window per query): ``R1@{0.3,0.5,0.7}`` as above, and ``mIoU``,
the mean IoU of the top-scored window. Every figure is a percentage (0-100).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

MR_THRESHOLDS = np.round(np.linspace(0.5, 0.95, 10), 2)
VERY_GOOD = 4  # QVHighlights' saliency threshold for the reported HL figures
SALIENCY_LEVELS = (2, 3, 4)  # Fair, Good, VeryGood: the official script reports all three
MAX_PRED_WINDOWS = 10  # QVHighlights keeps the top 10 windows per query for mAP


def temporal_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every window in ``a`` (N, 2) with every window in ``b`` (M, 2): (N, M)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 2)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 2)
    inter = np.clip(
        np.minimum(a[:, None, 1], b[None, :, 1]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None
    )
    # the official arithmetic (sum of lengths minus the intersection, not the hull): the same number,
    # but a window at exactly IoU 0.7 must land on the same side of 0.7 as in the official script
    union = (a[:, None, 1] - a[:, None, 0]) + (b[None, :, 1] - b[None, :, 0]) - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _ranked(windows: Sequence[Sequence[float]]) -> np.ndarray:
    """Predicted windows (N, 3) sorted by score, best first (stable for ties)."""
    array = np.asarray(windows, dtype=np.float64).reshape(-1, 3)
    return array[np.argsort(-array[:, 2], kind="stable")]


def top1_iou(pred_windows: Sequence[Sequence[float]], gt_windows: Sequence[Sequence[float]]) -> float:
    """IoU of the first listed predicted window (a submission lists its best first; the official
    script does not sort) with the ground-truth window it overlaps most."""
    preds = np.asarray(pred_windows, dtype=np.float64).reshape(-1, 3)
    if not len(preds) or not len(gt_windows):
        return 0.0
    return float(temporal_iou(preds[:1, :2], np.asarray(gt_windows)).max())


def interpolated_ap(precision: np.ndarray, recall: np.ndarray) -> float:
    """ActivityNet's all-point interpolated AP from cumulative precision and recall."""
    mprec = np.concatenate([[0.0], precision, [0.0]])
    mrec = np.concatenate([[0.0], recall, [1.0]])
    for i in range(len(mprec) - 2, -1, -1):
        mprec[i] = max(mprec[i], mprec[i + 1])
    idx = np.flatnonzero(mrec[1:] != mrec[:-1]) + 1
    return float(np.sum((mrec[idx] - mrec[idx - 1]) * mprec[idx]))


def detection_ap(
    pred_windows: Sequence[Sequence[float]],
    gt_windows: Sequence[Sequence[float]],
    thresholds: Iterable[float] = MR_THRESHOLDS,
) -> np.ndarray:
    """Per-threshold AP of one query's ranked windows against its ground truth (see module doc)."""
    thresholds = np.asarray(list(thresholds), dtype=np.float64)
    preds = _ranked(pred_windows)
    gts = np.asarray(gt_windows, dtype=np.float64).reshape(-1, 2)
    ap = np.zeros(len(thresholds))
    if not len(preds) or not len(gts):
        return ap
    ious = temporal_iou(preds[:, :2], gts)  # (P, G)
    tp = np.zeros((len(thresholds), len(preds)))
    fp = np.zeros_like(tp)
    locked = np.full((len(thresholds), len(gts)), -1)
    for p in range(len(preds)):
        order = np.argsort(-ious[p], kind="stable")
        for t, threshold in enumerate(thresholds):
            for g in order:
                if ious[p, g] < threshold:
                    break
                if locked[t, g] >= 0:
                    continue
                tp[t, p] = 1
                locked[t, g] = p
                break
            if not tp[t, p]:
                fp[t, p] = 1
    tp_cum, fp_cum = np.cumsum(tp, axis=1), np.cumsum(fp, axis=1)
    recall = tp_cum / len(gts)
    precision = tp_cum / (tp_cum + fp_cum)
    for t in range(len(thresholds)):
        ap[t] = interpolated_ap(precision[t], recall[t])
    return ap


def moment_metrics(
    predictions: dict[Any, Sequence[Sequence[float]]],
    ground_truth: dict[Any, Sequence[Sequence[float]]],
    *,
    max_windows: int = MAX_PRED_WINDOWS,
) -> dict[str, float]:
    """QVHighlights moment retrieval: MR-R1@0.5/0.7, MR-mAP@0.5/0.75 and MR-mAP (avg 0.5:0.95).

    ``predictions`` maps query id -> windows ``[start, end, score]``; ``ground_truth`` maps query
    id -> windows ``[start, end]``. Queries without ground truth are left out; a query without
    predictions scores 0.
    """
    qids = [q for q, gt in ground_truth.items() if len(gt)]
    if not qids:
        return {}
    top1 = np.array([top1_iou(predictions.get(q, []), ground_truth[q]) for q in qids])
    aps = np.stack(
        [detection_ap(list(predictions.get(q, []))[:max_windows], ground_truth[q]) for q in qids]
    )  # (Q, thresholds): the first ``max_windows`` listed, then ranked by score
    per_threshold = aps.mean(axis=0)
    at = {round(float(t), 2): float(v) for t, v in zip(MR_THRESHOLDS, per_threshold, strict=True)}
    return {
        "MR-R1@0.5": 100 * float(np.mean(top1 >= 0.5)),
        "MR-R1@0.7": 100 * float(np.mean(top1 >= 0.7)),
        "MR-mAP@0.5": 100 * at[0.5],
        "MR-mAP@0.75": 100 * at[0.75],
        "MR-mAP": 100 * float(per_threshold.mean()),
    }


def saliency_ap(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """QVHighlights' ``get_ap`` (interpolated, mean precision at each distinct recall level)."""
    y_true = np.asarray(y_true, dtype=np.float64).reshape(-1)
    y_score = np.asarray(y_score, dtype=np.float64).reshape(-1)
    if len(y_true) != len(y_score):
        raise ValueError("y_true and y_score need the same length")
    values = set(y_true.tolist())
    if len(values) == 1:
        return 0.0 if y_true[0] == 0 else 1.0
    # precision-recall points at each distinct score threshold (as sklearn's precision_recall_curve)
    order = np.argsort(y_score, kind="mergesort")[::-1]
    scores, labels = y_score[order], y_true[order]
    ends = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]
    tps = np.cumsum(labels)[ends]
    fps = 1 + ends - tps
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    precision = np.r_[precision[::-1], 1.0]
    recall = np.r_[recall[::-1], 0.0]
    precision = np.maximum.accumulate(precision)  # best precision at this recall or higher
    changes = np.flatnonzero(np.diff(recall))
    return float(np.mean(precision[changes]))


def saliency_matrix(
    num_clips: int, relevant_clip_ids: Sequence[int], saliency_scores: Sequence[Sequence[float]]
) -> np.ndarray:
    """(num_clips, annotators) scores: the relevant clips' scores, 0 elsewhere."""
    scores = np.asarray(saliency_scores, dtype=np.float64)
    annotators = scores.shape[1] if scores.ndim == 2 and scores.size else 3
    full = np.zeros((num_clips, annotators))
    ids = np.asarray(relevant_clip_ids, dtype=np.int64)
    inside = ids < num_clips
    if len(ids):
        full[ids[inside]] = scores.reshape(len(ids), annotators)[inside]
    return full


def highlight_metrics(
    predictions: dict[Any, Sequence[float]],
    ground_truth: dict[Any, np.ndarray],
    *,
    levels: Sequence[int] = SALIENCY_LEVELS,
) -> dict[str, float]:
    """QVHighlights highlight detection: ``HL-mAP@k`` and ``HL-HIT@1@k`` at saliency ``>= k`` for
    each level, and the VeryGood pair under the plain names ``HL-mAP`` and ``HL-HIT@1``.

    ``predictions`` maps query id -> per-clip saliency (any length: padded with 0 or cut for the
    AP, indexed as given for the hit, as the official script); ``ground_truth`` maps query id ->
    (clips, annotators) scores (:func:`saliency_matrix`).
    """
    qids = [q for q in ground_truth if q in predictions]
    if not qids:
        return {}
    result: dict[str, float] = {}
    for level in levels:
        aps, hits = [], []
        for q in qids:
            binary = (np.asarray(ground_truth[q]) >= level).astype(np.float64)
            clips = len(binary)
            given = np.asarray(predictions[q], dtype=np.float64).reshape(-1)
            top = int(np.argmax(given)) if len(given) else clips
            hits.append(float(binary[top].max()) if top < clips else 0.0)
            pred = np.zeros(clips)
            pred[: min(len(given), clips)] = given[:clips]
            aps.extend(saliency_ap(binary[:, a], pred) for a in range(binary.shape[1]))
        result[f"HL-mAP@{level}"] = 100 * float(np.mean(aps))
        result[f"HL-HIT@1@{level}"] = 100 * float(np.mean(hits))
    if VERY_GOOD in levels:
        result["HL-mAP"], result["HL-HIT@1"] = result[f"HL-mAP@{VERY_GOOD}"], result[f"HL-HIT@1@{VERY_GOOD}"]
    return result


def charades_metrics(
    predictions: dict[Any, Sequence[Sequence[float]]],
    ground_truth: dict[Any, Sequence[Sequence[float]]],
    thresholds: Sequence[float] = (0.3, 0.5, 0.7),
) -> dict[str, float]:
    """Charades-STA: R1@t (top-1 IoU >= t) and mIoU (mean top-1 IoU), in percent."""
    qids = [q for q, gt in ground_truth.items() if len(gt)]
    if not qids:
        return {}
    ious = np.array([top1_iou(predictions.get(q, []), ground_truth[q]) for q in qids])
    result = {f"R1@{t:g}": 100 * float(np.mean(ious >= t)) for t in thresholds}
    result["mIoU"] = 100 * float(ious.mean())
    return result


__all__ = [
    "MR_THRESHOLDS",
    "SALIENCY_LEVELS",
    "VERY_GOOD",
    "charades_metrics",
    "detection_ap",
    "highlight_metrics",
    "interpolated_ap",
    "moment_metrics",
    "saliency_ap",
    "saliency_matrix",
    "temporal_iou",
    "top1_iou",
]
