"""Edge-case videos, generated here: every tool through the Python API, the main CLI commands and the
upload route give a result or one clear error (a VidagentError: exit 1, HTTP 4xx), never a crash,
and the store passes SQLite's integrity check afterwards. Tiny models: the plumbing, not accuracy."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import av
import pytest
from typer.testing import CliRunner

from tests.synth import write_audio_only, write_video, write_y4m_header, write_zero_frame_video
from vidagent.agent.registry import ToolRegistry
from vidagent.app.cli import app
from vidagent.core.errors import VidagentError
from vidagent.media.store import Store
from vidagent.tools.base import ToolContext

pytestmark = pytest.mark.timeout(900)

ARGS = {  # one call per tool, in the tools' own argument names
    "retrieve": {"query": "a square"},
    "detect_track": {"prompt": "square."},
    "segment": {"prompt": "square"},
    "caption": {"frames": 2},
    "look": {"question": "What is shown?"},
    "ground": {"query": "a square"},
    "read_text": {},
    "transcribe": {},
    "find_text": {"query": "square"},
}


def _can(codec: str) -> bool:
    return codec in av.codecs_available


def build(folder: Path) -> dict[str, Path]:
    """The matrix: short, tiny, extreme and odd sizes, other codecs and pixel formats, rotation,
    variable frame rate, audio only, header only, no frames, and a name with spaces and non-ASCII."""
    videos = {
        "1 frame": write_video(folder / "one.mp4", fps=1, seconds=1, size=(64, 48)),
        "2 frames": write_video(folder / "two.mp4", fps=2, seconds=1, size=(64, 48)),
        "0.5 s": write_video(folder / "half.mp4", fps=10, seconds=0.5, size=(64, 48)),
        "2000x100": write_video(folder / "wide.mp4", fps=5, seconds=1, size=(2000, 100)),
        "16x2000": write_video(folder / "tall.mp4", fps=5, seconds=1, size=(16, 2000)),
        "2x2 ffv1": write_video(folder / "dot.mkv", fps=5, seconds=1, size=(2, 2), codec="ffv1"),
        "33x17 ffv1 yuv444p": write_video(
            folder / "odd.mkv", fps=5, seconds=1, size=(33, 17), codec="ffv1", pix_fmt="yuv444p"
        ),
        "mpeg4": write_video(folder / "mp4v.mp4", fps=10, seconds=1, size=(64, 48), codec="mpeg4"),
        "x264 yuv444p": write_video(folder / "444.mp4", fps=10, seconds=1, size=(64, 48), pix_fmt="yuv444p"),
        "rotated 90": write_video(folder / "rot.mp4", fps=10, seconds=1, size=(64, 48), rotation=90),
        "vfr": write_video(folder / "vfr.mp4", seconds=2, size=(64, 48), vfr=True),
        "audio only": write_audio_only(folder / "sound.m4a"),
        "header only": write_y4m_header(folder / "head.y4m", 64, 48),
        "no frames": write_zero_frame_video(folder / "empty.avi"),
        "non-ASCII name": write_video(folder / "vidéo 日本 clip.mp4", fps=10, seconds=1, size=(64, 48)),
        "not media": folder / "notes.mp4",
        "missing": folder / "gone.mp4",
    }
    videos["not media"].write_text("not a video at all")
    if _can("libvpx-vp9"):
        videos["vp9 webm"] = write_video(
            folder / "vp9.webm", fps=10, seconds=1, size=(64, 48), codec="libvpx-vp9"
        )
    try:
        videos["10-bit"] = write_video(
            folder / "10bit.mp4", fps=10, seconds=1, size=(64, 48), pix_fmt="yuv420p10le"
        )
    except av.FFmpegError:  # an x264 without high bit depth: HEVC then
        if _can("libx265"):
            videos["10-bit"] = write_video(
                folder / "10bit.mp4", fps=10, seconds=1, size=(64, 48), codec="libx265", pix_fmt="yuv420p10le"
            )
    return videos


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build(tmp_path_factory.mktemp("edge videos"))


def integrity(store: Path) -> str:
    with sqlite3.connect(store) as db:
        return db.execute("pragma integrity_check").fetchone()[0]


def test_every_tool_on_every_edge_video(matrix: dict[str, Path], tiny_hub, tmp_path: Path) -> None:
    registry = ToolRegistry.for_roles(set(tiny_hub.profile.roles))
    assert set(ARGS) <= set(registry.tools)
    ctx = ToolContext(hub=tiny_hub, store=Store(tmp_path / "s.sqlite"))
    outcomes: dict[tuple[str, str], str] = {}
    for name, video in matrix.items():
        for tool, args in ARGS.items():
            try:
                evidence = registry.tools[tool](ctx, video, **args)
                outcomes[name, tool] = f"{len(evidence)} rows"
            except VidagentError as error:
                assert "\n" not in str(error).strip(), error  # one line
                outcomes[name, tool] = type(error).__name__
    assert integrity(tmp_path / "s.sqlite") == "ok"
    # the playable ones gave results; the broken ones a clear error
    for name in (
        "1 frame",
        "2 frames",
        "0.5 s",
        "2000x100",
        "16x2000",
        "mpeg4",
        "x264 yuv444p",
        "rotated 90",
        "vfr",
        "non-ASCII name",
    ):
        assert outcomes[name, "retrieve"].endswith("rows"), (name, outcomes[name, "retrieve"])
    for name in ("audio only", "header only", "not media", "missing"):
        assert not outcomes[name, "retrieve"].endswith("rows"), name


TINY = ["--profile", "tiny", "--store", "{store}"]
CLI_COMMANDS = {  # every command that takes a video, as a user types it
    "info": ["info", "{video}"],
    "frames": ["frames", "{video}", "--out", "{out}", "-n", "2"],
    "index": ["index", "{video}", *TINY],
    "retrieve": ["retrieve", "{video}", "a square", *TINY],
    "detect": ["detect", "{video}", "square.", *TINY],
    "ask": ["ask", "{video}", "What is shown?", "--max-steps", "1", *TINY],
    "chat": ["chat", "{video}", *TINY],
    "texts": ["texts", "square", "--video", "{video}", *TINY],
    "demo": ["demo", "--video", "{video}", "--question", "What is shown?", *TINY],
}


@pytest.mark.parametrize("command", list(CLI_COMMANDS))
def test_cli_commands_on_every_edge_video(matrix: dict[str, Path], tmp_path: Path, command: str) -> None:
    runner = CliRunner()
    store = tmp_path / "s.sqlite"
    for name, video in matrix.items():
        argv = [
            a.replace("{video}", str(video))
            .replace("{out}", str(tmp_path / "frames"))
            .replace("{store}", str(store))
            for a in CLI_COMMANDS[command]
        ]
        result = runner.invoke(app, argv, input="What is shown?\n/quit\n" if command == "chat" else None)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            assert isinstance(result.exception, VidagentError), (name, argv, repr(result.exception))
            assert result.exit_code == 1
        else:
            assert result.exit_code in (0, 1), (name, argv, result.output)
        assert "Traceback" not in result.output, (name, argv, result.output)
    if store.exists():
        assert integrity(store) == "ok"


def test_the_upload_route_on_every_edge_video(matrix: dict[str, Path], tmp_path: Path) -> None:
    from fastapi.testclient import TestClient  # the test extra installs the server's packages

    from tests.doubles import ScriptedChat
    from vidagent.agent.api import VideoAgent
    from vidagent.app.server import create_app

    ctx = ToolContext(hub=None, store=Store(tmp_path / "s.sqlite"))  # type: ignore[arg-type]  # no model runs
    client = TestClient(
        create_app(
            VideoAgent(ctx, ScriptedChat(), registry=ToolRegistry({})), upload_dir=tmp_path / "uploads"
        ),
        base_url="http://127.0.0.1",
    )
    for name, video in matrix.items():
        if not video.exists():
            continue
        with video.open("rb") as handle:
            response = client.post(
                "/api/videos", files={"file": (video.name, handle, "application/octet-stream")}
            )
        assert response.status_code < 500, (name, response.status_code, response.text)
        if response.status_code >= 400:
            assert response.json()["detail"], name
        else:
            assert response.json()["name"] == video.name, name
    assert integrity(tmp_path / "s.sqlite") == "ok"
