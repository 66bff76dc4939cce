"""The HTTP API (`vidagent.app.server`) through FastAPI's TestClient: a scripted planner and fake tools."""

from __future__ import annotations

import hashlib
import io
import json
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from pydantic import BaseModel, Field

from tests.doubles import ScriptedChat
from vidagent.agent.api import VideoAgent
from vidagent.agent.registry import ToolRegistry
from vidagent.app.cli import main
from vidagent.app.server import create_app
from vidagent.core.evidence import Evidence
from vidagent.media.sample_videos import sample_video
from vidagent.media.store import Store
from vidagent.media.video import Video
from vidagent.tools.base import ToolContext, ToolSpec

BOX = (200.0, 60.0, 420.0, 220.0)  # bikes is 640x272


class QueryInput(BaseModel):
    query: str = Field(min_length=1)


def fake_retrieve(ctx: ToolContext, video: Path, args: QueryInput) -> Evidence:
    return Evidence.from_rows(
        [{"tool": "retrieve", "start": 2.0, "end": 4.0, "score": 0.8, "data": {"best_t": 3.0}}]
    )


def fake_segment(ctx: ToolContext, video: Path, args: QueryInput) -> Evidence:
    mask = np.zeros((68, 160), bool)  # a quarter-size mask, as SAM stores them
    mask[20:50, 60:100] = True
    ctx.store.put_masks(ctx.store.content_hash(video), [("m-1", 5.0, mask)])
    return Evidence.from_rows(
        [
            {
                "tool": "segment",
                "start": 5.0,
                "end": 5.0,
                "score": 0.9,
                "box": list(BOX),
                "mask_ref": "m-1",
                "data": {"label": args.query},
            }
        ]
    )


REGISTRY = ToolRegistry(
    {
        "retrieve": ToolSpec("retrieve", "find moments", QueryInput, fake_retrieve),
        "segment": ToolSpec("segment", "segment an object", QueryInput, fake_segment),
    }
)


def plan(tool: str, query: str = "bike") -> dict[str, Any]:
    return {"thought": "look", "calls": [{"tool": tool, "args": {"query": query}}], "done": True}


def make_client(
    tmp_path: Path,
    llm: ScriptedChat | None = None,
    base_url: str = "http://127.0.0.1",
    hub: Any = None,
    **options: Any,
) -> TestClient:
    ctx = ToolContext(hub=hub, store=Store(tmp_path / "store.sqlite"))
    agent = VideoAgent(ctx, llm or ScriptedChat(), registry=REGISTRY)
    return TestClient(create_app(agent, upload_dir=tmp_path / "uploads", **options), base_url=base_url)


def upload(client: TestClient, path: Path, name: str | None = None, **headers: str) -> Any:
    with path.open("rb") as handle:
        return client.post(
            "/api/videos", files={"file": (name or path.name, handle, "video/mp4")}, headers=headers
        )


def events(response: Any) -> list[tuple[str, dict[str, Any]]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    found = []
    for block in response.text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        found.append((lines["event"], json.loads(lines["data"])))
    return found


def ask(client: TestClient, video: str, question: str, session: str | None = None) -> list[tuple[str, dict]]:
    return events(client.post("/api/chat", json={"video": video, "session": session, "question": question}))


def test_upload_is_stored_by_content_hash_and_served_with_ranges(tmp_path: Path) -> None:
    client = make_client(tmp_path)
    bikes = sample_video("bikes")
    response = upload(client, bikes, name="../../evil name.mp4")
    assert response.status_code == 201, response.text
    video = response.json()
    assert video["id"] == hashlib.sha256(bikes.read_bytes()).hexdigest()
    assert video["name"] == "evil name.mp4" and (video["width"], video["height"]) == (640, 272)
    stored = sorted(p.name for p in (tmp_path / "uploads").iterdir() if p.is_file())
    assert f"{video['id']}.mp4" in stored and not list((tmp_path / "uploads" / ".incoming").iterdir())
    assert not (tmp_path / "evil name.mp4").exists()

    assert upload(client, bikes).status_code == 200  # same bytes: the same video
    assert [v["id"] for v in client.get("/api/videos").json()] == [video["id"]]
    part = client.get(video["url"], headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == bikes.read_bytes()[100:200]


def test_upload_over_the_size_limit_is_413(tmp_path: Path) -> None:
    client = make_client(tmp_path, max_upload_mb=0.05)
    big = tmp_path / "big.mp4"
    big.write_bytes(b"\0" * 100_000)  # under the Content-Length pre-check: refused while streaming
    response = upload(client, big)
    assert response.status_code == 413 and "limit" in response.json()["detail"]
    assert not list((tmp_path / "uploads" / ".incoming").iterdir())
    assert client.get("/api/videos").json() == []


def test_non_videos_are_refused_by_the_probe(tmp_path: Path) -> None:
    client = make_client(tmp_path)
    notes = tmp_path / "notes.mp4"
    notes.write_text("hello, not a video")
    response = upload(client, notes)
    assert response.status_code == 415
    detail = response.json()["detail"]
    assert detail.startswith("notes.mp4: ") and "not a video" in detail and str(tmp_path) not in detail

    cut = tmp_path / "cut.mp4"
    cut.write_bytes(sample_video("bikes").read_bytes()[:4096])
    response = upload(client, cut)
    assert response.status_code == 422 and response.json()["detail"].startswith("cut.mp4: ")
    for name, kind in (("photo.png", "PNG"), ("photo.jpg", "JPEG")):  # a still image is not a one-frame video
        Image.new("RGB", (64, 48), "red").save(tmp_path / name, kind)
        response = upload(client, tmp_path / name)
        assert response.status_code == 415 and "a still image" in response.json()["detail"], response.text
    assert client.get("/api/videos").json() == []


def test_api_key_is_enforced_when_set(tmp_path: Path) -> None:
    client = make_client(tmp_path, api_key="s3cret", base_url="http://192.0.2.10:8000")
    assert client.get("/").status_code == 200  # the page holds no data: it asks for the key
    assert client.get("/api/videos").status_code == 401
    assert client.get("/api/videos", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert upload(client, sample_video("bikes")).status_code == 401
    assert upload(client, sample_video("bikes"), Authorization="Bearer s3cret").status_code == 201
    listed = client.get("/api/videos", headers={"X-API-Key": "s3cret"})
    assert listed.status_code == 200
    url = listed.json()[0]["url"]
    assert client.get(url, headers={"Range": "bytes=0-9"}).status_code == 206  # signed URL, for <video>
    assert client.get(url[:-4] + "0000").status_code == 401
    assert client.get(url.split("?")[0]).status_code == 401


def test_index_job_reports_progress_until_done(tmp_path: Path, tiny_hub: Any) -> None:
    client = make_client(tmp_path, hub=tiny_hub)
    video = upload(client, sample_video("bikes")).json()
    assert not video["indexed"]
    started = client.post(f"/api/videos/{video['id']}/index")
    assert started.status_code == 202
    job = started.json()
    deadline = time.monotonic() + 60
    while job["state"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.1)
        job = client.get(f"/api/jobs/{job['id']}").json()
    assert job["state"] == "done", job
    assert job["done"] == job["total"] == 10 and job["frames_added"] == 10
    assert client.get(f"/api/videos/{video['id']}").json()["indexed"]
    assert client.get("/api/jobs/nope").status_code == 404


def test_serve_off_loopback_without_a_key_exits_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("VIDAGENT_API_KEY", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "--host", "0.0.0.0", "--profile", "tiny"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "VIDAGENT_API_KEY" in err


def test_without_a_key_only_loopback_hosts_and_same_origin_writes(tmp_path: Path) -> None:
    client = make_client(tmp_path)
    assert client.get("/api/videos").status_code == 200
    assert client.get("/api/videos", headers={"Host": "evil.example"}).status_code == 421  # DNS rebinding
    assert upload(client, sample_video("bikes"), Origin="https://evil.example").status_code == 403  # CSRF
    assert client.get("/").headers["content-security-policy"].startswith("default-src 'self'")


def test_chat_streams_plan_tools_answer_then_done(tmp_path: Path) -> None:
    client = make_client(tmp_path, ScriptedChat([plan("retrieve")], ["A cyclist rides past [0]."]))
    video = upload(client, sample_video("bikes")).json()["id"]
    found = ask(client, video, "When does the cyclist pass?")
    assert [kind for kind, _ in found] == ["plan", "tool_call", "tool_result", "answer", "done"]
    session = found[0][1]["session"]
    assert all(data["session"] == session for _, data in found)
    answer = found[3][1]
    assert answer["text"] == "A cyclist rides past [0]."
    assert answer["evidence"] == [
        {"id": 0, "tool": "retrieve", "start": 2.0, "end": 4.0, "score": 0.8, "data": {"best_t": 3.0}}
    ]


def test_the_answer_event_cites_rows_before_the_checkpoint_is_written(tmp_path: Path) -> None:
    """LangGraph writes checkpoints while the run goes on: a reader of the session's state at the answer
    event may see none of this turn's rows (CI saw ``evidence == []``). The event carries its own."""
    client = make_client(tmp_path, ScriptedChat([plan("retrieve")], ["A cyclist rides past [0]."]))
    graph = client.app.state.vidagent.agent._graph
    graph.get_state = lambda config, **kw: type("Lagging", (), {"values": {}})()  # nothing written yet
    video = upload(client, sample_video("bikes")).json()["id"]
    answer = dict(ask(client, video, "When does the cyclist pass?"))["answer"]
    assert [row["tool"] for row in answer["evidence"]] == ["retrieve"] and answer["evidence"][0]["id"] == 0


def test_a_question_cut_off_by_a_dying_server_is_marked_interrupted(tmp_path: Path) -> None:
    """Server A dies in the middle of a turn (here: its tool never returns while server B, started on
    the same store, serves the session): B shows the question with ``interrupted``; A, still
    answering, does not; once an answer lands, no mark."""
    started, release = threading.Event(), threading.Event()

    def stuck_retrieve(ctx: ToolContext, video: Path, args: QueryInput) -> Evidence:
        started.set()
        release.wait(60)
        return fake_retrieve(ctx, video, args)

    client = make_client(tmp_path)  # server B, after the restart
    video = upload(client, sample_video("bikes")).json()["id"]
    session = client.post(f"/api/videos/{video}/sessions").json()["session"]
    path = Path(client.app.state.vidagent.video(video)["path"])
    dying = VideoAgent(
        ToolContext(hub=None, store=Store(tmp_path / "store.sqlite")),
        ScriptedChat([plan("retrieve")], ["A cyclist rides past [0]."]),
        registry=ToolRegistry({"retrieve": ToolSpec("retrieve", "find moments", QueryInput, stuck_retrieve)}),
    )
    turn = threading.Thread(
        target=lambda: list(dying.stream(path, "When does the cyclist pass?", session=session))
    )
    turn.start()
    try:
        assert started.wait(30)
        deadline = time.monotonic() + 10
        while not (messages := client.get(f"/api/sessions/{session}").json()["messages"]):
            assert time.monotonic() < deadline, "the question's checkpoint never landed"
            time.sleep(0.05)
        assert messages == [{"role": "user", "content": "When does the cyclist pass?", "interrupted": True}]
        assert dying.history(session) == [{"role": "user", "content": "When does the cyclist pass?"}]
    finally:
        release.set()
        turn.join(30)
    answered = client.get(f"/api/sessions/{session}").json()["messages"]
    assert [m.get("interrupted") for m in answered] == [None, None] and answered[1]["cited"] == [0]


def test_sessions_are_isolated_and_bound_to_their_video(tmp_path: Path) -> None:
    llm = ScriptedChat([plan("retrieve"), plan("segment", "the red bike")], ["one [0]", "two [0]"])
    client = make_client(tmp_path, llm)
    bikes = upload(client, sample_video("bikes")).json()["id"]
    first = client.post(f"/api/videos/{bikes}/sessions").json()["session"]
    second = client.post(f"/api/videos/{bikes}/sessions").json()["session"]
    assert first != second
    ask(client, bikes, "first question", first)
    ask(client, bikes, "second question", second)

    one, two = client.get(f"/api/sessions/{first}").json(), client.get(f"/api/sessions/{second}").json()
    assert [m["content"] for m in one["messages"]] == ["first question", "one [0]"]
    assert [m["content"] for m in two["messages"]] == ["second question", "two [0]"]
    assert [r["tool"] for r in one["evidence"]] == ["retrieve"]
    assert [r["tool"] for r in two["evidence"]] == ["segment"]
    assert one["messages"][1]["cited"] == [0]

    carphone = upload(client, sample_video("carphone")).json()["id"]
    refused = client.post("/api/chat", json={"video": carphone, "session": first, "question": "hi"})
    assert refused.status_code == 409
    assert client.get(f"/api/sessions/{'0' * 32}").status_code == 404
    assert (
        client.post("/api/chat", json={"video": bikes, "session": "0" * 32, "question": "x"}).status_code
        == 404
    )


def test_thumbnail_is_a_jpeg_with_the_box_and_mask_drawn(tmp_path: Path) -> None:
    client = make_client(tmp_path, ScriptedChat([plan("segment")], ["there [0]"]))
    video = upload(client, sample_video("bikes")).json()["id"]
    session = ask(client, video, "Where is the bike?")[0][1]["session"]
    response = client.get(f"/api/sessions/{session}/evidence/0/thumbnail")
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    image = np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB")).astype(int)
    assert image.shape == (272, 640, 3)
    red = image[int(BOX[1]) + 20 : int(BOX[3]) - 20, int(BOX[0])]  # the box's left edge
    assert (red[:, 0] > 180).all() and (red[:, 1] < 130).all()
    with Video.open(sample_video("bikes")) as v:
        plain = v.sample_at([5.0]).frames[0].astype(int)
    tinted = (image[100:180, 260:380, 2] - plain[100:180, 260:380, 2]).mean()  # inside the mask: bluer
    assert tinted > 30
    assert client.get(f"/api/sessions/{session}/evidence/7/thumbnail").status_code == 404


def test_client_paths_are_never_opened(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    client = make_client(tmp_path)
    secret = sample_video("carphone")
    opened: list[str] = []
    real_open = Video.open.__func__  # type: ignore[attr-defined]

    def recording(cls: type[Video], path: str | Path, backend: str = "auto") -> Video:
        opened.append(str(Path(path).resolve()))
        return real_open(cls, path, backend)

    monkeypatch.setattr(Video, "open", classmethod(recording))
    for video in (str(secret), "../" * 8 + "etc/passwd", secret.name):
        response = client.post("/api/chat", json={"video": video, "question": "what is this?"})
        assert response.status_code in (404, 422), response.text
        assert client.post(f"/api/videos/{video}/sessions").status_code == 404
    assert (
        client.post("/api/chat", json={"video": "a" * 64, "question": "q", "path": str(secret)}).status_code
        == 422
    )
    assert client.get("/api/videos/..%2F..%2Fetc%2Fpasswd/file").status_code == 404
    assert str(secret.resolve()) not in opened and not any("passwd" in p for p in opened)


def raw_upload(client: TestClient, path: Path, disposition: bytes) -> Any:
    """A multipart body written by hand, so the file name's bytes are exactly what a browser sends."""
    boundary = b"vidagent-boundary"
    body = (
        b"--"
        + boundary
        + b'\r\nContent-Disposition: form-data; name="file"; '
        + disposition
        + b"\r\nContent-Type: video/mp4\r\n\r\n"
        + path.read_bytes()
        + b"\r\n--"
        + boundary
        + b"--\r\n"
    )
    return client.post(
        "/api/videos",
        content=body,
        headers={"Content-Type": "multipart/form-data; boundary=" + boundary.decode()},
    )


@pytest.mark.parametrize("name", ["日本 video.mp4", "emoji 🚲.mp4", "vidéo ünï.mp4", "plain name.mp4"])
def test_utf8_file_names_keep_their_names(tmp_path: Path, name: str) -> None:
    client = make_client(tmp_path)
    response = raw_upload(client, sample_video("carphone"), b'filename="' + name.encode() + b'"')
    assert response.status_code == 201, response.text
    assert response.json()["name"] == name
    assert [v["name"] for v in client.get("/api/videos").json()] == [name]


def test_rfc5987_file_names_and_a_file_indexed_before_its_upload(tmp_path: Path) -> None:
    from urllib.parse import quote

    client = make_client(tmp_path)
    carphone = sample_video("carphone")
    Store(tmp_path / "store.sqlite").add_video(
        hashlib.sha256(carphone.read_bytes()).hexdigest(),
        carphone,
        {"duration": 4.0, "width": 176, "height": 144, "fps": 29.97},
    )
    disposition = b"filename=\"fallback.mp4\"; filename*=UTF-8''" + quote("日本 clip.mp4").encode()
    response = raw_upload(client, carphone, disposition)
    assert response.status_code == 201, response.text  # stored as an upload, under the client's name
    assert [v["name"] for v in client.get("/api/videos").json()] == ["日本 clip.mp4"]
