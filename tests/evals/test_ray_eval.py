"""`vidagent eval --engine ray`: model actors on a real local Ray fill the same run file as the local engine.

A real local Ray instance (2 CPUs) started by the test; the tiny profile (the plumbing, not the accuracy).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.synth import write_video
from vidagent.app.cli import app
from vidagent.evals.runner import Runner, RunSettings, make_method, read_run, run_task
from vidagent.evals.tasks import Sample, Task
from vidagent.media.store import Store

pytest.importorskip("ray", reason="the ray extra is not installed")
pytestmark = pytest.mark.timeout(600)


def coloured(i: int) -> np.ndarray:
    frame = np.zeros((48, 64, 3), np.uint8)
    frame[..., (i // 5) % 3] = 200
    return frame


@pytest.fixture(scope="module")
def task(tmp_path_factory: pytest.TempPathFactory) -> Task:
    folder = tmp_path_factory.mktemp("ray-eval")
    a = write_video(folder / "a.mp4", fps=5, seconds=4, size=(64, 48), frames_fn=coloured)
    b = write_video(folder / "b.mp4", fps=5, seconds=3, size=(64, 48), frames_fn=coloured)
    broken = folder / "broken.mp4"
    broken.write_bytes(b"not a video")
    options = ["red", "green", "blue"]
    return Task(
        "toy",
        [
            Sample("q0", a, "What colour comes first?", options, 0, category="colour"),
            Sample("q1", a, "What colour is last?", options, 2, category="colour"),
            Sample("q2", b, "Which colour is shown?", options, 1, category="colour"),
            Sample("q3", a, "What colour is in this part?", options, 1, category="colour", span=(1.0, 2.0)),
            Sample("q4", broken, "What colour?", options, 0, category="colour"),
        ],
    )


def without_timings(rows: list[dict]) -> list[dict]:
    # tokens too: tiny detector scores differ in their last bits between a 1-thread actor and this process,
    # and the answer prompt renders them rounded, so its length can differ by a token or two; the ids the tiny
    # answerer cites follow its text, so only which tools the cited rows came from is compared
    def strip(row: dict) -> dict:
        kept = {k: v for k, v in row.items() if k not in ("latency", "tokens")}
        kept["cited"] = sorted({cited["tool"] for cited in row.get("cited", [])})
        kept["trajectory"] = [
            {k: v for k, v in event.items() if k != "seconds"} for event in row.get("trajectory", [])
        ]
        return kept

    return [strip(row) for row in sorted(rows, key=lambda r: r["id"])]


def test_the_driver_pre_indexes_each_file_that_opens_once(task: Task, tmp_path: Path) -> None:
    from vidagent.evals.ray_eval import videos_to_index

    a = task.samples[0].video
    outside = Sample("q5", a, "After the end?", ["x", "y"], 0, span=(100.0, 101.0))  # no frames there
    videos = videos_to_index([outside, *task.samples], tmp_path / "clips")
    assert [v.name for v in videos[:2]] == ["a.mp4", "b.mp4"] and len(
        videos
    ) == 3  # + q3's clip, not broken.mp4
    assert videos[2].parent == tmp_path / "clips"


def test_ray_eval_writes_the_run_file_the_local_engine_writes(
    task: Task, tmp_path: Path, tiny_hub, local_ray, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vidagent.evals.ray_eval import RayEngine
    from vidagent.media import ray_engine

    indexed: list[list[str]] = []
    real_index = ray_engine.index_with_ray

    def index_with_ray(videos, **kwargs):
        indexed.append([Path(v).name for v in videos])
        return real_index(videos, **kwargs)

    monkeypatch.setattr(ray_engine, "index_with_ray", index_with_ray)
    settings = RunSettings(task="toy", method="agent", profile="tiny", max_steps=2)
    local = run_task(task, settings, tmp_path / "local.jsonl", store=tmp_path / "local.sqlite")
    seen: list[tuple[int, int]] = []
    store = tmp_path / "ray.sqlite"
    remote = run_task(
        task,
        settings,
        tmp_path / "ray.jsonl",
        store=store,
        engine=RayEngine(store=store, workers=2),
        progress=lambda d, t: seen.append((d, t)),
    )

    assert read_run(tmp_path / "ray.jsonl")[0] == read_run(tmp_path / "local.jsonl")[0]  # same header
    assert without_timings(read_run(tmp_path / "ray.jsonl")[1]) == without_timings(
        read_run(tmp_path / "local.jsonl")[1]
    )
    assert without_timings(json.loads(json.dumps(local, default=str))) == without_timings(remote)
    assert [r["id"] for r in remote] == ["q0", "q1", "q2", "q3", "q4"] and seen[-1] == (5, 5)
    assert "error" in remote[4] and remote[4]["correct"] is False  # a broken file is a line, not a crash
    assert all("error" not in r and r["tool_calls"] >= 1 for r in remote[:4]), remote
    # the driver indexed every video once on Ray before the actors asked: a.mp4, b.mp4 and q3's clip
    assert len(indexed) == 1 and indexed[0][:2] == ["a.mp4", "b.mp4"] and indexed[0][2].startswith("a-")
    assert len(Store(store).videos()) == 3


def test_a_local_run_resumes_on_ray_and_the_driver_loads_no_model(
    task: Task, tmp_path: Path, tiny_hub, local_ray
) -> None:
    from vidagent.evals.ray_eval import RayEngine

    settings = RunSettings(task="toy", method="blind", profile="tiny")
    out = tmp_path / "run.jsonl"
    whole = run_task(task, settings, out)
    out.write_text("\n".join(out.read_text().splitlines()[:3]) + "\n")  # header, q0, q1: as if killed
    method = make_method(settings, lazy=True)
    resumed = Runner(task, settings, method, out).run(resume=True, engine=RayEngine(workers=1))
    assert not method.llm.loaded  # the planner ran in the actor only; the driver just named it
    assert without_timings(resumed) == without_timings(whole)
    assert without_timings(read_run(out)[1]) == without_timings(whole)
    done = Runner(task, settings, method, out).run(resume=True, engine=RayEngine(workers=1))
    assert len(done) == 5 and not method.llm.loaded  # nothing left: Ray is not even asked


def test_cli_eval_engine_ray(task: Task, tmp_path: Path, tiny_hub, local_ray) -> None:
    data = tmp_path / "mine.jsonl"
    data.write_text(
        "\n".join(
            json.dumps(
                {
                    "id": s.id,
                    "video": str(s.video),
                    "question": s.question,
                    "options": s.options,
                    "answer": s.answer,
                }
            )
            for s in task.samples[:3]
        )
    )
    out = tmp_path / "cli.jsonl"
    result = CliRunner().invoke(
        app,
        [
            "eval",
            "jsonl",
            "--data",
            str(data),
            "--method",
            "blind",
            "--profile",
            "tiny",
            "--engine",
            "ray",
            "--workers",
            "2",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "accuracy %" in result.stdout and len(read_run(out)[1]) == 3
    bad = CliRunner().invoke(app, ["eval", "jsonl", "--data", str(data), "--engine", "dask"])
    assert bad.exit_code == 2 and "--engine must be local or ray" in bad.output


def test_a_tasks_own_scorer_scores_on_ray_too(task: Task, tmp_path: Path, tiny_hub, local_ray) -> None:
    """The real (and routing) task scores whole predictions with its own scorer: it must reach the actors."""
    from dataclasses import replace

    from vidagent.evals.ray_eval import RayEngine
    from vidagent.evals.real_content import RealContentScorer, Truth

    scorer = RealContentScorer({"q0": Truth("said", ("red",)), "q1": Truth("both", polar="yes")})
    scored = replace(task, samples=task.samples[:2], score_prediction=scorer)
    rows = run_task(
        scored,
        RunSettings(task="toy", method="blind", profile="tiny"),
        tmp_path / "run.jsonl",
        engine=RayEngine(workers=1),
    )
    assert [sorted(r["scores"]) for r in rows] == [["hedged", "words"], ["hedged", "words"]], rows
