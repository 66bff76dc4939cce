"""The `vidagent` command line, run in-process through typer's runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vidagent.cli import app, main
from vidagent.sample_videos import sample_video

runner = CliRunner()


def test_info_json_on_a_real_sample_video() -> None:
    result = runner.invoke(app, ["info", str(sample_video("bikes")), "--json"])
    assert result.exit_code == 0, result.output
    meta = json.loads(result.stdout)
    assert (meta["width"], meta["height"], meta["frame_count"]) == (640, 272, 250)


@pytest.mark.parametrize("backend", ["pyav", "decord"])
def test_frames_writes_jpegs(tmp_path: Path, backend: str) -> None:
    result = runner.invoke(app, ["frames", str(sample_video("carphone")), "--out", str(tmp_path), "-n", "4",
                                 "--short-side", "64", "--backend", backend])
    assert result.exit_code == 0, result.output
    assert len(list(tmp_path.glob("*.jpg"))) == 4


def test_bad_input_is_one_line_and_exit_code_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("hello")
    for argv in (["info", str(tmp_path / "missing.mp4")], ["info", str(text)]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err


def test_usage_errors_exit_2() -> None:
    assert runner.invoke(app, ["frames"]).exit_code == 2
    assert runner.invoke(app, ["frames", "x.mp4", "--out", "d", "--fps", "1", "-n", "3"]).exit_code == 2


def test_models_list_names_the_roles() -> None:
    result = runner.invoke(app, ["models", "list", "--profile", "cpu"])
    assert result.exit_code == 0
    assert "openai/clip-vit-base-patch32" in result.stdout


def test_ask_end_to_end_with_the_tiny_profile(tmp_path: Path) -> None:
    """Tiny random planner (schema-constrained) + tiny CLIP: plumbing, not accuracy."""
    result = runner.invoke(app, ["ask", str(sample_video("bikes")), "What happens?", "--profile", "tiny",
                                 "--store", str(tmp_path / "s.sqlite"), "--json", "--max-steps", "2"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["text"] and 0.0 <= answer["confidence"] <= 1.0
    assert answer["trace"][0]["type"] == "plan" and answer["trace"][-1]["type"] == "answer"
    assert answer["prompts"] == ["answer@v1", "exemplars@v1", "planner@v3"]


def test_ask_multiple_choice_with_the_tiny_profile(tmp_path: Path) -> None:
    result = runner.invoke(app, ["ask", str(sample_video("carphone")), "Who is talking?", "-o", "a man",
                                 "-o", "a dog", "-o", "nobody", "--profile", "tiny", "--max-steps", "1",
                                 "--store", str(tmp_path / "s.sqlite"), "--json"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["choice"] in (0, 1, 2)
    assert answer["text"].startswith(["A. a man", "B. a dog", "C. nobody"][answer["choice"]])
