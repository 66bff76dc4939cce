"""QVHighlights scores equal moment_detr's ``standalone_eval/eval.py`` to 2 decimals on every
fixture (tests/evals/fixtures/conformance, copied from the project's conformance set): well-formed
predictions, 15 windows not sorted by score, saliency lists of the wrong length, tied saliency."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vidagent.evals.grounding import score
from vidagent.grounding.data import load_qvhighlights

FIXTURES = Path(__file__).parent / "fixtures" / "conformance" / "qvhighlights"


@pytest.mark.parametrize("name", ["pred", "pred_unsorted15", "pred_sal_len", "pred_sal_ties"])
def test_scores_equal_the_official_script(name: str) -> None:
    samples = load_qvhighlights(FIXTURES / "gt.jsonl")
    predictions = [json.loads(line) for line in (FIXTURES / f"{name}.jsonl").read_text().splitlines() if line]
    official = json.loads((FIXTURES / f"{name}.official.json").read_text())
    ours = score(predictions, samples, "qvhighlights")
    assert {key: round(ours[key], 2) for key in official} == official
