"""The routing eval: the planner's first step against accepted tools, arguments in the question's words."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.doubles import ScriptedChat
from vidagent.agent.graph import AgentGraph, PlannerSettings
from vidagent.agent.registry import ToolRegistry, discover_tools
from vidagent.app.cli import app
from vidagent.evals.routing import RoutingMethod, default_routing_file, load_routing
from vidagent.evals.runner import Runner, RunSettings, read_run, summarise
from vidagent.evals.tasks import TaskError

FIXTURE = Path(__file__).parent / "fixtures" / "routing" / "routing.jsonl"
TOOL_NAMES = set(discover_tools())


def call(tool: str, **args: object) -> dict:
    return {"calls": [{"tool": tool, "args": args}], "done": True}


@pytest.mark.parametrize("name", ["routing.jsonl", "routing-blind.jsonl", "routing-final.jsonl"])
def test_the_shipped_routing_sets(name: str) -> None:
    task = load_routing(default_routing_file().with_name(name))
    kinds = Counter(s.category for s in task.samples)
    assert all(set(s.references) <= TOOL_NAMES and s.references for s in task.samples)
    assert len({s.question.lower() for s in task.samples}) == len(task.samples)
    assert len(kinds) >= 7 and min(kinds.values()) >= 5
    if name == "routing.jsonl":  # the main set: 150+ questions, 8+ kinds, chats and multiple choice
        assert len(task.samples) >= 150 and len(kinds) >= 8
        assert any(s.history for s in task.samples) and any(s.options for s in task.samples)


def test_bad_routing_lines_name_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q?", "accepted": ["transcribe"]}\n{"question": "q2?", "accepted": []}\n')
    with pytest.raises(TaskError, match=r"bad.jsonl:2: .*non-empty list"):
        load_routing(bad)
    with pytest.raises(TaskError, match="missing"):
        load_routing(tmp_path / "missing.jsonl")


def test_a_run_scores_tool_and_words_per_kind(tmp_path: Path, tiny_hub) -> None:
    plans = [
        call("transcribe"),  # t1 right
        call("detect_track", prompt="bus."),  # t2 right (a lemma)
        call("ground", query="a dog running"),  # t3 invented words: retried ...
        call("ground", query="door open"),  # ... and right the second time
        call("detect_track", prompt="dog."),  # t4 wrong tool
        call("transcribe", span=[2.0, 3.0]),  # t5 right (a follow-up)
        call("look", question="What colour is the car?"),  # t6 right (multiple choice)
    ]
    llm = ScriptedChat(plans=plans)
    graph = AgentGraph(
        ctx=None,
        registry=ToolRegistry(discover_tools()),
        llm=llm,  # type: ignore[arg-type]
        planner=PlannerSettings(exemplars=0),
    )
    task = load_routing(FIXTURE)
    out = tmp_path / "run.jsonl"
    rows = Runner(
        task,
        RunSettings(task="routing", method="planner", profile="tiny"),
        RoutingMethod(graph, tiny_hub),
        out,
    ).run()
    header, lines = read_run(out)
    assert header["method"] == "planner" and header["exemplars"].startswith("exemplars@v")
    by_id = {r["id"]: r for r in rows}
    assert [by_id[i]["correct"] for i in ("t1", "t2", "t3", "t4", "t5", "t6")] == [
        True,
        True,
        True,
        False,
        True,
        True,
    ]
    assert by_id["t4"]["scores"] == {"tool": 0.0, "tool_any": 0.0, "words": 1.0, "routed": 0.0}
    assert by_id["t4"]["first_tools"] == ["detect_track"] and by_id["t2"]["prediction"].startswith("[{")
    assert "dog" in llm.prompts[3][-1]["content"]  # t3's retry told the planner which words were invented
    assert (
        "Earlier in this chat" in llm.prompts[5][-1]["content"]
        and "Options: A. red" in llm.prompts[6][-1]["content"]
    )
    summary = summarise(lines)
    assert summary["accuracy"] == round(100 * 5 / 6, 2) and summary["categories"]["when"]["accuracy"] == 50.0
    assert summary["metrics"]["words"] == 100.0


def test_vidagent_eval_routing_runs_a_profiles_planner(tmp_path: Path) -> None:
    out = tmp_path / "routing.jsonl"
    result = CliRunner().invoke(
        app, ["eval", "routing", "--data", str(FIXTURE), "--profile", "tiny", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "# routing" in result.stdout and "· count %" in result.stdout and "routed %" in result.stdout
    header, rows = read_run(out)
    assert header["method"] == "planner" and header["models"]["planner"] == "tiny/planner" and len(rows) == 6
    assert all(json.loads(r["prediction"]) is not None and "scores" in r for r in rows)
    wrong = CliRunner().invoke(app, ["eval", "routing", "--method", "agent", "--profile", "tiny"])
    assert wrong.exit_code == 2 and "--method planner" in wrong.output


def test_the_run_header_names_a_planner_that_loaded_instead(tmp_path: Path) -> None:
    """auto's planner without the hub: the header keeps the profile's id and says what ran instead."""
    profile = tmp_path / "p.yaml"
    profile.write_text(
        "name: p\nroles:\n  planner: {id: Qwen/not-cached-GGUF, gguf_file: q.gguf, "
        "fallback: {id: tiny/planner}}\n  embedder: {id: tiny/embedder}\n"
    )
    out = tmp_path / "run.jsonl"
    result = CliRunner().invoke(
        app,
        [
            "eval",
            "routing",
            "--data",
            str(FIXTURE),
            "--profile",
            str(profile),
            "--limit",
            "1",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    header, _ = read_run(out)
    assert header["models"]["planner"] == "Qwen/not-cached-GGUF" and header["substitutes"] == {
        "planner": "tiny/planner"
    }
    assert "planner=Qwen/not-cached-GGUF (ran tiny/planner)" in result.stdout
