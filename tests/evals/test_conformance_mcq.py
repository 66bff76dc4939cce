"""Video-MME and MVBench: the score under the benchmark's name (``acc_official``) is what the official
script gives (Video-MME's ``extract_characters_regex``, accuracy over the replies it extracted a
letter from; MVBench's ``check_ans`` on ``"(" + reply``), on the 40 replies of the conformance
fixtures; ``acc_strict`` (vidagent's parser, a reply without a clear letter is wrong) stands beside
it in the run summary and in ``vidagent eval report``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vidagent.core.options import LETTERS
from vidagent.evals.runner import summarise, to_markdown
from vidagent.evals.tasks import mvbench_official_correct, parse_letter, videomme_official_letter

FIXTURES = Path(__file__).parent / "fixtures" / "conformance"
VIDEOMME = json.loads((FIXTURES / "videomme_replies.json").read_text())["rows"]
MVBENCH = json.loads((FIXTURES / "mvbench_replies.json").read_text())["rows"]
OPTIONS = ["dog", "cat", "bird", "fish"]


def rows_of(task: str, replies: list[dict]) -> list[dict]:
    """Run-file rows as the runner writes them for text replies: the strict parse is the prediction."""
    out = []
    for i, r in enumerate(replies):
        choice = parse_letter(r["reply"], len(OPTIONS))
        answer = LETTERS.index(r["truth"])
        out.append(
            {
                "type": "sample",
                "id": str(i),
                "task": task,
                "category": "c",
                "options": OPTIONS,
                "answer": answer,
                "prediction": choice,
                "prediction_text": r["reply"],
                "parse_failed": choice is None,
                "correct": choice == answer,
            }
        )
    return out


def test_videomme_extractor_equals_the_official_one_on_every_reply() -> None:
    assert [videomme_official_letter(r["reply"]) for r in VIDEOMME] == [r["official"] for r in VIDEOMME]


def test_mvbench_check_ans_equals_the_official_one_on_every_reply() -> None:
    assert [
        mvbench_official_correct(r["reply"], LETTERS.index(r["truth"]), r["options"]) for r in MVBENCH
    ] == [r["official_correct"] for r in MVBENCH]


@pytest.mark.parametrize(
    "reply",
    [
        "**B**",
        "[B]",
        "It is B",
        "B is correct",
        "I think B because it barks",
        "The answer is (B).",
        "B - cat",
        "Neither A nor D; it's B.",
    ],
)
def test_the_strict_parser_finds_the_letter(reply: str) -> None:
    assert parse_letter(reply, 4) == 1


@pytest.mark.parametrize(
    "reply",
    [
        "Based on the video, the answer is unclear.",
        "A cat is sitting on the sofa.",
        "b",
        "A and B",
        "E",
        "I am not sure.",
    ],
)
def test_the_strict_parser_never_guesses(reply: str) -> None:
    assert parse_letter(reply, 4) is None


def test_run_summaries_and_the_report_show_official_and_strict_side_by_side() -> None:
    extracted = [r for r in VIDEOMME if r["official"]]
    videomme_official = round(100 * sum(r["official"] == r["truth"] for r in extracted) / len(extracted), 2)
    mvbench_official = round(100 * sum(r["official_correct"] for r in MVBENCH) / len(MVBENCH), 2)
    summaries = {}
    for task, replies, official in (
        ("videomme", VIDEOMME, videomme_official),
        ("mvbench", MVBENCH, mvbench_official),
    ):
        rows = rows_of(task, replies)
        summary = summarise(rows)
        strict = round(100 * sum(r["correct"] for r in rows) / len(rows), 2)
        assert summary["metrics"]["acc_official"] == official
        assert summary["metrics"]["acc_strict"] == strict == summary["accuracy"]
        summaries[task] = summary
    assert summaries["videomme"]["metrics"]["acc_official"] != summaries["videomme"]["metrics"]["acc_strict"]
    report = to_markdown(
        {
            "runs": [
                {
                    "file": "runs/videomme-agent.jsonl",
                    "summary": summaries["videomme"],
                    "run": {"task": "videomme", "method": "agent", "profile": "tiny", "models": {}},
                }
            ]
        }
    )
    assert f"| acc_official % | {videomme_official:.2f} |" in report
    assert f"| acc_strict % | {summaries['videomme']['accuracy']:.2f} |" in report
    assert "acc_official" not in summarise(rows_of("nextqa", VIDEOMME))["metrics"]  # other tasks: one score
