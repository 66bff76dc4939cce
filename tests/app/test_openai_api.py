"""The OpenAI-compatible endpoint (`vidagent.app.openai_api`) driven by the official `openai` client.

In-process (a scripted planner, fake tools, no key) for exact answers and every error; then
against a real ``vidagent serve --profile tiny`` with an API key (tiny weights: the plumbing,
not the words).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.app.test_server import make_client, plan, upload
from tests.doubles import ScriptedChat
from vidagent.media.sample_videos import sample_video


def scripted(tmp_path: Path, plans: list[dict], answers: list[str]) -> tuple[Any, Any, str]:
    """(OpenAI client over the in-process app, its scripted planner, the uploaded bikes video's id)."""
    llm = ScriptedChat(plans, answers)
    http = make_client(tmp_path, llm)
    video = upload(http, sample_video("bikes")).json()["id"]
    client = openai.OpenAI(base_url="http://127.0.0.1/v1", api_key="unused", http_client=http, max_retries=0)
    return client, llm, video


def question(video: str, text: str = "When does the cyclist pass?") -> list[dict[str, Any]]:
    return [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": text},
                {"type": "video_url", "video_url": {"url": f"vidagent://videos/{video}"}},
            ],
        }
    ]


def test_models_and_an_answer_with_its_cited_evidence(tmp_path: Path) -> None:
    client, _, video = scripted(tmp_path, [plan("retrieve")], ["A cyclist rides past [0]."])
    assert [m.id for m in client.models.list().data] == ["vidagent"]  # no hub here: no profile name
    reply = client.chat.completions.create(model="vidagent", messages=question(video), temperature=0.2)
    assert reply.object == "chat.completion" and reply.id.startswith("chatcmpl-")
    assert reply.choices[0].message.role == "assistant" and reply.choices[0].finish_reason == "stop"
    assert reply.choices[0].message.content == "A cyclist rides past [0]."
    extension = reply.vidagent  # the documented extension field
    assert extension["evidence"] == [
        {"id": 0, "tool": "retrieve", "start": 2.0, "end": 4.0, "score": 0.8, "data": {"best_t": 3.0}}
    ]
    assert len(extension["session"]) == 32 and extension["tool_calls"] == 1
    assert reply.usage.total_tokens >= 0


def test_streaming_sends_steps_then_the_answer_then_the_evidence(tmp_path: Path) -> None:
    client, _, video = scripted(tmp_path, [plan("retrieve")], ["A cyclist rides past [0]."])
    chunks = list(
        client.chat.completions.create(
            model="vidagent", messages=question(video), stream=True, stream_options={"include_usage": True}
        )
    )
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    steps = [
        c.vidagent["event"]["type"] for c in chunks if "event" in (c.model_extra or {}).get("vidagent", {})
    ]
    assert steps == ["plan", "tool_call", "tool_result"]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "A cyclist rides past [0]."
    final = [c for c in chunks if c.choices and c.choices[0].finish_reason == "stop"]
    assert len(final) == 1 and final[0].vidagent["evidence"][0]["tool"] == "retrieve"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None  # include_usage


def test_earlier_messages_are_the_chat_history_and_session_continues(tmp_path: Path) -> None:
    plans = [plan("retrieve"), {"thought": "enough", "calls": [], "done": True}]
    client, llm, video = scripted(tmp_path, plans, ["First [0].", "Second [0]."])
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Is there a bike?"},
        {"role": "assistant", "content": "Yes, a red one."},
        *question(video, "When does it pass?"),
    ]
    first = client.chat.completions.create(model="vidagent", messages=messages)
    planner = llm.prompts[0][-1]["content"]
    assert "user: Is there a bike?" in planner and "assistant: Yes, a red one." in planner
    assert "You are terse" not in json.dumps(llm.prompts[0])  # system messages are not passed on
    session = first.vidagent["session"]
    again = client.chat.completions.create(
        model="vidagent",
        messages=question(video, "And after that?"),
        extra_body={"session": session},
    )
    assert again.vidagent["session"] == session
    assert again.vidagent["evidence"][0]["id"] == 0  # the first turn's row, still in the session


@pytest.mark.parametrize(
    ("change", "error", "status", "needle"),
    [
        ({"video": "0" * 64}, "NotFoundError", 404, "no such video"),
        ({"url": "/etc/passwd"}, "BadRequestError", 400, "never opened"),
        ({"url": "file:///etc/passwd"}, "BadRequestError", 400, "never opened"),
        ({"url": "https://example.com/v.mp4"}, "BadRequestError", 400, "never opened"),
        ({"model": "gpt-4o"}, "NotFoundError", 404, "does not exist"),
        ({"options": ["only one"]}, "BadRequestError", 400, "options"),
        ({"messages": []}, "BadRequestError", 400, "messages"),
        ({"last": "assistant"}, "BadRequestError", 400, "last message"),
        ({"part": {"type": "image_url", "image_url": {"url": "x"}}}, "BadRequestError", 400, "not supported"),
        ({"session": "f" * 32}, "NotFoundError", 404, "no such session"),
        ({"no_video": True}, "BadRequestError", 400, "no video"),
    ],
)
def test_bad_input_is_an_openai_error(
    tmp_path: Path, change: dict, error: str, status: int, needle: str
) -> None:
    client, _, video = scripted(tmp_path, [plan("retrieve")], ["x"])
    messages = question(change.get("video", video))
    if "url" in change:
        messages[0]["content"][1]["video_url"]["url"] = change["url"]
    if "part" in change:
        messages[0]["content"].append(change["part"])
    if change.get("no_video"):
        messages[0]["content"] = messages[0]["content"][:1]
    if "last" in change:
        messages.append({"role": change["last"], "content": "hm"})
    messages = change.get("messages", messages)
    extra = {k: change[k] for k in ("options", "session") if k in change}
    with pytest.raises(getattr(openai, error)) as caught:
        client.chat.completions.create(
            model=change.get("model", "vidagent"), messages=messages, extra_body=extra
        )
    assert caught.value.status_code == status
    body = caught.value.body
    assert needle in body["message"] and body["type"] == "invalid_request_error"
    assert "Traceback" not in json.dumps(body)


# --- a real server, with an API key --------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(base URL, uploaded video id) of `vidagent serve --profile tiny` with VIDAGENT_API_KEY set."""
    root = tmp_path_factory.mktemp("serve")
    port, key = _free_port(), "test-key-123"
    env = {**os.environ, "VIDAGENT_API_KEY": key}
    process = subprocess.Popen(
        [sys.executable, "-m", "vidagent.app.cli", "serve", "--profile", "tiny", "--port", str(port),
         "--store", str(root / "store.sqlite")],
        env=env, stdout=subprocess.DEVNULL, stderr=(root / "serve.log").open("w"),
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if (
                    httpx.get(f"{base}/v1/models", headers={"Authorization": f"Bearer {key}"}).status_code
                    == 200
                ):
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail("vidagent serve did not start:\n" + (root / "serve.log").read_text()[-3000:])
            time.sleep(0.5)
        with sample_video("bikes").open("rb") as handle:
            response = httpx.post(
                f"{base}/api/videos", files={"file": ("bikes.mp4", handle, "video/mp4")},
                headers={"Authorization": f"Bearer {key}"}, timeout=60,
            )  # fmt: skip
        assert response.status_code == 201, response.text
        yield base, response.json()["id"]
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.slow
def test_a_real_server_answers_the_official_client_with_its_key(served: tuple[str, str]) -> None:
    base, video = served
    client = openai.OpenAI(base_url=f"{base}/v1", api_key="test-key-123", max_retries=0, timeout=300)
    assert {m.id for m in client.models.list().data} == {"vidagent", "vidagent:tiny"}
    reply = client.chat.completions.create(model="vidagent:tiny", messages=question(video, "What is shown?"))
    assert isinstance(reply.choices[0].message.content, str) and reply.choices[0].message.content
    assert isinstance(reply.vidagent["evidence"], list) and len(reply.vidagent["session"]) == 32
    chunks = list(client.chat.completions.create(model="vidagent", messages=question(video), stream=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop" and "evidence" in chunks[-1].vidagent
    assert "".join(c.choices[0].delta.content or "" for c in chunks)  # the answer text came through


@pytest.mark.slow
def test_a_real_server_refuses_a_missing_or_wrong_key_and_bad_videos(served: tuple[str, str]) -> None:
    base, video = served
    for key in ("", "wrong"):
        client = openai.OpenAI(base_url=f"{base}/v1", api_key=key or "x", max_retries=0)
        if not key:  # no Authorization header at all
            client = openai.OpenAI(
                base_url=f"{base}/v1", api_key="x", max_retries=0, default_headers={"Authorization": ""}
            )
        with pytest.raises(openai.AuthenticationError) as caught:
            client.chat.completions.create(model="vidagent", messages=question(video))
        assert caught.value.body["code"] == "invalid_api_key"
    client = openai.OpenAI(base_url=f"{base}/v1", api_key="test-key-123", max_retries=0)
    messages = question(video)
    messages[0]["content"][1]["video_url"]["url"] = str(sample_video("bikes"))  # a server path
    with pytest.raises(openai.BadRequestError, match="never opened"):
        client.chat.completions.create(model="vidagent", messages=messages)
    with pytest.raises(openai.NotFoundError, match="no such video"):
        client.chat.completions.create(model="vidagent", messages=question("a" * 64))
