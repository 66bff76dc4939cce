"""Grounding data: QVHighlights / Charades-STA loaders, clip targets, baselines, the metrics table."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from vidagent.core.errors import VideoNotFound
from vidagent.evals.grounding import format_metrics, random_baseline, random_predictions, score
from vidagent.evals.grounding_metrics import moment_metrics
from vidagent.grounding.data import (
    GroundingSample,
    clip_targets,
    find_video,
    load_charades,
    load_qvhighlights,
    load_samples,
)
from vidagent.grounding.synthetic import QUERIES, SynthSpec, make_synthetic_set, plan_video

QVH_ROW = {
    "qid": 2579,
    "query": "A girl and her mother cooked while talking with each other on facetime.",
    "duration": 150,
    "vid": "NUsG9BgSes0_210.0_360.0",
    "relevant_windows": [[0, 10], [14, 18]],
    "relevant_clip_ids": [0, 1, 2, 3, 4, 7, 8],
    "saliency_scores": [[3, 4, 4]] * 5 + [[1, 2, 4], [4, 4, 4]],
}


def test_load_qvhighlights(tmp_path: Path) -> None:
    path = tmp_path / "val.jsonl"
    unlabeled = {"qid": 7, "query": "q", "duration": 150, "vid": "v"}  # the test split has no labels
    path.write_text(json.dumps(QVH_ROW) + "\n\n" + json.dumps(unlabeled) + "\n")
    first, second = load_qvhighlights(path)
    assert first.qid == "2579" and first.vid == "NUsG9BgSes0_210.0_360.0" and first.duration == 150.0
    assert first.windows == [(0.0, 10.0), (14.0, 18.0)] and first.has_saliency
    assert second.windows == [] and not second.has_saliency
    path.write_text('{"qid": 1}\n')
    with pytest.raises(Exception, match=r"val.jsonl:1: not a QVHighlights row"):
        load_qvhighlights(path)


def test_load_charades(tmp_path: Path) -> None:
    path = tmp_path / "charades_sta_test.txt"
    path.write_text(
        "3MSZA 24.3 30.4##person turn a light on.\nAO8RW 0.0 6.9##a person is putting a book on a shelf.\n"
    )
    first, second = load_charades(path)
    assert (first.vid, first.windows, first.query) == ("3MSZA", [(24.3, 30.4)], "person turn a light on.")
    assert second.qid == "1" and second.duration == 0.0
    path.write_text("nonsense\n")
    with pytest.raises(Exception, match="expected 'vid start end##query'"):
        load_samples(path, "charades")
    with pytest.raises(Exception, match="unknown format"):
        load_samples(path, "activitynet")


def test_find_video(tmp_path: Path) -> None:
    (tmp_path / "abc.mkv").write_bytes(b"")
    assert find_video(tmp_path, "abc") == tmp_path / "abc.mkv"
    with pytest.raises(VideoNotFound):
        find_video(tmp_path, "missing")


def test_clip_targets_from_qvhighlights_scores() -> None:
    sample = load_qvhighlights_row(QVH_ROW)
    windows, saliency = clip_targets(sample, 75, 2.0)
    assert windows.tolist() == [[0, 5], [7, 9]]
    assert saliency[:5] == pytest.approx([11 / 12] * 5)
    assert saliency[7] == pytest.approx(7 / 12) and saliency[8] == 1.0 and saliency[5] == 0.0
    # 1 s clips read the 2 s clip under their centre
    _, fine = clip_targets(sample, 150, 1.0)
    assert fine[14] == pytest.approx(7 / 12) and fine[15] == pytest.approx(7 / 12) and fine[16] == 1.0


def test_clip_targets_from_windows_only() -> None:
    sample = GroundingSample("0", "q", "v", 10.0, [(2.0, 4.4), (7.2, 7.4)])
    windows, saliency = clip_targets(sample, 10, 1.0)
    assert windows.ravel().tolist() == pytest.approx([2.0, 4.4, 7.2, 7.4])
    # centres 2.5, 3.5 are inside the first; the second is too short for a centre: its clip 7 counts
    assert np.flatnonzero(saliency).tolist() == [2, 3, 7]


def load_qvhighlights_row(row: dict) -> GroundingSample:
    from vidagent.grounding.data import GroundingSample as Sample

    return Sample(
        str(row["qid"]),
        row["query"],
        row["vid"],
        float(row["duration"]),
        [tuple(w) for w in row["relevant_windows"]],
        row["relevant_clip_ids"],
        row["saliency_scores"],
    )


def test_perfect_predictions_score_100_and_random_ones_do_not() -> None:
    samples = [load_qvhighlights_row(QVH_ROW)]
    saliency = np.zeros(75)
    saliency[8], saliency[:5], saliency[7] = 3.0, 2.0, 1.0  # VeryGood for 3, 2 and 1 annotators
    perfect = [
        {
            "qid": "2579",
            "pred_relevant_windows": [[0, 10, 0.9], [14, 18, 0.8]],
            "pred_saliency_scores": saliency.tolist(),
        }
    ]
    metrics = score(perfect, samples, "qvhighlights")
    assert all(metrics[k] == pytest.approx(100.0) for k in ("MR-R1@0.5", "MR-mAP", "HL-HIT@1", "HL-mAP"))
    chance = random_baseline(samples, "qvhighlights", seeds=5)
    assert chance["MR-mAP"] < 50
    assert random_predictions(samples, seed=1) == random_predictions(samples, seed=1)
    prior = random_predictions(samples, seed=0, lengths=[4.0])
    assert all(e - s == pytest.approx(4.0) for s, e, _ in prior[0]["pred_relevant_windows"])


def test_charades_scoring() -> None:
    samples = [GroundingSample("0", "q", "v", 30.0, [(5.0, 10.0)])]
    metrics = score([{"qid": "0", "pred_relevant_windows": [[5.0, 10.0, 1.0]]}], samples, "charades")
    assert metrics == {"R1@0.3": 100.0, "R1@0.5": 100.0, "R1@0.7": 100.0, "mIoU": 100.0}


def test_format_metrics() -> None:
    table = format_metrics({"trained": {"A": 1.0, "B": 2.5}, "random": {"A": 0.25}})
    assert table.splitlines() == [
        "| run | A | B |",
        "| --- | ---: | ---: |",
        "| trained | 1.00 | 2.50 |",
        "| random | 0.25 |  |",
    ]


def test_synthetic_set_is_valid_qvhighlights(tmp_path: Path) -> None:
    spec = SynthSpec(train_videos=2, val_videos=1, seconds=16.0, fps=2.0, size=32, events=2, max_clips=3)
    data = make_synthetic_set(tmp_path, spec)
    rows = load_qvhighlights(data.train) + load_qvhighlights(data.val)
    assert {r.vid for r in rows} == {"synth_train_0000", "synth_train_0001", "synth_val_0000"}
    assert len({r.qid for r in rows}) == len(rows) and all(r.query in QUERIES for r in rows)
    for r in rows:
        assert r.windows and all(0 <= s < e <= 16.0 and s % 2 == 0 and e % 2 == 0 for s, e in r.windows)
        assert len(r.relevant_clip_ids) == len(r.saliency_scores) == sum((e - s) / 2 for s, e in r.windows)
        assert (data.videos / f"{r.vid}.mp4").is_file()
    stamp = (data.videos / "synth_val_0000.mp4").stat().st_mtime_ns
    make_synthetic_set(tmp_path, spec)  # same spec: reused, not rewritten
    assert (data.videos / "synth_val_0000.mp4").stat().st_mtime_ns == stamp
    # events never overlap and a query's windows are its shape's spans
    events = plan_video(np.random.default_rng(3), SynthSpec())
    spans = sorted((e.start, e.end) for e in events)
    assert all(a[1] < b[0] for a, b in itertools.pairwise(spans))  # a gap between shapes
    assert moment_metrics({"x": [[0, 1, 1.0]]}, {"x": [[0, 1]]})["MR-R1@0.7"] == 100.0
