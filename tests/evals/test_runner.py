"""The eval runner: scoring, run files, resume, reports, and the three methods on tiny models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.synth import write_video
from vidagent.app.cli import app
from vidagent.evals.runner import (
    Method,
    Prediction,
    RunError,
    Runner,
    RunSettings,
    read_run,
    report,
    run_task,
    summarise,
    to_markdown,
)
from vidagent.evals.tasks import Sample, Task, exact_match, load_task


def coloured(i: int, size: tuple[int, int] = (64, 48)) -> np.ndarray:
    frame = np.zeros((size[1], size[0], 3), np.uint8)
    frame[..., i % 3] = 200
    return frame


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(
        tmp_path_factory.mktemp("eval") / "clip.mp4", fps=5, seconds=3, size=(64, 48), frames_fn=coloured
    )


def mc_task(clip: Path, n: int = 4) -> Task:
    categories = ["counting", "colour"]
    return Task(
        "toy",
        [
            Sample(
                id=f"q{i}",
                video=clip,
                question=f"question {i}?",
                options=["red", "green", "blue"],
                answer=i % 3,
                category=categories[i % 2],
                sub={"length": "short"},
            )
            for i in range(n)
        ],
    )


class Fixed(Method):
    """Answers from a table: sample id -> option index (None: a reply that names no option)."""

    name = "fixed"

    def __init__(self, choices: dict[str, int | None]) -> None:
        self.choices = choices
        self.calls: list[str] = []

    def models(self) -> dict[str, str]:
        return {"vlm": "fixed-table"}

    def answer(self, sample: Sample, video: Path) -> Prediction:
        self.calls.append(sample.id)
        choice = self.choices[sample.id]
        return Prediction(
            text="?" if choice is None else "ABC"[choice],
            choice=choice,
            parse_failed=choice is None,
            tool_calls=1,
            tokens=10,
            trajectory=[{"type": "tool_call", "tool": "retrieve"}, {"type": "tool_result"}],
        )


def test_multiple_choice_scoring_and_summary(clip: Path, tmp_path: Path) -> None:
    task = mc_task(clip)  # answers 0, 1, 2, 0; categories counting, colour, counting, colour
    method = Fixed({"q0": 0, "q1": 2, "q2": 2, "q3": None})
    rows = Runner(task, RunSettings(task="toy", method="fixed"), method, tmp_path / "run.jsonl").run()
    assert [r["correct"] for r in rows] == [True, False, True, False]
    assert rows[3]["parse_failed"] and rows[3]["prediction"] is None  # never a random pick
    summary = summarise(rows)
    assert summary["accuracy"] == 50.0
    assert summary["categories"] == {
        "colour": {"n": 2, "accuracy": 0.0},
        "counting": {"n": 2, "accuracy": 100.0},
    }
    assert summary["sub_categories"] == {"length=short": {"n": 4, "accuracy": 50.0}}
    assert summary["parse_failures"] == 1 and summary["errors"] == 0
    assert summary["tool_usage"] == {"retrieve": 4} and summary["mean_tool_calls"] == 1.0


def test_run_file_is_a_header_then_one_line_per_sample(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "run.jsonl"
    Runner(
        mc_task(clip),
        RunSettings(task="toy", method="fixed", profile="tiny"),
        Fixed(dict.fromkeys(["q0", "q1", "q2", "q3"], 1)),
        out,
    ).run()
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert (
        lines[0]["type"] == "run"
        and lines[0]["models"] == {"vlm": "fixed-table"}
        and lines[0]["profile"] == "tiny"
    )
    assert [line["id"] for line in lines[1:]] == ["q0", "q1", "q2", "q3"]
    for key in (
        "question",
        "options",
        "prediction",
        "correct",
        "category",
        "latency",
        "tool_calls",
        "tokens",
        "trajectory",
    ):
        assert key in lines[1]


def test_resume_answers_only_what_is_missing_and_gives_identical_results(clip: Path, tmp_path: Path) -> None:
    choices = {"q0": 0, "q1": 1, "q2": 0, "q3": 0}
    settings = RunSettings(task="toy", method="fixed")
    whole = Runner(mc_task(clip), settings, Fixed(choices), tmp_path / "whole.jsonl").run()

    out = tmp_path / "cut.jsonl"
    Runner(mc_task(clip), settings, Fixed(choices), out).run()
    kept = out.read_text().splitlines()[:3]  # header + q0 + q1, then a line torn by a kill
    out.write_text("\n".join(kept) + '\n{"type": "sample", "id": "q2", "quest')
    again = Fixed(choices)
    resumed = Runner(mc_task(clip), settings, again, out).run(resume=True)
    assert again.calls == ["q2", "q3"]

    def strip(rows: list[dict]) -> list[dict]:
        return [{k: v for k, v in r.items() if k != "latency"} for r in rows]

    assert strip(resumed) == strip(whole)
    assert strip(sorted(read_run(out)[1], key=lambda r: r["id"])) == strip(whole)


def test_resume_refuses_other_settings_and_runs_never_overwrite(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "run.jsonl"
    Runner(
        mc_task(clip, 2), RunSettings(task="toy", method="fixed", frames=8), Fixed({"q0": 0, "q1": 0}), out
    ).run()
    before = out.read_text()
    with pytest.raises(RunError, match="different settings \\(frames\\)"):
        Runner(mc_task(clip, 2), RunSettings(task="toy", method="fixed", frames=16), Fixed({}), out).run(
            resume=True
        )
    with pytest.raises(RunError, match="exists: pass --resume"):
        Runner(mc_task(clip, 2), RunSettings(task="toy", method="fixed"), Fixed({}), out).run()
    assert out.read_text() == before


def test_a_broken_video_is_an_error_row_not_a_crash(clip: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all")

    class Opens(Fixed):
        def answer(self, sample: Sample, video: Path) -> Prediction:
            from vidagent.media.video import Video

            Video.open(video).close()
            return super().answer(sample, video)

    task = Task("toy", [Sample("a", broken, "q?", ["x", "y"], 0), Sample("b", clip, "q?", ["x", "y"], 1)])
    rows = Runner(
        task, RunSettings(task="toy", method="fixed"), Opens({"a": 0, "b": 1}), tmp_path / "r.jsonl"
    ).run()
    assert "error" in rows[0] and rows[0]["correct"] is False and "broken.mp4" in rows[0]["error"]
    assert rows[1]["correct"] is True
    assert summarise(rows)["errors"] == 1


def test_open_ended_scores_and_hidden_answers(clip: Path, tmp_path: Path) -> None:
    def score(sample: Sample, prediction: str) -> dict[str, float]:
        return {"exact": exact_match(prediction, [str(sample.answer)])}

    class Says(Method):
        def models(self) -> dict[str, str]:
            return {}

        def answer(self, sample: Sample, video: Path) -> Prediction:
            return Prediction(text={"a": "The Dog.", "b": "a cat", "c": "anything"}[sample.id])

    task = Task(
        "oe",
        [
            Sample("a", clip, "what?", answer="dog"),
            Sample("b", clip, "what?", answer="bird"),
            Sample("c", clip, "what?", answer=None),
        ],
        open_ended=True,
        score_text=score,
    )
    rows = Runner(task, RunSettings(task="oe", method="says"), Says(), tmp_path / "r.jsonl").run()
    assert [r["correct"] for r in rows] == [True, False, None]
    assert rows[0]["scores"] == {"exact": 1.0} and rows[0]["prediction"] == "The Dog."
    summary = summarise(rows)
    assert summary["scored"] == 2 and summary["accuracy"] == 50.0 and summary["metrics"] == {"exact": 50.0}


def test_report_compares_two_runs(clip: Path, tmp_path: Path) -> None:
    settings = RunSettings(task="toy", method="fixed")
    Runner(mc_task(clip), settings, Fixed({"q0": 0, "q1": 0, "q2": 0, "q3": 0}), tmp_path / "a.jsonl").run()
    Runner(mc_task(clip), settings, Fixed({"q0": 0, "q1": 1, "q2": 2, "q3": 1}), tmp_path / "b.jsonl").run()
    result = report([tmp_path / "a.jsonl", tmp_path / "b.jsonl"])
    assert [r["summary"]["accuracy"] for r in result["runs"]] == [50.0, 75.0]
    assert result["difference"]["accuracy"] == 25.0 and result["difference"]["common_samples"] == 4
    assert result["difference"]["categories"] == {"colour": 0.0, "counting": 50.0}  # counting 50 -> 100
    text = to_markdown(result)
    assert "| accuracy % | 50.00 | 75.00 | 25.00 |" in text and "difference" in text
    with pytest.raises(RunError, match="no such run file"):
        report([tmp_path / "missing.jsonl"])


# --- the real methods on tiny models (the plumbing, not the accuracy) ----------------------------------
@pytest.mark.parametrize("method", ["agent", "vlm-uniform", "blind"])
def test_each_method_runs_on_the_tiny_profile(method: str, clip: Path, tmp_path: Path, tiny_hub) -> None:
    settings = RunSettings(task="toy", method=method, profile="tiny", max_steps=2, frames=2)
    rows = run_task(mc_task(clip, 2), settings, tmp_path / "run.jsonl", store=tmp_path / "s.sqlite")
    assert len(rows) == 2 and all("error" not in r for r in rows), rows
    for row in rows:
        assert row["correct"] == (row["prediction"] == row["answer"])
        if method == "vlm-uniform":  # strict parsing: a reply naming no option is None and wrong
            assert row["prediction"] in (0, 1, 2) or (row["prediction"] is None and row["parse_failed"])
        else:  # option scoring always picks one
            assert row["prediction"] in (0, 1, 2)
    header = read_run(tmp_path / "run.jsonl")[0]
    assert header["method"] == method and header["prompts"]
    if method == "agent":
        assert rows[0]["trajectory"] and rows[0]["tool_calls"] >= 1


@pytest.mark.parametrize("method", ["agent", "blind"])
def test_a_planner_that_cannot_load_stops_the_run_before_the_first_sample(
    method: str, clip: Path, tmp_path: Path
) -> None:
    from vidagent.core.errors import ModelNotAvailable

    profile = tmp_path / "broken.yaml"
    profile.write_text(f"name: broken\nroles:\n  planner: {{id: {tmp_path / 'no-such-checkpoint'}}}\n")
    settings = RunSettings(task="toy", method=method, profile=str(profile))
    with pytest.raises(ModelNotAvailable, match="no-such-checkpoint"):
        run_task(mc_task(clip, 2), settings, tmp_path / "run.jsonl", store=tmp_path / "s.sqlite")
    assert not (tmp_path / "run.jsonl").exists()  # not a file of error lines


def test_cli_eval_jsonl_then_report(clip: Path, tmp_path: Path, tiny_hub) -> None:
    data = tmp_path / "mine.jsonl"
    data.write_text(
        "\n".join(
            json.dumps(
                {
                    "id": f"s{i}",
                    "video": str(clip),
                    "question": "Which colour?",
                    "options": ["red", "green", "blue"],
                    "answer": "red",
                    "category": "colour",
                }
            )
            for i in range(2)
        )
        + "\n"
    )
    assert load_task("jsonl", data).samples[0].answer == 0
    out = tmp_path / "run.jsonl"
    result = CliRunner().invoke(
        app,
        ["eval", "jsonl", "--data", str(data), "--method", "blind", "--profile", "tiny", "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    printed = result.stdout
    assert "# jsonl" in printed and "accuracy %" in printed and "· colour %" in printed
    assert len(read_run(out)[1]) == 2
    assert (
        CliRunner()
        .invoke(app, ["eval", "report", str(out), str(out), "--json", str(tmp_path / "r.json")])
        .exit_code
        == 0
    )
    assert json.loads((tmp_path / "r.json").read_text())["difference"]["accuracy"] == 0.0


def test_cli_eval_bad_input_is_a_clear_error(tmp_path: Path) -> None:
    from vidagent.app.cli import main

    no_data = CliRunner().invoke(app, ["eval", "nextqa"])
    assert no_data.exit_code == 2 and "--data is required" in no_data.output
    bad_method = CliRunner().invoke(app, ["eval", "jsonl", "--data", str(tmp_path), "--method", "guess"])
    assert bad_method.exit_code == 2 and "--method must be one of" in bad_method.output
    no_report = CliRunner().invoke(app, ["eval", "report"])
    assert no_report.exit_code == 2
    with pytest.raises(SystemExit) as exited:
        main(["eval", "jsonl", "--data", str(tmp_path / "missing.jsonl"), "--profile", "tiny"])
    assert exited.value.code == 1


def test_cli_synthetic_benchmark_end_to_end_on_the_tiny_profile(tmp_path: Path, tiny_hub) -> None:
    out = tmp_path / "runs" / "synthetic-agent.jsonl"
    result = CliRunner().invoke(
        app,
        [
            "eval",
            "synthetic",
            "--profile",
            "tiny",
            "--per-kind",
            "1",
            "--max-steps",
            "2",
            "--out",
            str(out),
            "--store",
            str(tmp_path / "s.sqlite"),
        ],
    )
    assert result.exit_code == 0, result.output
    header, rows = read_run(out)
    kinds = {"counting", "colour", "order", "when", "spatial", "reading"}
    assert header["task"] == "synthetic" and {r["category"] for r in rows} == kinds
    assert all("error" not in r and r["prediction"] is not None and r["trajectory"] for r in rows)
    assert (tmp_path / "runs" / "synthetic-data" / "synthetic.jsonl").exists()
    for kind in kinds:
        assert f"· {kind} %" in result.stdout
    resumed = CliRunner().invoke(
        app,
        [
            "eval",
            "synthetic",
            "--profile",
            "tiny",
            "--per-kind",
            "1",
            "--max-steps",
            "2",
            "--out",
            str(out),
            "--store",
            str(tmp_path / "s.sqlite"),
            "--resume",
        ],
    )
    assert resumed.exit_code == 0 and read_run(out)[1] == rows  # nothing redone
