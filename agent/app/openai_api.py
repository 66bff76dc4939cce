"""An OpenAI-compatible chat endpoint on ``vidagent serve``: ``/v1/models`` and ``/v1/chat/completions``.

Any client of the OpenAI chat-completions API (the ``openai`` Python package, chat front ends)
can ask vidagent about a video it uploaded with ``POST /api/videos``::

    client = OpenAI(base_url="http://127.0.0.1:8000/v1", api_key=KEY or "unused")
    reply = client.chat.completions.create(model="vidagent", messages=[{"role": "user", "content": [
        {"type": "text", "text": "When does the cyclist fall?"},
        {"type": "video_url", "video_url": {"url": "vidagent://videos/<id>"}},
    ]}])
    reply.choices[0].message.content, reply.vidagent["evidence"]

- **Model**: ``vidagent`` or ``vidagent:<profile>`` (the profile the server runs; ``/v1/models``
  lists both). Sampling settings (``temperature``, ``max_tokens``, ...) are accepted and ignored:
  the agent's budgets decide.
- **The video**: a ``video_url`` content part whose URL is ``vidagent://videos/<id>`` or the bare
  id, or the extension field ``video`` (``extra_body={"video": id}``). Only uploaded ids resolve:
  a server path, a ``file:`` or ``http(s):`` URL is refused, never opened or fetched. One video
  per conversation.
- **The question** is the text of the last message, which must be the user's. Earlier user and
  assistant messages become the chat history of a new session (system messages are ignored), so
  clients that resend the conversation get follow-ups. The extension field ``session`` (returned
  in every reply) continues a server session instead, with its evidence. ``options`` (extension):
  multiple choice, answered by option likelihoods.
- **The answer**: ``choices[0].message.content`` is the answer text with its ``[id]`` citations.
  The extension object ``vidagent`` carries ``session``, the cited ``evidence`` records (each with
  its ``id``: spans, boxes, masks, texts), ``confidence``, ``choice``, ``stop_reason``,
  ``tool_calls`` and ``seconds``. ``usage.total_tokens`` counts every token the agent's LLM read
  or wrote over all its steps (the prompt/completion split is not tracked: both are 0).
- **Streaming** (``stream: true``): chat-completion chunks; the first has the role, every agent
  step (``plan``, ``tool_call``, ``tool_result``) comes as an empty delta with the step in the
  extension field ``vidagent.event``, then the answer text as one content delta, then a chunk
  with ``finish_reason: "stop"`` and the ``vidagent`` object above, then ``[DONE]``.
  ``stream_options.include_usage`` adds the usage chunk. A failure after the stream began is an
  ``error`` object in the stream, as OpenAI sends it.
- **Errors** use OpenAI's form, ``{"error": {"message", "type", "param", "code"}}``: 400
  ``invalid_request_error`` (bad body, no question, a video that is not an uploaded id), 401
  ``invalid_api_key``, 404 ``model_not_found`` / ``video_not_found`` / ``session_not_found``, 409
  a session still answering or bound to another video, 500 ``server_error`` (see the server log).
  Questions beyond the server's ``max_concurrent_chats`` wait for a slot, as on ``/api/chat``.
- **Keys**: the same as ``/api``: with ``VIDAGENT_API_KEY`` set, ``Authorization: Bearer KEY``
  (what OpenAI clients send); without one, loopback hosts only.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

if TYPE_CHECKING:
    from vidagent.app.server import ChatRun, _Server

PREFIX = "/v1"
MODEL = "vidagent"
VIDEO_URL = re.compile(r"^(?:vidagent://videos/)?([0-9a-f]{64})$")
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    404: "invalid_request_error",
    409: "invalid_request_error",
    500: "server_error",
}


class OpenAIError(Exception):
    """An error in OpenAI's form: HTTP ``status``, ``message``, ``param`` and ``code``."""

    def __init__(
        self, status: int, message: str, *, param: str | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code

    def body(self) -> dict[str, Any]:
        kind = ERROR_TYPES.get(self.status, "invalid_request_error")
        return {"error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if self.status == 401 else None
        return JSONResponse(self.body(), status_code=self.status, headers=headers)


# --- the request -------------------------------------------------------------------------------------
class VideoURL(BaseModel):
    url: str = Field(max_length=300)


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None
    video_url: VideoURL | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """OpenAI's request body; sampling fields are accepted (extra) and ignored."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(max_length=100)
    messages: list[ChatMessage] = Field(min_length=1, max_length=200)
    stream: bool = False
    stream_options: StreamOptions | None = None
    video: str | None = Field(default=None, max_length=300, description="Extension: an uploaded video id.")
    session: str | None = Field(default=None, max_length=32, description="Extension: continue this session.")
    options: list[str] | None = Field(
        default=None, min_length=2, max_length=10, description="Extension: multiple-choice options."
    )


def _text(message: ChatMessage) -> str:
    if message.content is None:
        return ""
    if isinstance(message.content, str):
        return message.content
    return "\n".join(part.text or "" for part in message.content if part.type == "text").strip()


def _video_refs(body: ChatCompletionRequest) -> list[tuple[str, str]]:
    """Every video the request names: (reference, param), in order."""
    refs = [(body.video, "video")] if body.video else []
    for i, message in enumerate(body.messages):
        if isinstance(message.content, list):
            for j, part in enumerate(message.content):
                param = f"messages[{i}].content[{j}]"
                if part.type == "video_url":
                    if part.video_url is None:
                        raise OpenAIError(400, "a video_url part needs {'url': ...}", param=param)
                    refs.append((part.video_url.url, param))
                elif part.type != "text":
                    raise OpenAIError(
                        400,
                        f"content parts of type {part.type!r} are not supported: send text and one video_url "
                        "part naming an uploaded video",
                        param=param,
                    )
    return refs


def _video_id(body: ChatCompletionRequest) -> str:
    refs = _video_refs(body)
    if not refs:
        raise OpenAIError(
            400,
            "no video: add a video_url part (url vidagent://videos/<id>) or the field 'video' naming a video "
            "uploaded with POST /api/videos",
            param="messages",
            code="video_required",
        )
    ids = []
    for ref, param in refs:
        match = VIDEO_URL.fullmatch(ref.strip())
        if match is None:
            raise OpenAIError(
                400,
                "a video must be an uploaded video's id (vidagent://videos/<id> or the id itself, from POST "
                "/api/videos); server paths and outside URLs are never opened",
                param=param,
                code="invalid_video",
            )
        ids.append(match.group(1))
    if len(set(ids)) > 1:
        raise OpenAIError(400, "one video per conversation", param=refs[1][1], code="invalid_video")
    return ids[0]


def _question_and_history(body: ChatCompletionRequest) -> tuple[str, list[dict[str, str]]]:
    last = body.messages[-1]
    question = _text(last)
    if last.role != "user" or not question:
        raise OpenAIError(
            400,
            "the last message must be the user's question, with text",
            param=f"messages[{len(body.messages) - 1}]",
        )
    if len(question) > 2000:
        raise OpenAIError(400, "the question is longer than 2000 characters", param="messages")
    history = [
        {"role": m.role, "content": text}
        for m in body.messages[:-1]
        if m.role in ("user", "assistant") and (text := _text(m))
    ]
    return question, history


# --- the routes ----------------------------------------------------------------------------------------
def models_of(server: _Server) -> list[str]:
    """``vidagent`` and ``vidagent:<profile>``: the names a request may use."""
    hub = server.agent.ctx.hub
    return [MODEL, f"{MODEL}:{hub.profile.name}"] if hub is not None else [MODEL]


def openai_router(server: _Server) -> APIRouter:
    """The ``/v1`` routes over the app's shared state (install :func:`install_error_handlers` too)."""
    from vidagent.app.server import ChatRequest, ChatRun

    router = APIRouter(prefix=PREFIX, tags=["openai"])

    def authorise(request: Request) -> None:
        if not server.key_ok(request):
            raise OpenAIError(
                401, "a valid API key is required (Authorization: Bearer KEY)", code="invalid_api_key"
            )

    @router.get("/models", summary="The models this server answers as (OpenAI's list form)")
    def models(request: Request) -> dict[str, Any]:
        authorise(request)
        created = int(server.started)
        return {
            "object": "list",
            "data": [
                {"id": m, "object": "model", "created": created, "owned_by": "vidagent"}
                for m in models_of(server)
            ],
        }

    @router.post(
        "/chat/completions", summary="Answer the last user message about a video (OpenAI-compatible)"
    )
    async def chat_completions(body: ChatCompletionRequest, request: Request) -> Any:
        authorise(request)
        if body.model not in models_of(server):
            raise OpenAIError(
                404,
                f"the model {body.model!r} does not exist here: use one of {models_of(server)}",
                param="model",
                code="model_not_found",
            )
        video_id = _video_id(body)
        question, history = _question_and_history(body)
        record = _http(lambda: server.video(video_id), param="video", code="video_not_found")
        if body.session:
            owner = _http(
                lambda: server.session_video(body.session or ""), param="session", code="session_not_found"
            )
            if owner != video_id:
                raise OpenAIError(409, "this session belongs to another video", param="session")
            session, history = body.session, []
        else:
            session = server.sessions.create(video_id)
        _http(lambda: server.claim(session), param="session")
        chat = ChatRequest(video=video_id, session=session, question=question, options=body.options)
        run = ChatRun(server, Path(record["path"]), chat, session, history)
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            return StreamingResponse(
                _chunks(run, completion_id, body.model, include_usage),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "X-Session-Id": session},
            )
        final = await _final(run)
        return JSONResponse(_completion(final, completion_id, body.model), headers={"X-Session-Id": session})

    return router


def _http(call: Any, *, param: str | None = None, code: str | None = None) -> Any:
    """``call()`` with the server's HTTPExceptions turned into OpenAI errors."""
    try:
        return call()
    except HTTPException as exc:
        raise OpenAIError(exc.status_code, str(exc.detail), param=param, code=code) from None


async def _final(run: ChatRun) -> dict[str, Any]:
    """The answer event of ``run`` (an OpenAIError when it ends in an error or without one)."""
    final: dict[str, Any] | None = None
    async for event in run.events():
        if event.get("type") in ("answer", "error"):
            final = event
    if final is None or final["type"] == "error":
        message = final["message"] if final else "the agent stopped without an answer"
        raise OpenAIError(_status(final), message)
    return final


def _status(event: dict[str, Any] | None) -> int:
    """400 for an error the question or its video caused, 500 for the server's own."""
    from vidagent.app.server import INTERNAL_ERROR

    return 500 if event is None or event.get("message") == INTERNAL_ERROR else 400


def _extension(final: dict[str, Any], session: str) -> dict[str, Any]:
    used = final.get("used", {})
    return {
        "session": session,
        "evidence": final.get("evidence", []),
        "confidence": final.get("confidence"),
        "choice": final.get("choice"),
        "stop_reason": final.get("stop_reason"),
        "tool_calls": int(used.get("tool_calls", 0)),
        "seconds": final.get("seconds"),
    }


def _usage(final: dict[str, Any]) -> dict[str, int]:
    tokens = int(final.get("used", {}).get("tokens", 0))
    return {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": tokens}


def _completion(final: dict[str, Any], completion_id: str, model: str) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": final["text"]}, "finish_reason": "stop"}
        ],
        "usage": _usage(final),
        "vidagent": _extension(final, final["session"]),
    }


async def _chunks(run: ChatRun, completion_id: str, model: str, include_usage: bool) -> Any:
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        body = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **extra,
        }
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    yield chunk({"role": "assistant", "content": ""}, vidagent={"session": run.session})
    final = None
    async for event in run.events():
        kind = event.get("type")
        if kind == "error":
            error = OpenAIError(_status(event), event.get("message", ""))
            yield f"data: {json.dumps(error.body())}\n\n"
            return
        if kind == "answer":
            final = event
            continue
        yield chunk({}, vidagent={"event": event})
    if final is None:
        yield f"data: {json.dumps(OpenAIError(500, 'the agent stopped without an answer').body())}\n\n"
        return
    yield chunk({"content": final["text"]})
    yield chunk({}, "stop", vidagent=_extension(final, run.session))
    if include_usage:
        body = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [],
            "usage": _usage(final),
        }
        yield f"data: {json.dumps(body)}\n\n"
    yield "data: [DONE]\n\n"


def install_error_handlers(app: Any) -> None:
    """Errors under ``/v1`` in OpenAI's form; elsewhere FastAPI's own."""
    from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler

    @app.exception_handler(OpenAIError)
    async def openai_error(request: Request, exc: OpenAIError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def invalid_body(request: Request, exc: RequestValidationError) -> Any:
        if not request.url.path.startswith(PREFIX + "/"):
            return await request_validation_exception_handler(request, exc)
        first = exc.errors()[0] if exc.errors() else {}
        where = [str(p) for p in first.get("loc", ()) if p != "body"]
        param = ".".join(where) or None
        message = (
            f"{param}: {first.get('msg', 'invalid request')}"
            if param
            else first.get("msg", "invalid request")
        )
        return OpenAIError(400, message, param=param).response()

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Any:
        if not request.url.path.startswith(PREFIX + "/"):
            return await http_exception_handler(request, exc)
        return OpenAIError(exc.status_code, str(exc.detail)).response()
