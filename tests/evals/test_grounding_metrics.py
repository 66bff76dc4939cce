"""Grounding metrics on hand-computed cases (QVHighlights MR/HL definitions, Charades-STA)."""

from __future__ import annotations

import numpy as np
import pytest

from vidagent.evals.grounding_metrics import (
    charades_metrics,
    detection_ap,
    highlight_metrics,
    interpolated_ap,
    moment_metrics,
    saliency_ap,
    saliency_matrix,
    temporal_iou,
    top1_iou,
)


def test_temporal_iou() -> None:
    ious = temporal_iou(np.array([[0, 10], [20, 30]]), np.array([[5, 15], [0, 10], [40, 50]]))
    assert ious == pytest.approx(np.array([[5 / 15, 1.0, 0.0], [0.0, 0.0, 0.0]]))
    assert temporal_iou([[3, 3]], [[3, 3]])[0, 0] == 0.0  # empty union, no division by zero


def test_top1_is_the_first_listed_window_against_its_closest_gt() -> None:
    # the official script takes the first listed window, scores or not (submissions list best first)
    assert top1_iou([[0, 8, 0.9], [50, 60, 0.2]], [[100, 110], [0, 10]]) == pytest.approx(0.8)
    assert top1_iou([[50, 60, 0.2], [0, 8, 0.9]], [[100, 110], [0, 10]]) == 0.0
    assert top1_iou([], [[0, 10]]) == 0.0


def test_interpolated_ap_activitynet() -> None:
    # precision 1, 0.5, 2/3 at recall 0.5, 0.5, 1 -> 0.5 * 1 + 0.5 * 2/3
    assert interpolated_ap(np.array([1, 0.5, 2 / 3]), np.array([0.5, 0.5, 1.0])) == pytest.approx(5 / 6)


def test_detection_ap_matches_each_gt_once() -> None:
    gts = [[0, 10], [20, 30]]
    # 0.9: TP (gt0); 0.8: IoU 0.9 with gt0, already taken -> FP; 0.7: TP (gt1)
    preds = [[20, 30, 0.7], [0, 10, 0.9], [1, 10, 0.8]]
    ap = detection_ap(preds, gts, thresholds=[0.5])
    assert ap[0] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)


def test_detection_ap_depends_on_the_threshold() -> None:
    ap = detection_ap([[0, 8, 1.0]], [[0, 10]], thresholds=[0.5, 0.8, 0.85])
    assert ap.tolist() == [1.0, 1.0, 0.0]
    assert detection_ap([], [[0, 10]], thresholds=[0.5]).tolist() == [0.0]


def test_moment_metrics_two_queries() -> None:
    preds = {"a": [[0, 10, 0.9]], "b": [[0, 6.2, 0.8], [40, 50, 0.1]]}
    truth = {"a": [[0, 10]], "b": [[0, 10]]}
    m = moment_metrics(preds, truth)
    assert m["MR-R1@0.5"] == pytest.approx(100.0)
    assert m["MR-R1@0.7"] == pytest.approx(50.0)  # b's top-1 IoU is 0.62
    assert m["MR-mAP@0.5"] == pytest.approx(100.0)
    assert m["MR-mAP@0.75"] == pytest.approx(50.0)
    # a: AP 1 at all ten thresholds; b: AP 1 at 0.5, 0.55, 0.6 only -> (1 + 0.3) / 2
    assert m["MR-mAP"] == pytest.approx(65.0)


def test_moment_metrics_keeps_ten_windows_and_scores_missing_queries_zero() -> None:
    wrong = [[100 + i, 101 + i, 1.0 - i / 100] for i in range(10)]
    preds = {"a": [*wrong, [0, 10, 0.001]]}  # the right window is 11th
    m = moment_metrics(preds, {"a": [[0, 10]], "b": [[0, 5]]})
    assert m["MR-mAP"] == 0.0 and m["MR-R1@0.5"] == 0.0
    assert moment_metrics({}, {"a": []}) == {}  # no labelled query


def test_saliency_ap_hand_cases() -> None:
    # positives at ranks 1 and 3: precision 1 and 2/3
    assert saliency_ap([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1]) == pytest.approx(5 / 6)
    # interpolation: precision at recall 1/2 is the best at any higher recall
    assert saliency_ap([0, 1, 1], [0.9, 0.8, 0.7]) == pytest.approx(2 / 3)
    # a tie is one threshold: one point (precision 1/2, recall 1)
    assert saliency_ap([1, 0], [0.5, 0.5]) == pytest.approx(0.5)
    assert saliency_ap([0, 0, 0], [0.1, 0.2, 0.3]) == 0.0
    assert saliency_ap([1, 1], [0.1, 0.2]) == 1.0


def test_saliency_matrix_fills_relevant_clips() -> None:
    full = saliency_matrix(4, [1, 3, 9], [[4, 3, 2], [1, 1, 1], [4, 4, 4]])  # clip 9 is outside
    assert full.tolist() == [[0, 0, 0], [4, 3, 2], [0, 0, 0], [1, 1, 1]]


def test_highlight_metrics_very_good() -> None:
    truth = {
        "q1": saliency_matrix(4, [0, 2], [[4, 4, 2], [4, 1, 4]]),
        "q2": saliency_matrix(3, [1], [[4, 4, 4]]),
    }
    preds = {"q1": [0.9, 0.1, 0.8, 0.2], "q2": [0.9, 0.5, 0.1]}
    m = highlight_metrics(preds, truth)
    # q1 annotators: AP 1 (clips 0, 2), 1 (clip 0), 1/2 (clip 2 ranked second); q2: 1/2 each
    assert m["HL-mAP"] == pytest.approx(100 * (1 + 1 + 0.5 + 0.5 * 3) / 6)
    # q1's top clip 0 is VeryGood for annotators 1 and 2; q2's top clip 0 is not
    assert m["HL-HIT@1"] == pytest.approx(50.0)
    # at "Fair" (>= 2) q1's annotator 2 also counts clip 0
    assert m["HL-mAP@2"] == pytest.approx(100 * (3 + 1.5) / 6)
    assert (m["HL-mAP@4"], m["HL-HIT@1@4"]) == (m["HL-mAP"], m["HL-HIT@1"])


def test_highlight_metrics_pads_short_predictions() -> None:
    truth = {"q": saliency_matrix(4, [3], [[4, 4, 4]])}
    m = highlight_metrics({"q": [0.1, 0.2]}, truth)  # clips 2 and 3 missing: ranked last
    assert m["HL-HIT@1"] == 0.0
    assert m["HL-mAP"] == pytest.approx(100 * 0.25)  # found last: precision 1/4 (clips 2, 3 tie)


def test_charades_metrics() -> None:
    truth = {"a": [[0, 10]], "b": [[0, 10]], "c": [[0, 10]]}
    preds = {"a": [[0, 10, 1.0]], "b": [[0, 4, 1.0], [0, 10, 0.5]], "c": [[0, 6, 1.0]]}
    m = charades_metrics(preds, truth)
    assert m == pytest.approx({"R1@0.3": 100.0, "R1@0.5": 200 / 3, "R1@0.7": 100 / 3, "mIoU": 200 / 3})
