"""`vidagent mcp`, driven over stdio by the `mcp` SDK's own client: one server process (tiny profile)
for the module, one client session for every call. Tiny weights prove the plumbing, not the answers."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mcp", reason="the mcp extra is not installed")

import mcp_types as types
from anyio.from_thread import BlockingPortal, start_blocking_portal
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.shared.exceptions import MCPError

from vidagent.agent.registry import ToolRegistry
from vidagent.app.mcp_server import VideoNotAllowed, resolve_video, tool_schema
from vidagent.media.sample_videos import sample_video
from vidagent.media.store import Store, file_sha256
from vidagent.models.profile import load_profile

ENV = ("VIDAGENT_HOME", "VIDAGENT_CACHE", "HF_HUB_OFFLINE")  # the client passes a minimal environment


@dataclass
class Served:
    """A client session on `vidagent mcp` and the folders it was started with."""

    portal: BlockingPortal
    session: ClientSession
    root: Path
    allowed: Path
    outside: Path
    log: Path
    stray: list[Exception] = field(default_factory=list)  # stdout lines that were not protocol

    def call(
        self, name: str, arguments: dict[str, Any], progress: list | None = None
    ) -> types.CallToolResult:
        async def record(done: float, total: float | None, message: str | None) -> None:
            if progress is not None:
                progress.append((done, total, message))

        return self.portal.call(lambda: self.session.call_tool(name, arguments, progress_callback=record))

    def request(self, method: Callable[..., Any], *args: Any) -> Any:
        return self.portal.call(method, *args)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("mcp")
    allowed, outside = root / "videos", root / "outside"
    allowed.mkdir()
    outside.mkdir()
    shutil.copy(sample_video("bikes"), allowed / "bikes.mp4")
    (allowed / "notes.mp4").write_text("not a video")
    shutil.copy(sample_video("carphone"), outside / "secret.mp4")
    (allowed / "link.mp4").symlink_to(outside / "secret.mp4")  # inside by name, outside once resolved
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "vidagent.app.cli", "mcp", "--profile", "tiny", "--store", str(root / "store.sqlite"),
              "--allow", str(allowed), "--max-steps", "2"],
        env={name: os.environ[name] for name in ENV if name in os.environ},
    )  # fmt: skip
    log = root / "server.log"
    stray: list[Exception] = []

    async def on_message(message: Any) -> None:
        if isinstance(message, Exception):
            stray.append(message)

    with (
        log.open("w") as errlog,
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(stdio_client(params, errlog=errlog)) as (read, write),
    ):
        client = ClientSession(read, write, message_handler=on_message)
        with portal.wrap_async_context_manager(client) as session:
            portal.call(session.initialize)
            yield Served(portal, session, root, allowed, outside, log, stray)


def _text(result: types.CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if isinstance(block, types.TextContent))


def test_every_registry_tool_plus_ask_and_index_is_listed_with_a_video_argument(served: Served) -> None:
    tools = {tool.name: tool for tool in served.request(served.session.list_tools).tools}
    registry = ToolRegistry.for_roles(set(load_profile("tiny").roles))
    assert set(tools) == {*registry.tools, "ask", "index"}
    for name, spec in registry.tools.items():
        schema = tools[name].input_schema
        assert schema == tool_schema(spec.json_schema())  # the pydantic model's schema, plus video
        assert schema["required"][0] == "video" and schema["properties"]["video"]["type"] == "string"
        assert set(schema["properties"]) == {"video", *spec.input_model.model_fields}
        assert tools[name].description == spec.description
    assert tools["retrieve"].input_schema["properties"]["k"]["minimum"] == 1
    assert set(tools["ask"].input_schema["required"]) == {"video", "question"}
    assert {"options", "session"} <= set(tools["ask"].input_schema["properties"])
    assert tools["index"].input_schema["required"] == ["video"]


def test_retrieve_on_a_real_sample_video_returns_evidence_rows(served: Served) -> None:
    for video in ("bikes.mp4", str(served.allowed / "bikes.mp4")):  # relative to an allowed dir, absolute
        result = served.call("retrieve", {"video": video, "query": "a cyclist", "k": 3})
        assert not result.is_error, _text(result)
        rows = result.structured_content["evidence"]
        assert 1 <= len(rows) <= 3
        for row in rows:
            assert row["tool"] == "retrieve" and 0.0 <= row["start"] <= row["end"] <= 10.0
            assert isinstance(row["score"], float) and len(row["video"]) == 64
        assert _text(result).startswith(f"retrieve: {len(rows)} rows\n[0] retrieve ")


def test_index_reports_progress_then_the_video_is_a_readable_resource(served: Served) -> None:
    progress: list[tuple[float, float | None, str | None]] = []
    result = served.call("index", {"video": str(served.allowed / "bikes.mp4")}, progress)
    assert not result.is_error, _text(result)
    report = result.structured_content
    video_id = file_sha256(served.allowed / "bikes.mp4")
    assert report["video"] == video_id and report["frames_total"] == 10  # 10 s at 1 frame/s
    assert progress, "no progress notification for index"
    done = [p for p, _, _ in progress]
    assert done == sorted(set(done)) and progress[-1][0] == progress[-1][1]  # increasing, to the end
    assert progress[-1][2] == "indexed"

    resources = served.request(served.session.list_resources).resources
    uri = f"vidagent://videos/{video_id}"
    assert [(r.uri, r.name) for r in resources] == [(uri, "bikes.mp4")]
    contents = served.request(served.session.read_resource, uri).contents
    shown = json.loads(contents[0].text)
    assert shown["id"] == video_id and shown["name"] == "bikes.mp4" and shown["indexed"] is True
    assert shown["duration"] == pytest.approx(10.0) and shown["meta"]["width"] == 640
    assert str(served.root) not in contents[0].text  # never the server path


def test_ask_answers_with_its_cited_evidence_and_session_reporting_each_step(served: Served) -> None:
    video_id = file_sha256(served.allowed / "bikes.mp4")
    progress: list[tuple[float, float | None, str | None]] = []
    result = served.call("ask", {"video": video_id[:12], "question": "What happens?"}, progress)  # id prefix
    assert not result.is_error, _text(result)
    answer = result.structured_content
    assert isinstance(answer["text"], str) and answer["text"]
    assert 0.0 <= answer["confidence"] <= 1.0 and len(answer["session"]) == 32
    assert all({"id", "tool", "start", "end"} <= set(row) for row in answer["evidence"])
    assert _text(result).startswith(answer["text"]) and answer["session"] in _text(result)
    assert len(progress) >= 2 and progress[-1][2] == "answered"  # one notification per streamed step
    assert [p for p, _, _ in progress] == list(range(1, len(progress) + 1))

    follow_up = served.call(
        "ask",
        {"video": f"vidagent://videos/{video_id}", "question": "And then?", "session": answer["session"]},
    )
    assert not follow_up.is_error, _text(follow_up)
    assert follow_up.structured_content["session"] == answer["session"]


BAD_CALLS = {  # name -> (tool, arguments given the allowed and outside folders, what the message says)
    "unknown id": ("retrieve", lambda a, o: {"video": "0" * 64, "query": "x"}, "is not a known video id"),
    "unknown resource": ("index", lambda a, o: {"video": "vidagent://videos/" + "f" * 64}, "no such video"),
    "k=0": (
        "retrieve",
        lambda a, o: {"video": "bikes.mp4", "query": "x", "k": 0},
        "k: Input should be greater",
    ),
    "outside, absolute": (
        "retrieve",
        lambda a, o: {"video": str(o / "secret.mp4"), "query": "x"},
        "not a file under an allowed directory (--allow DIR)",
    ),
    "outside, ..": (
        "retrieve",
        lambda a, o: {"video": "../outside/secret.mp4", "query": "x"},
        "not a file under an allowed directory",
    ),
    "outside, symlink": (
        "ask",
        lambda a, o: {"video": "link.mp4", "question": "?"},
        "not a file under an allowed",
    ),
    "no video": ("retrieve", lambda a, o: {"query": "x"}, "retrieve: 'video' is required"),
    "unknown argument": (
        "retrieve",
        lambda a, o: {"video": "bikes.mp4", "query": "x", "n": 3},
        "unknown argument",
    ),
    "no question": (
        "ask",
        lambda a, o: {"video": "bikes.mp4"},
        "ask: invalid arguments (question: Field required",
    ),
    "one option": ("ask", lambda a, o: {"video": "bikes.mp4", "question": "?", "options": ["a"]}, "options:"),
    "not a video": ("index", lambda a, o: {"video": "notes.mp4"}, "notes.mp4"),
}


@pytest.mark.parametrize("case", list(BAD_CALLS))
def test_bad_input_is_a_tool_error_with_a_clear_message(served: Served, case: str) -> None:
    tool, arguments, needle = BAD_CALLS[case]
    result = served.call(tool, arguments(served.allowed, served.outside))
    text = _text(result)
    assert result.is_error and needle in text, text
    assert "Traceback" not in text and "\n" not in text
    if case == "not a video":
        assert str(served.allowed) not in text  # a file is named by its name, not its server path


def test_an_unknown_tool_or_resource_is_a_protocol_error(served: Served) -> None:
    with pytest.raises(MCPError) as caught:
        served.call("rewind", {"video": "bikes.mp4"})
    assert caught.value.code == types.INVALID_PARAMS and "unknown tool 'rewind'" in caught.value.message
    with pytest.raises(MCPError) as caught:
        served.request(served.session.read_resource, "vidagent://videos/" + "0" * 64)
    assert caught.value.code == types.INVALID_PARAMS and "no such resource" in caught.value.message
    assert "Traceback" not in caught.value.message


def test_stdout_carried_only_the_protocol_and_nothing_failed_unexpectedly(served: Served) -> None:
    served.request(served.session.send_ping)
    assert served.stray == []
    log = served.log.read_text()
    assert "vidagent MCP server on stdio" in log and "Traceback" not in log


# --- resolve_video, on its own ------------------------------------------------------------------------
@pytest.fixture
def store_with_bikes(tmp_path: Path) -> tuple[Store, str, Path]:
    store = Store(tmp_path / "store.sqlite")
    kept = tmp_path / "kept"
    kept.mkdir()
    path = kept / "bikes.mp4"
    shutil.copy(sample_video("bikes"), path)
    video_id = store.content_hash(path)
    store.add_video(video_id, path, {"duration": 10.0})
    return store, video_id, path


def test_resolve_video_takes_ids_prefixes_and_resource_uris(
    store_with_bikes: tuple[Store, str, Path],
) -> None:
    store, video_id, path = store_with_bikes
    for value in (
        video_id,
        video_id[:12],
        video_id.upper(),
        f"vidagent://videos/{video_id}",
        f" {video_id} ",
    ):
        assert resolve_video(value, store, []) == path.resolve()
    with pytest.raises(VideoNotAllowed, match="takes video ids only"):
        resolve_video(str(path), store, [])  # no allowed directories: a path is never opened
    with pytest.raises(VideoNotAllowed, match="no such video"):
        resolve_video("vidagent://videos/" + str(path), store, [path.parent])
    path.unlink()
    with pytest.raises(VideoNotAllowed, match=r"in the store but its file 'bikes\.mp4' is gone"):
        resolve_video(video_id, store, [])


def test_resolve_video_opens_only_files_under_the_allowed_directories(
    tmp_path: Path, store_with_bikes: tuple[Store, str, Path]
) -> None:
    store, _, path = store_with_bikes
    allowed = tmp_path / "allowed"
    (allowed / "sub").mkdir(parents=True)
    inside = allowed / "sub" / "clip.mp4"
    shutil.copy(path, inside)
    (allowed / "escape.mp4").symlink_to(path)
    (allowed / "loop.mp4").symlink_to(allowed / "loop.mp4")
    roots = [allowed.resolve()]
    assert resolve_video(str(inside), store, roots) == inside.resolve()
    assert resolve_video("sub/clip.mp4", store, roots) == inside.resolve()
    for value in (
        str(path),
        "escape.mp4",
        "../kept/bikes.mp4",
        "sub",
        "loop.mp4",
        "missing.mp4",
        "a\0b",
        "~nobody1/x",
    ):
        with pytest.raises(VideoNotAllowed, match=r"not a file under an allowed directory \(--allow DIR\)"):
            resolve_video(value, store, roots)


# --- streamable HTTP ------------------------------------------------------------------------------------
@pytest.mark.slow
def test_http_serves_the_same_tools_on_loopback_only(tmp_path: Path) -> None:
    import socket
    import subprocess
    import time

    import anyio
    import httpx
    from mcp import Client

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    url = f"http://127.0.0.1:{port}/mcp"
    process = subprocess.Popen(
        [sys.executable, "-m", "vidagent.app.cli", "mcp", "--http", "--port", str(port), "--profile", "tiny",
         "--store", str(tmp_path / "store.sqlite")],
        stdout=subprocess.DEVNULL, stderr=(tmp_path / "server.log").open("w"),
    )  # fmt: skip

    async def session() -> tuple[set[str], str]:
        async with Client(url) as client:
            names = {tool.name for tool in (await client.list_tools()).tools}
            refused = await client.call_tool("retrieve", {"video": str(tmp_path), "query": "x"})
            return names, refused.content[0].text

    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                httpx.get(url, timeout=2)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(
                        "vidagent mcp --http did not start:\n" + (tmp_path / "server.log").read_text()[-3000:]
                    )
                time.sleep(0.5)
        names, refused = anyio.run(session)
        assert {"retrieve", "ask", "index"} <= names
        assert "takes video ids only" in refused  # no --allow: a path is never opened
        rebound = httpx.post(url, headers={"Host": "attacker.example"}, json={})  # DNS rebinding
        assert rebound.status_code == 421
    finally:
        process.terminate()
        process.wait(timeout=30)
