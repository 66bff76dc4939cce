"""The MCP server: ``build_server(agent, allowed=[...])``, run by ``vidagent mcp`` (stdio, or streamable
HTTP on loopback with ``--http``), for clients that speak the Model Context Protocol.

Built on the official ``mcp`` SDK's lowlevel ``Server``, so each tool's input schema is exactly its
pydantic model's JSON schema (plus a required ``video``), as the planner sees it:

- Tools: every tool of the agent's registry, answering ``{"evidence": [records]}`` as structured
  content (``Evidence.to_records``) and a short text rendering (``Evidence.to_prompt``); ``ask``
  (video, question, options?, session?) runs the whole agent and answers the text, its cited
  evidence records and the session id, with one progress notification per streamed step; ``index``
  (video) indexes frames, speech and on-screen text, with progress notifications while it embeds.
- Resources: each video of the store as ``vidagent://videos/<id>`` (JSON: id, file name, duration,
  whether it is indexed, its metadata), also reachable through the template
  ``vidagent://videos/{id}``.
- Errors: a call that fails on its input (an unknown video, a path not allowed, bad arguments, a
  broken video, a model that cannot load) answers a tool result with ``isError`` and one line, which
  a client's model can act on; an unknown tool or resource is a JSON-RPC error (invalid params).
  Neither carries a traceback: an unexpected exception is logged on stderr and answered as an
  internal error.

Security: a ``video`` argument is resolved by :func:`resolve_video` alone: a store id (64 hex
characters, a unique prefix of 12 or more, or ``vidagent://videos/<id>``), else a path that, with
symlinks resolved, is a file under one of the directories the user allowed on the command line
(``--allow DIR``); nothing else is opened. Without allowed directories only ids are accepted.
Resources and error messages name a video's file by its name, never by its server path.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread
import mcp_types as types
from mcp.server import Server
from mcp.server.context import ServerRequestContext
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vidagent import __version__
from vidagent.agent.api import Answer, VideoAgent, index_video
from vidagent.agent.registry import CallError
from vidagent.core.errors import VidagentError
from vidagent.core.evidence import Evidence
from vidagent.media.index import sampling_key
from vidagent.media.store import Store

log = logging.getLogger(__name__)

RESOURCE_PREFIX = "vidagent://videos/"
VIDEO_ID = re.compile(r"[0-9a-f]{64}")
VIDEO_ID_PREFIX = re.compile(r"[0-9a-f]{12,63}")  # what the CLI prints: the first 12
SERVER_TOOLS = ("ask", "index")
TEXT_ROWS = 20  # evidence rows in a tool result's text rendering (all of them are in the structured content)

VIDEO_RULE = (
    "a video id (a vidagent://videos/<id> resource, the bare id, or a unique prefix of 12 or more "
    "characters) or the path of a video file under a directory this server allows"
)
VIDEO_DESCRIPTION = f"The video: {VIDEO_RULE}."
EVIDENCE_ROW = {
    "type": "object",
    "description": "One finding: a time span in seconds, a score, and optional frame, box, track, mask, text.",
    "properties": {
        "tool": {"type": "string"},
        "start": {"type": "number"},
        "end": {"type": "number"},
        "score": {"type": "number"},
    },
    "required": ["tool", "start", "end", "score"],
}
EVIDENCE_OUTPUT = {
    "type": "object",
    "properties": {"evidence": {"type": "array", "items": EVIDENCE_ROW}},
    "required": ["evidence"],
}
ASK_OUTPUT = {
    "type": "object",
    "properties": {
        "text": {"type": "string", "description": "The answer; it cites evidence rows as [id]."},
        "choice": {
            "type": ["integer", "null"],
            "description": "Index of the chosen option (multiple choice).",
        },
        "confidence": {"type": "number"},
        "evidence": {
            "type": "array",
            "items": EVIDENCE_ROW,
            "description": "The cited rows, each with its id.",
        },
        "session": {"type": "string", "description": "Pass it back as `session` to ask a follow-up."},
        "stop_reason": {"type": ["string", "null"]},
        "seconds": {"type": "number"},
        "tool_calls": {"type": "integer"},
    },
    "required": ["text", "evidence", "session"],
}
INDEX_OUTPUT = {
    "type": "object",
    "properties": {
        "video": {"type": "string", "description": "The video's id (its resource: vidagent://videos/<id>)."},
        "frames_total": {"type": "integer"},
        "frames_added": {"type": "integer"},
        "model_id": {"type": "string"},
        "texts": {
            "type": "object",
            "description": "Speech segments and on-screen text lines stored, per tool.",
        },
        "seconds": {"type": "number"},
    },
    "required": ["video", "frames_total", "frames_added"],
}


class AskInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    video: str = Field(min_length=1, max_length=4096, description=VIDEO_DESCRIPTION)
    question: str = Field(min_length=1, max_length=4000, description="The question about the video.")
    options: list[str] | None = Field(
        default=None,
        min_length=2,
        max_length=26,
        description="Multiple-choice options (two or more); the answer picks one of them.",
    )
    session: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="Continue this chat session (the `session` of an earlier answer about the same video).",
    )


class IndexInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    video: str = Field(min_length=1, max_length=4096, description=VIDEO_DESCRIPTION)
    speech: bool = Field(default=True, description="Also transcribe the audio track.")
    text: bool = Field(default=True, description="Also read the on-screen text.")


class VideoNotAllowed(VidagentError):
    """A ``video`` argument that is neither a known video id nor a file under an allowed directory."""


class ToolInputError(VidagentError):
    """Arguments a tool cannot take (missing, unknown or invalid ones)."""


def allowed_directories(directories: Sequence[str | Path]) -> list[Path]:
    """The ``--allow`` directories, resolved (symlinks followed); VidagentError for one that is not a
    directory."""
    resolved = []
    for directory in directories:
        path = Path(directory).expanduser()
        if not path.is_dir():
            raise VidagentError(f"--allow {directory}: not a directory")
        resolved.append(path.resolve())
    return resolved


def resolve_video(value: str, store: Store, allowed: Sequence[Path]) -> Path:
    """The file a ``video`` argument names: a store id (64 hex characters, a unique prefix of 12 or
    more, or ``vidagent://videos/<id>``) gives that video's path; else a path that, resolved with its
    symlinks (relative ones against each allowed directory), is a file under one of the ``allowed``
    directories (resolved ones: :func:`allowed_directories`). Anything else raises VideoNotAllowed,
    naming the rule; whether a file outside the allowed directories exists is never revealed."""
    text = value.strip()
    uri = text.startswith(RESOURCE_PREFIX)
    key = text.removeprefix(RESOURCE_PREFIX).lower()
    record = None
    if VIDEO_ID.fullmatch(key):
        record = store.video(key)
    elif VIDEO_ID_PREFIX.fullmatch(key):
        matches = [v for v in store.videos() if v["id"].startswith(key)]
        if len(matches) > 1:
            raise VideoNotAllowed(
                f"the video id prefix {key!r} matches {len(matches)} videos: give more of it"
            )
        record = matches[0] if matches else None
    if record is not None:
        path = Path(record["path"])
        if not path.is_file():
            raise VideoNotAllowed(
                f"video {record['id'][:12]} is in the store but its file {path.name!r} is gone"
            )
        return path
    shown = repr(value if len(value) <= 200 else value[:200] + "…")
    if uri:
        raise VideoNotAllowed(f"{shown}: no such video (the vidagent://videos resources list them)")
    if allowed:
        for path in _candidates(text, allowed):
            try:
                real = path.resolve(strict=True)
            except (OSError, RuntimeError, ValueError):  # missing, a symlink loop, a NUL byte
                continue
            if real.is_file() and any(real.is_relative_to(root) for root in allowed):
                return real
        raise VideoNotAllowed(
            f"{shown} is not a known video id, and not a file under an allowed directory (--allow DIR)"
        )
    raise VideoNotAllowed(
        f"{shown} is not a known video id (this server takes video ids only; "
        "start it with --allow DIR to let it open the video files under DIR)"
    )


def _candidates(text: str, allowed: Sequence[Path]) -> list[Path]:
    """Where a path argument may point: itself if absolute, else under each allowed directory."""
    try:
        path = Path(text).expanduser()
    except RuntimeError:  # ~user without a home
        return []
    return [path] if path.is_absolute() else [root / path for root in allowed]


def public(message: str, path: Path) -> str:
    """An error message naming ``path`` by its file name, without the server's directories."""
    return message.replace(str(path), path.name)


class _Handlers:
    """The request handlers of one server: one agent, its store, the allowed directories."""

    def __init__(self, agent: VideoAgent, allowed: Sequence[Path]) -> None:
        clash = set(SERVER_TOOLS) & set(agent.registry.tools)
        if clash:
            raise ValueError(f"registry tools named like the server's own: {sorted(clash)}")
        self.agent = agent
        self.allowed = list(allowed)
        self._index_locks: dict[Path, threading.Lock] = {}
        self._answering: set[str] = set()  # sessions with a question running
        self._lock = threading.Lock()

    # --- tools --------------------------------------------------------------------------------
    async def list_tools(
        self, ctx: ServerRequestContext, params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        tools = [
            types.Tool(
                name=spec.name,
                description=spec.description,
                input_schema=tool_schema(spec.json_schema()),
                output_schema=EVIDENCE_OUTPUT,
            )
            for spec in self.agent.registry.tools.values()
        ]
        tools.append(
            types.Tool(
                name="ask",
                description="Answer a question about a video with the whole agent (it plans, calls the tools "
                "above, and cites the evidence it used as [id]); pass the answer's session to ask a follow-up.",
                input_schema=AskInput.model_json_schema(),
                output_schema=ASK_OUTPUT,
            )
        )
        tools.append(
            types.Tool(
                name="index",
                description="Index a video ahead of questions: sample and embed its frames, transcribe its "
                "speech and read its on-screen text (incremental: a video indexed before is quick).",
                input_schema=IndexInput.model_json_schema(),
                output_schema=INDEX_OUTPUT,
            )
        )
        return types.ListToolsResult(tools=tools)

    async def call_tool(
        self, ctx: ServerRequestContext, params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        name, arguments = params.name, dict(params.arguments or {})
        if name not in SERVER_TOOLS and name not in self.agent.registry.tools:
            raise MCPError(
                types.INVALID_PARAMS,
                f"unknown tool {name[:80]!r}; available: {', '.join([*self.agent.registry.tools, *SERVER_TOOLS])}",
            )
        try:
            if name == "ask":
                return await self._ask(ctx, arguments)
            if name == "index":
                return await self._index(ctx, arguments)
            return await self._tool(name, arguments)
        except (VidagentError, CallError) as exc:
            return _failed(str(exc))
        except Exception as exc:
            log.exception("MCP tool %s failed", name)
            return _failed(f"{name}: internal error ({type(exc).__name__}); the server's log has the details")

    def _video(self, value: str) -> Path:
        return resolve_video(value, self.agent.ctx.store, self.allowed)

    async def _tool(self, name: str, arguments: dict[str, Any]) -> types.CallToolResult:
        spec = self.agent.registry.tools[name]
        video = arguments.pop("video", None)
        if not isinstance(video, str) or not video.strip():
            raise ToolInputError(f"{name}: 'video' is required: {VIDEO_RULE}")
        unknown = sorted(set(arguments) - set(spec.input_model.model_fields))
        if unknown:
            raise ToolInputError(
                f"{name}: unknown argument(s) {', '.join(map(repr, unknown))}; it takes "
                + ", ".join(["video", *spec.input_model.model_fields])
            )
        call = self.agent.registry.validate({"tool": name, "args": arguments})  # CallError: one line
        path = await anyio.to_thread.run_sync(self._video, video)
        try:
            evidence = await anyio.to_thread.run_sync(lambda: spec(self.agent.ctx, path, **call.args))
        except VidagentError as exc:
            raise VidagentError(public(str(exc), path)) from None
        return types.CallToolResult(
            content=[types.TextContent(text=_evidence_text(name, evidence))],
            structured_content={"evidence": evidence.to_records()},
        )

    async def _ask(self, ctx: ServerRequestContext, arguments: dict[str, Any]) -> types.CallToolResult:
        args = _validated("ask", AskInput, arguments)
        path = await anyio.to_thread.run_sync(self._video, args.video)
        report = _reporter(ctx)

        def answer() -> Answer:
            events = []
            for event in self.agent.stream(path, args.question, args.options, session=args.session):
                events.append(event)
                report(len(events), None, _describe(event))
            return self.agent.answer_from(events[-1], args.question, events)

        with self._lock:
            if args.session in self._answering:
                raise ToolInputError(f"session {args.session} is still answering its previous question")
            if args.session is not None:
                self._answering.add(args.session)
        try:
            result = await anyio.to_thread.run_sync(answer)
        except VidagentError as exc:
            raise VidagentError(public(str(exc), path)) from None
        finally:
            with self._lock:
                self._answering.discard(args.session)
        structured = {
            "text": result.text,
            "choice": result.choice,
            "confidence": result.confidence,
            "evidence": result.evidence,
            "session": result.session,
            "stop_reason": result.stop_reason,
            "seconds": round(result.seconds, 3),
            "tool_calls": result.tool_calls,
        }
        cites = "; ".join(
            f"[{row['id']}] {row['tool']} {row['start']:.1f}-{row['end']:.1f} s" for row in result.evidence
        )
        text = f"{result.text}\n\n(confidence {result.confidence:.2f}; session {result.session}" + (
            f"; cites {cites})" if cites else ")"
        )
        return types.CallToolResult(content=[types.TextContent(text=text)], structured_content=structured)

    async def _index(self, ctx: ServerRequestContext, arguments: dict[str, Any]) -> types.CallToolResult:
        args = _validated("index", IndexInput, arguments)
        path = await anyio.to_thread.run_sync(self._video, args.video)
        report = _reporter(ctx)
        sent = {"frames": -1}
        then = " and ".join(
            (["transcribing the speech"] if args.speech else [])
            + (["reading the on-screen text"] if args.text else [])
        )

        def progress(done: int, total: int) -> None:  # frames 0..total, then one step for speech and text
            step = max(1, total // 50)
            if done == total or done - sent["frames"] >= step:
                sent["frames"] = done
                message = f"frames {done}/{total}" + (f"; {then}" if done == total and then else "")
                report(done, total + 1, message)

        def run() -> Any:
            with self._lock:
                lock = self._index_locks.setdefault(path, threading.Lock())
            with lock:
                done = index_video(
                    self.agent.ctx, path, speech=args.speech, text=args.text, progress=progress
                )
            report(done.frames_total + 1, done.frames_total + 1, "indexed")
            return done

        try:
            done = await anyio.to_thread.run_sync(run)
        except VidagentError as exc:
            raise VidagentError(public(str(exc), path)) from None
        structured = {
            "video": done.video_id,
            "frames_total": done.frames_total,
            "frames_added": done.frames_added,
            "model_id": done.model_id,
            "texts": done.texts,
            "seconds": round(done.seconds, 3),
        }
        found = (
            ", ".join(
                f"{n} {'speech segments' if tool == 'transcribe' else 'on-screen text lines'}"
                for tool, n in done.texts.items()
            )
            or "no speech or text read"
        )
        text = (
            f"indexed {path.name}: {done.frames_total} frames ({done.frames_added} new), {found}, "
            f"in {done.seconds:.1f} s; its id is {done.video_id} (resource {RESOURCE_PREFIX}{done.video_id})"
        )
        return types.CallToolResult(content=[types.TextContent(text=text)], structured_content=structured)

    # --- resources ----------------------------------------------------------------------------
    async def list_resources(
        self, ctx: ServerRequestContext, params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        videos = await anyio.to_thread.run_sync(self.agent.ctx.store.videos)
        return types.ListResourcesResult(
            resources=[
                types.Resource(
                    uri=RESOURCE_PREFIX + video["id"],
                    name=_file_name(video),
                    description=_summary(video["meta"]),
                    mime_type="application/json",
                )
                for video in videos
            ]
        )

    async def list_resource_templates(
        self, ctx: ServerRequestContext, params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        return types.ListResourceTemplatesResult(
            resource_templates=[
                types.ResourceTemplate(
                    uri_template=RESOURCE_PREFIX + "{id}",
                    name="video",
                    description="A video of the store by its id: file name, duration, whether it is indexed, "
                    "metadata.",
                    mime_type="application/json",
                )
            ]
        )

    async def read_resource(
        self, ctx: ServerRequestContext, params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        uri = str(params.uri)
        video_id = uri.removeprefix(RESOURCE_PREFIX) if uri.startswith(RESOURCE_PREFIX) else ""
        record = await anyio.to_thread.run_sync(
            lambda: self.agent.ctx.store.video(video_id) if VIDEO_ID.fullmatch(video_id) else None
        )
        if record is None:
            raise MCPError(
                types.INVALID_PARAMS,
                f"no such resource {uri[:120]!r} (videos are {RESOURCE_PREFIX}<id>; resources/list has them)",
                {"uri": uri[:1000]},
            )
        described = await anyio.to_thread.run_sync(self._describe, record)
        return types.ReadResourceResult(
            contents=[
                types.TextResourceContents(
                    uri=uri,
                    mime_type="application/json",
                    text=json.dumps(described, ensure_ascii=False, default=str),
                )
            ]
        )

    def _describe(self, record: dict[str, Any]) -> dict[str, Any]:
        """A video as a resource shows it: never its server path."""
        meta = {k: v for k, v in record["meta"].items() if k != "path"}
        sampling = sampling_key(self.agent.ctx.fps, self.agent.ctx.seek)
        indexed = any(
            s["video_id"] == record["id"] and s["sampling"] == sampling and s["complete"]
            for s in self.agent.ctx.store.frame_sets()
        )
        return {
            "id": record["id"],
            "name": _file_name(record),
            "duration": meta.get("duration"),
            "indexed": indexed,
            "meta": meta,
        }


def tool_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A tool's input schema as MCP clients see it: the model's, with a required ``video`` first."""
    properties = schema.get("properties", {})
    if "video" in properties:
        raise ValueError("a tool's input model cannot have its own 'video' field")
    return {
        **schema,
        "type": "object",
        "properties": {"video": {"type": "string", "description": VIDEO_DESCRIPTION}, **properties},
        "required": ["video", *schema.get("required", [])],
    }


def build_server(agent: VideoAgent, allowed: Sequence[Path] = ()) -> Server:
    """The MCP server over ``agent``: its tools, ``ask``, ``index`` and the store's videos as resources.

    ``allowed``: resolved directories (:func:`allowed_directories`) whose files clients may name by
    path; none, and only video ids are accepted."""
    handlers = _Handlers(agent, allowed)
    rule = (
        "a video id, or a path under " + ", ".join(str(d) for d in allowed)
        if allowed
        else "a video id (the vidagent://videos resources); this server opens no paths"
    )
    return Server(
        "vidagent",
        version=__version__,
        title="vidagent",
        description="Questions about videos, answered by a planner LLM with image-language model tools, "
        "citing evidence.",
        instructions="Ask questions about videos with `ask` (it cites evidence rows as [id]); the other tools "
        f"each return evidence rows (time spans in seconds, scores, boxes, texts). `video` is {rule}. "
        "`index` prepares a video ahead of questions; every tool also indexes on demand.",
        on_list_tools=handlers.list_tools,
        on_call_tool=handlers.call_tool,
        on_list_resources=handlers.list_resources,
        on_list_resource_templates=handlers.list_resource_templates,
        on_read_resource=handlers.read_resource,
    )


def run_stdio(server: Server) -> None:
    """Serve ``server`` on this process's stdin and stdout until the client closes stdin."""

    async def serve() -> None:
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())

    with contextlib.suppress(KeyboardInterrupt):
        anyio.run(serve)


def run_http(server: Server, port: int) -> None:
    """Serve ``server`` as streamable HTTP at ``http://127.0.0.1:PORT/mcp`` (loopback only; the SDK
    refuses other ``Host`` and ``Origin`` headers: DNS rebinding)."""
    import uvicorn

    app = server.streamable_http_app(host="127.0.0.1")
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Everything written to stdout inside goes to stderr, C libraries' output included (file
    descriptor 1 points at 2): on stdio, stdout carries the protocol and nothing else."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


# --- helpers ---------------------------------------------------------------------------------------
def _failed(message: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=message)], is_error=True)


def _validated(name: str, model: type[BaseModel], arguments: dict[str, Any]) -> Any:
    try:
        return model.model_validate(arguments)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg'][:120]}" for e in exc.errors()
        )
        raise ToolInputError(f"{name}: invalid arguments ({problems})") from None


def _reporter(ctx: ServerRequestContext) -> Callable[[float, float | None, str], None]:
    """``report(progress, total, message)`` for a worker thread: a progress notification against the
    client's progress token (none sent when the request carried no token, or the client is gone)."""

    token = anyio.lowlevel.current_token()

    def report(progress: float, total: float | None, message: str) -> None:
        try:
            anyio.from_thread.run(ctx.session.report_progress, float(progress), total, message, token=token)
        except Exception:  # a closed connection must not fail the work; the result says how it went
            log.debug("progress notification not sent", exc_info=True)

    return report


def _describe(event: dict[str, Any]) -> str:
    """One streamed step as a progress message."""
    kind = event.get("type")
    if kind == "plan":
        calls = ", ".join(str(c.get("tool")) for c in event.get("calls", []))
        return f"plan: {calls or 'answer now'}"
    if kind == "tool_call":
        return f"calling {event.get('tool')}"
    if kind == "tool_result":
        if "error" in event:
            return f"{event.get('tool')} failed: {str(event['error'])[:200]}"
        return f"{event.get('tool')}: {len(event.get('evidence_ids', []))} rows"
    if kind == "answer":
        return "answered"
    return str(kind)


def _evidence_text(name: str, evidence: Evidence) -> str:
    return f"{name}: {len(evidence)} rows\n{evidence.to_prompt(k=TEXT_ROWS, by_score=False)}"


def _file_name(record: dict[str, Any]) -> str:
    return str(record["meta"].get("name") or Path(record["path"]).name)


def _summary(meta: dict[str, Any]) -> str:
    parts = []
    if isinstance(meta.get("duration"), int | float):
        parts.append(f"{meta['duration']:.1f} s")
    if meta.get("width") and meta.get("height"):
        parts.append(f"{meta['width']}x{meta['height']}")
    if isinstance(meta.get("fps"), int | float):
        parts.append(f"{meta['fps']:g} fps")
    return ", ".join(parts) or "a video"
