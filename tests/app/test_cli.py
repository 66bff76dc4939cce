"""The `vidagent` command line, run in-process through typer's runner."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.synth import damaged_copy, write_video
from vidagent.app.cli import app, main
from vidagent.media.sample_videos import sample_video

runner = CliRunner()


def test_info_json_on_a_real_sample_video() -> None:
    result = runner.invoke(app, ["info", str(sample_video("bikes")), "--json"])
    assert result.exit_code == 0, result.output
    meta = json.loads(result.stdout)
    assert (meta["width"], meta["height"], meta["frame_count"]) == (640, 272, 250)


@pytest.mark.parametrize("backend", ["pyav", "decord"])
def test_frames_writes_jpegs(tmp_path: Path, backend: str) -> None:
    result = runner.invoke(
        app,
        [
            "frames",
            str(sample_video("carphone")),
            "--out",
            str(tmp_path),
            "-n",
            "4",
            "--short-side",
            "64",
            "--backend",
            backend,
        ],
    )
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


@pytest.mark.parametrize("backend", ["auto", "pyav"])
def test_a_damaged_file_is_one_warning_line_naming_its_seconds(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], backend: str
) -> None:
    video = damaged_copy(
        write_video(tmp_path / "v.mp4", fps=10, seconds=4, size=(64, 48), gop=10),
        tmp_path / "damaged.mp4",
        2.0,
        2.5,
    )
    with pytest.raises(SystemExit) as exit_info:
        main(["frames", str(video), "--out", str(tmp_path / "frames"), "--fps", "4", "--backend", backend])
    assert exit_info.value.code == 0
    err = capfd.readouterr().err  # the process's own stderr: FFmpeg's C-level lines would show here
    warned = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert len(warned) == 1 and "[h264" not in err and "@ 0x" not in err
    # the damaged packets' stretch, widened by the frames that referenced them (B-frames, up to the
    # keyframe at 3 s), never narrower
    start, end = map(float, re.search(r"damaged at (\d+\.\d+)-(\d+\.\d+)s", warned[0]).groups())
    assert 1.5 <= start <= 2.0 and 2.5 <= end <= 3.0, warned[0]
    written = len(list((tmp_path / "frames").glob("*.jpg")))
    assert (
        f"wrote {written} frames" in err and f"({16 - written} samples showed a frame already written)" in err
    )


def test_usage_errors_exit_2() -> None:
    assert runner.invoke(app, ["frames"]).exit_code == 2
    assert runner.invoke(app, ["frames", "x.mp4", "--out", "d", "--fps", "1", "-n", "3"]).exit_code == 2


def test_models_list_names_the_roles() -> None:
    result = runner.invoke(app, ["models", "list", "--profile", "cpu"])
    assert result.exit_code == 0
    assert "openai/clip-vit-base-patch32" in result.stdout
    auto = runner.invoke(app, ["models", "list"])  # where each role's weights come from, OCR's too
    assert auto.exit_code == 0 and "weights" in auto.stdout and "ocr" in auto.stdout
    assert "RANDOM" in auto.stdout and "PyPI" in auto.stdout


def test_eval_help_lists_every_registered_task() -> None:
    from vidagent.evals.tasks import TASK_REGISTRY

    result = runner.invoke(app, ["eval", "--help"], env={"COLUMNS": "2000", "TERMINAL_WIDTH": "2000"})
    assert result.exit_code == 0, result.output
    targets = next(line for line in result.stdout.splitlines() if "A task: " in line)
    for name, registered in TASK_REGISTRY.items():
        assert f"{name} ({registered.help})" in targets, name
    assert "'report' (summarise run files)" in targets


def test_the_fallback_banner_names_each_random_role_once() -> None:
    from vidagent.app import cli

    class Hub:  # what the banner reads of a ModelHub
        def __init__(self) -> None:
            self.fallbacks = {"clip": ("openai/clip-vit-base-patch32", "offline")}

    hub = Hub()
    with cli.err.capture() as first:
        cli._warn_fallbacks(hub)
        cli._warn_fallbacks(hub)  # named already: nothing more
    assert " ".join(first.get().split()) == (
        "WARNING: TINY RANDOM weights for clip (could not load 'openai/clip-vit-base-patch32': offline). "
        "What these roles see is meaningless; the other roles run on real weights (`vidagent doctor`). "
        "Get real checkpoints with `hf download ID` while online, or point a profile at local copies "
        "(`--profile my.yaml`, `vidagent models list`)."
    )
    hub.fallbacks["detector"] = ("IDEA-Research/grounding-dino-tiny", "no network")
    with cli.err.capture() as second:
        cli._warn_fallbacks(hub)
    assert " ".join(second.get().split()).startswith(
        "WARNING: TINY RANDOM weights for detector (could not load 'IDEA-Research/grounding-dino-tiny': "
        "no network). What"
    )


def test_ask_end_to_end_with_the_tiny_profile(tmp_path: Path) -> None:
    """Tiny random planner (schema-constrained) + tiny CLIP: plumbing, not accuracy."""
    result = runner.invoke(
        app,
        [
            "ask",
            str(sample_video("bikes")),
            "What happens?",
            "--profile",
            "tiny",
            "--store",
            str(tmp_path / "s.sqlite"),
            "--json",
            "--max-steps",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["text"] and 0.0 <= answer["confidence"] <= 1.0
    assert answer["trace"][-1]["type"] == "answer" and "plan" in [e["type"] for e in answer["trace"]]
    # first, recall looks the question up in what the 10 s clip says and shows (nothing: no audio, no text)
    assert answer["trace"][0]["type"] == "tool_call" and answer["trace"][0]["tool"] == "find_text"
    assert answer["trace"][0]["recall"] is True
    assert answer["prompts"] == ["answer@v1", "exemplars@v2", "planner@v3"]


def test_ask_multiple_choice_with_the_tiny_profile(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "ask",
            str(sample_video("carphone")),
            "Who is talking?",
            "-o",
            "a man",
            "-o",
            "a dog",
            "-o",
            "nobody",
            "--profile",
            "tiny",
            "--max-steps",
            "1",
            "--store",
            str(tmp_path / "s.sqlite"),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["choice"] in (0, 1, 2)
    assert answer["text"].startswith(["A. a man", "B. a dog", "C. nobody"][answer["choice"]])


# --- real weights the packages ship: Whisper base, PP-OCR, MiniLM, SmolLM2 ---------------------------
def test_demo_answers_from_the_announcement_on_real_weights(tmp_path: Path) -> None:
    """`make demo`: the shipped clip says "The next train for Oxford leaves from platform four.";
    the answer names Oxford and cites the transcript, and the roles that ran are named."""
    result = runner.invoke(app, ["demo", "--store", str(tmp_path / "s.sqlite")])
    assert result.exit_code == 0, result.output
    answer = result.stdout  # the clip's facts (info), then the answer, then the rows it cites
    assert any(line.startswith("Oxford: said at") and "[0]" in line for line in answer.splitlines()), answer
    assert "cited evidence" in answer and "find_text" in answer
    assert "weights: real:" in result.stderr and "asr" in result.stderr and "ocr" in result.stderr
    assert "no random weights ran" in result.stderr


def test_index_hears_and_reads_and_texts_finds_it(tmp_path: Path) -> None:
    store = str(tmp_path / "s.sqlite")
    clip = str(sample_video("announcement"))
    heard = runner.invoke(app, ["index", clip, "--no-text", "--store", store])
    assert heard.exit_code == 0, heard.output
    assert "1 speech segments" in heard.stdout and "on-screen" not in heard.stdout
    read = runner.invoke(app, ["index", clip, "--no-speech", "--store", store])
    assert read.exit_code == 0 and "on-screen text lines" in read.stdout, read.output
    found = runner.invoke(app, ["texts", "Oxford", "--video", clip, "--store", store])
    assert found.exit_code == 0 and "transcribe" in found.stdout and "keywords" in found.stdout, found.output
    shown = runner.invoke(app, ["texts", "platform", "--tool", "read_text", "--store", store])
    assert shown.exit_code == 0 and "PLATFORM" in shown.stdout and "transcribe" not in shown.stdout
    bad = runner.invoke(app, ["texts", "x", "--tool", "look", "--store", store])
    assert bad.exit_code == 2 and "--tool must be one of" in bad.output


def test_eval_real_writes_its_clips_and_scores_them(tmp_path: Path) -> None:
    import shutil

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (make test installs Debian's espeak-ng)")
    out = tmp_path / "real.jsonl"
    result = runner.invoke(
        app,
        [
            "eval",
            "real",
            "--per-kind",
            "1",
            "--seed",
            "4",
            "--data",
            str(tmp_path / "data"),
            "--method",
            "blind",
            "--profile",
            "tiny",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "data" / "videos").glob("*.mp4"))) == 5 and "accuracy %" in result.stdout
    rows = [json.loads(line) for line in out.read_text().splitlines()[1:]]
    assert sorted(r["category"] for r in rows) == ["both", "said", "shown", "when_said", "when_shown"]


def test_ask_on_a_bad_file_fails_before_any_model_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import vidagent.app.cli as cli

    def no_models(*args, **kwargs):
        raise AssertionError("a model was loaded for a file that is not a video")

    monkeypatch.setattr(cli, "_agent", no_models)
    notes = tmp_path / "notes.mp4"
    notes.write_text("not a video")
    for command in (
        ["ask", str(notes), "What happens?"],
        ["chat", str(notes)],
        ["ask", str(tmp_path / "gone.mp4"), "?"],
    ):
        result = runner.invoke(app, command)
        message = str(result.exception)
        assert result.exit_code == 1 and ("not a video" in message or "no such file" in message), (
            command,
            message,
        )


def test_seek_keyframe_indexes_retrieves_and_searches_keyframes(tmp_path: Path) -> None:
    """--seek keyframe on index and retrieve: its own frame set, keyframes only, true times; the
    library search reads one frame set per video when a video has both."""
    from vidagent.media.store import Store

    video = str(write_video(tmp_path / "v.mp4", fps=10, seconds=6, size=(64, 48), gop=20))  # keys 0, 2, 4 s
    store = str(tmp_path / "s.sqlite")
    common = ["--profile", "tiny", "--store", store]
    indexed = runner.invoke(app, ["index", video, "--seek", "keyframe", "--no-speech", "--no-text", *common])
    assert indexed.exit_code == 0, indexed.output
    with Store(store) as opened:
        (entry,) = opened.frame_sets()
        assert entry["sampling"] == "fps=1,seek=keyframe" and entry["complete"]
        rows = opened.frames(entry["video_id"], entry["model_id"], entry["sampling"])
    assert set(rows.timestamps.round(3)) <= {0.0, 2.0, 4.0} and len(rows) == 6

    found = runner.invoke(app, ["retrieve", video, "a frame", "--seek", "keyframe", "--json", *common])
    assert found.exit_code == 0, found.output
    assert {row["data"]["best_t"] for row in json.loads(found.stdout)} <= {0.0, 2.0, 4.0}
    with Store(store) as opened:
        assert len(opened.frame_sets()) == 1  # read the keyframe set, indexed nothing new

    assert runner.invoke(app, ["index", video, "--no-speech", "--no-text", *common]).exit_code == 0
    searched = runner.invoke(app, ["search", "a frame", "-k", "10", *common])
    assert searched.exit_code == 0, searched.output  # two frame sets of one video: no crash, no double
    spans = re.findall(r"(\d+\.\d+)-(\d+\.\d+)", searched.stdout)
    assert spans and len(spans) == len(set(spans))  # the exact set's (the default) moments, once each
    assert all(float(start) + 1.0 <= float(end) for start, end in spans)


@pytest.mark.parametrize("command", ["index", "ask", "retrieve", "frames"])
def test_an_unknown_seek_mode_is_a_usage_error_before_any_model_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    import vidagent.models.hub as hub

    monkeypatch.setattr(hub.ModelHub, "__init__", lambda *a, **k: pytest.fail("a model hub was built"))
    video, store = str(sample_video("carphone")), ["--store", str(tmp_path / "s.sqlite")]
    argv = {
        "index": ["index", video, *store],
        "ask": ["ask", video, "What happens?", *store],
        "retrieve": ["retrieve", video, "a car", *store],
        "frames": ["frames", video, "--out", str(tmp_path / "f")],
    }[command]
    result = runner.invoke(app, [*argv, "--seek", "nearest"])
    assert result.exit_code == 2, result.output
    assert "--seek must be exact or keyframe, not 'nearest'" in result.output
