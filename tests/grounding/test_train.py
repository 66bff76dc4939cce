"""The grounding head learns: synthetic shapes videos, the TINY random-weight CLIP, a few CPU seconds.

Held-out = unseen videos with the same 12-query vocabulary ("a red circle", ...): with a random
text tower a query's features are arbitrary but fixed per string, so the head can learn the
mapping for this vocabulary, not language. The full-size run is
``vidagent train-ground --synthetic`` (its figures are in the report of issue 6).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from vidagent.evals.grounding import evaluate_checkpoint, run_synthetic, score
from vidagent.grounding.head import GroundHead
from vidagent.grounding.train import TrainSettings, train
from vidagent.models.tiny import ensure_tiny


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, Any]]]:
    root = tmp_path_factory.mktemp("ground")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VIDAGENT_CACHE", str(root / "cache"))
        ensure_tiny("clip")
        yield root, run_synthetic(root / "synthetic", quick=True, progress=False)


def test_trained_head_beats_random_spans_on_unseen_videos(report: tuple[Path, dict[str, Any]]) -> None:
    _, result = report
    trained = result["trained"]  # last epoch: nothing selected on the held-out videos
    uniform, prior = result["random_uniform"], result["random_prior"]
    assert result["val_queries"] >= 20
    assert trained["MR-R1@0.5"] >= prior["MR-R1@0.5"] + 25, (trained, prior)
    assert trained["MR-R1@0.5"] >= uniform["MR-R1@0.5"] + 30, (trained, uniform)
    assert trained["MR-mAP"] >= prior["MR-mAP"] + 20
    assert trained["HL-mAP"] >= prior["HL-mAP"] + 20
    assert result["parameters"] < 3_000_000


def test_run_folder_checkpoints_and_log(report: tuple[Path, dict[str, Any]]) -> None:
    root, result = report
    run = root / "synthetic" / "run"
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == list(range(1, len(lines) + 1))
    assert {"train", "val", "lr", "seconds"} <= set(lines[-1]) and "MR-R1@0.5" in lines[-1]["val"]
    assert lines[-1]["train"]["total"] < lines[0]["train"]["total"]
    for name in ("best", "last"):
        assert (run / name / "config.json").is_file() and (run / name / "model.safetensors").is_file()
    assert (run / "last" / "train_state").is_dir()
    assert result["checkpoint"] == str(run / "best")


def test_eval_of_the_checkpoint_reproduces_the_training_figures(
    report: tuple[Path, dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root, result = report
    monkeypatch.setenv("VIDAGENT_CACHE", str(root / "cache"))
    data = root / "synthetic" / "data"
    evaluated = evaluate_checkpoint(
        root / "synthetic" / "run" / "last",
        data / "val.jsonl",
        data / "videos",
        profile="tiny",
        cache=root / "synthetic" / "features",
        progress=False,
    )
    assert evaluated.metrics == pytest.approx(result["trained"], abs=0.01)
    assert len(evaluated.predictions) == result["val_queries"]


def test_resume_continues_from_the_last_checkpoint(
    report: tuple[Path, dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    root, _ = report
    monkeypatch.setenv("VIDAGENT_CACHE", str(root / "cache"))
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    run, data = root / "synthetic" / "run", root / "synthetic" / "data"
    state = json.loads((run / "last" / "trainer_state.json").read_text())
    weights = GroundHead.from_pretrained(run / "last").state_dict()
    try:
        result = train(
            TrainSettings(
                train=data.joinpath("train.jsonl"),
                val=data / "val.jsonl",
                videos=data / "videos",
                out=tmp_path,
                epochs=state["epoch"] + 1,
                batch_size=16,
                profile="tiny",
                cpu=True,
                cache=root / "synthetic" / "features",
                resume=run / "last",
                progress=False,
            ),
            score=score,
        )
    finally:
        torch.set_num_threads(before)
    assert [h["epoch"] for h in result.history] == [state["epoch"] + 1]
    assert result.history[0]["step"] > state["step"]
    resumed = GroundHead.from_pretrained(tmp_path / "last")
    assert resumed.config.hidden == 64  # the checkpoint's config, not the defaults
    assert any(not torch.equal(weights[k], v) for k, v in resumed.state_dict().items())
    assert json.loads((tmp_path / "last" / "trainer_state.json").read_text())["epoch"] == state["epoch"] + 1
