"""NExT-QA open-ended WUPS equals NExT-OE's ``metrics.py`` (nltk 3.3, WordNet 3.0, its own
stopwords.txt, which is vidagent's default for nextqa-oe) on the 50 pairs of the conformance
fixture, and a run's WUPS averages over every question (an error row scores 0), as the
official script does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vidagent.evals.runner import summarise
from vidagent.evals.tasks import load_stopwords, load_wordnet, remove_stop, wups

PAIRS = json.loads(
    (Path(__file__).parent / "fixtures" / "conformance" / "nextqa_oe" / "wups_pairs.json").read_text()
)["rows"]


@pytest.fixture(scope="module")
def wordnet():
    return load_wordnet()


def test_the_default_stop_words_are_next_oe_s_and_tokens_match(wordnet) -> None:
    stop = load_stopwords(None)
    official = Path(__file__).parent / "fixtures" / "conformance" / "nextqa_oe" / "stopwords.txt"
    assert stop == frozenset(w.strip() for w in official.read_text().splitlines() if w.strip())
    tokens = [
        (remove_stop(r["prediction_raw"], stop, wordnet), remove_stop(r["answer_raw"], stop, wordnet))
        for r in PAIRS
    ]
    assert tokens == [(r["prediction_tokens"], r["answer_tokens"]) for r in PAIRS]


@pytest.mark.parametrize(("alpha", "key"), [(0.0, "wups0"), (0.9, "wups0.9")])
def test_wups_equals_the_official_script_on_every_pair(wordnet, alpha: float, key: str) -> None:
    ours = [wups(r["prediction_tokens"], r["answer_tokens"], alpha, wordnet) for r in PAIRS]
    assert [round(v, 4) for v in ours] == [round(r[key], 4) for r in PAIRS]
    assert round(100 * sum(ours) / len(ours), 2) == round(100 * sum(r[key] for r in PAIRS) / len(PAIRS), 2)
    assert wups("in box", "on box", 0.0, wordnet) == pytest.approx(
        0.133333, abs=1e-6
    )  # not 1: "in" is no stop word


def test_a_run_averages_wups_over_every_question() -> None:
    rows = [
        {"id": "a", "category": "c", "correct": True, "scores": {"wups0": 1.0, "wups9": 1.0}},
        {"id": "b", "category": "c", "error": "the model failed"},
    ]
    assert summarise(rows)["metrics"] == {"wups0": 50.0, "wups9": 50.0}


def test_eval_takes_another_stop_word_list(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from vidagent.app.cli import app

    data = Path(__file__).parent / "fixtures" / "nextqa_oe"
    missing = CliRunner().invoke(
        app, ["eval", "nextqa-oe", "--data", str(data), "--stopwords", str(tmp_path / "x.txt")]
    )
    assert missing.exit_code == 1 and "no such file" in str(missing.exception)
