"""The HTTP API and web chat: ``create_app(agent, upload_dir=...)`` (FastAPI), run by ``vidagent serve``.

One :class:`~vidagent.agent.api.VideoAgent` (so one set of loaded models) serves every request. The
agent's graph runs in a worker thread per question and its steps stream to the client as
server-sent events; index jobs run in background threads, one at a time per video.

Endpoints (all JSON under ``/api`` except where noted; OpenAPI docs at ``/docs``):

- ``POST /api/videos`` upload (multipart, field ``file``) -> the video; 413 over the size limit,
  415 not a video, 422 a broken video. ``GET /api/videos``, ``GET /api/videos/{id}``.
- ``GET /api/videos/{id}/file`` the file for the player (Range requests).
- ``POST /api/videos/{id}/index`` start indexing -> a job; ``GET /api/jobs/{job}`` its progress.
- ``POST /api/videos/{id}/sessions`` a new chat session about that video.
- ``POST /api/chat`` ``{video, session?, question, options?}`` -> ``text/event-stream``: ``plan``,
  ``tool_call``, ``tool_result``, ``answer`` (with the cited evidence rows), then ``done``
  (``error`` instead of ``answer`` when the question fails).
- ``GET /api/sessions/{session}`` messages and evidence (a question left without an answer, e.g.
  by a server that died mid-turn, carries ``interrupted: true``); ``GET
  /api/sessions/{session}/evidence/{row}/thumbnail`` the row's frame with its box and mask (JPEG).
- ``GET /v1/models`` and ``POST /v1/chat/completions``: OpenAI-compatible chat about an uploaded
  video (streaming too), with the evidence in the extension field ``vidagent``; errors there in
  OpenAI's form (``vidagent.app.openai_api``).

Security model:

- Videos are referenced by server id (the content's sha256) only; no request field is ever
  opened as a path. Uploads are streamed to a temporary file under ``upload_dir`` with a size
  limit, probed with ``Video.open`` before they are accepted, and stored as ``<sha256><ext>``;
  the client's file name is kept as metadata only.
- With ``api_key`` every ``/api`` and ``/v1`` request needs ``Authorization: Bearer KEY`` or ``X-API-Key:
  KEY`` (the page, ``/docs`` and ``/openapi.json`` hold no data and stay open). The ``<video>``
  element cannot send headers, so the video listing hands out a short-lived signed URL per file.
- Without a key the app only answers requests whose ``Host`` is a loopback name (DNS rebinding),
  and state-changing requests from another origin are refused (CSRF). CORS is closed unless
  ``cors_origins`` names origins.
- Session ids are random (128 bits), created by the server and bound to one video; a session's
  messages and evidence are only reachable through its own id.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import json
import logging
import mimetypes
import os
import re
import secrets
import sqlite3
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePath
from typing import Any
from urllib.parse import unquote

import numpy as np
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers, MutableHeaders

from vidagent import __version__
from vidagent.agent.api import VideoAgent, index_video
from vidagent.app.openai_api import install_error_handlers, openai_router
from vidagent.core.errors import NotAMediaFile, NoVideoStream, VidagentError, VideoError
from vidagent.media.index import sampling_key
from vidagent.media.video import Video

__all__ = ["create_app", "is_loopback"]
INTERNAL_ERROR = "internal error (see the server log)"

log = logging.getLogger("vidagent.app.server")

WEB_DIR = Path(__file__).resolve().parent / "web"
VIDEO_ID = re.compile(r"[0-9a-f]{64}")
SESSION_ID = re.compile(r"[0-9a-f]{32}")
VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".ogv", ".flv", ".wmv", ".3gp"}
)
CONTAINER_EXTENSIONS = {
    "mov": ".mp4",
    "matroska": ".mkv",
    "avi": ".avi",
    "mpegts": ".ts",
    "ogg": ".ogv",
    "flv": ".flv",
    "asf": ".wmv",
    "mpeg": ".mpg",
}
TOKEN_SECONDS = 3600  # lifetime of a signed media URL
THUMB_MAX_SIDE = 640
MAX_JOBS_KEPT = 256
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PAGE_CSP = (
    "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; style-src 'self'; "
    "script-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
mimetypes.add_type("video/x-matroska", ".mkv")
mimetypes.add_type("video/mp2t", ".ts")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, maybe ``[v6]``) only reaches this machine."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --- request and response bodies -----------------------------------------------------------------
class VideoOut(BaseModel):
    id: str = Field(description="The server id: sha256 of the file's bytes.")
    name: str = Field(description="The file name the client uploaded it as (metadata only).")
    duration: float
    width: int
    height: int
    fps: float
    indexed: bool
    url: str = Field(description="Where the player fetches the file (signed when an API key is set).")
    job: dict[str, Any] | None = Field(default=None, description="The latest index job, if any.")


class ChatRequest(BaseModel):
    model_config = {"extra": "forbid"}

    video: str = Field(description="A video id from /api/videos (never a path).", max_length=64)
    session: str | None = Field(
        default=None, description="Continue this session (omit: a new one).", max_length=32
    )
    question: str = Field(min_length=1, max_length=2000)
    options: list[str] | None = Field(
        default=None, min_length=2, max_length=10, description="Multiple-choice options."
    )


class SessionOut(BaseModel):
    session: str
    video: str
    messages: list[dict[str, Any]] = Field(default_factory=list)
    evidence: list[dict[str, Any]] = Field(default_factory=list, description="Every row, each with its id.")


@dataclass
class Job:
    """An index job: ``state`` is queued, running, done or error."""

    id: str
    video: str
    state: str = "queued"
    done: int = 0
    total: int = 0
    error: str | None = None
    frames_added: int | None = None
    seconds: float | None = None
    created: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- sessions: which video each belongs to, persisted next to the uploads ---------------------------
class SessionBook:
    """Session id -> video id, in a small SQLite file (the chat itself is in the agent's store)."""

    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, timeout=30)
        with self._db:
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS sessions (id TEXT PRIMARY KEY, video TEXT NOT NULL, "
                "created REAL NOT NULL)"
            )

    def create(self, video_id: str) -> str:
        session = uuid.uuid4().hex
        with self._lock, self._db:
            self._db.execute("INSERT INTO sessions VALUES (?, ?, ?)", (session, video_id, time.time()))
        return session

    def video_of(self, session: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT video FROM sessions WHERE id=?", (session,)).fetchone()
        return row[0] if row else None


# --- the application ----------------------------------------------------------------------------
class _Server:
    """State shared by the routes of one app: the agent, uploads, jobs, sessions, auth."""

    def __init__(
        self,
        agent: VideoAgent,
        upload_dir: Path,
        max_upload_mb: float,
        api_key: str | None,
        max_concurrent_chats: int,
    ) -> None:
        self.agent = agent
        self.upload_dir = upload_dir.resolve()
        self.incoming = self.upload_dir / ".incoming"
        self.incoming.mkdir(parents=True, exist_ok=True)
        self.max_bytes = int(max_upload_mb * 1024 * 1024)
        self.api_key = api_key
        self.sessions = SessionBook(self.upload_dir / "sessions.sqlite")
        self._secret = secrets.token_bytes(32)  # signs media URLs; dies with the process
        self._lock = threading.Lock()
        self.jobs: OrderedDict[str, Job] = OrderedDict()
        self._latest_job: dict[str, Job] = {}
        self._index_locks: dict[str, threading.Lock] = {}
        self._busy: set[str] = set()
        self.chat_slots = threading.BoundedSemaphore(max_concurrent_chats)
        self.started = time.time()

    # --- auth ----------------------------------------------------------------------------
    def key_ok(self, request: Request) -> bool:
        if self.api_key is None:
            return True
        auth = request.headers.get("authorization", "")
        given = auth[7:].strip() if auth[:7].lower() == "bearer " else request.headers.get("x-api-key", "")
        return bool(given) and hmac.compare_digest(given.encode(), self.api_key.encode())

    def require_key(self, request: Request) -> None:
        if not self.key_ok(request):
            raise HTTPException(
                401,
                "a valid API key is required (Authorization: Bearer KEY or X-API-Key)",
                headers={"WWW-Authenticate": "Bearer"},
            )

    def media_token(self, video_id: str) -> str:
        expires = int(time.time()) + TOKEN_SECONDS
        return f"{expires}.{self._sign(video_id, expires)}"

    def token_ok(self, video_id: str, token: str | None) -> bool:
        if not token or "." not in token:
            return False
        expires, signature = token.split(".", 1)
        if not expires.isdigit() or int(expires) < time.time():
            return False
        return hmac.compare_digest(signature, self._sign(video_id, int(expires)))

    def _sign(self, video_id: str, expires: int) -> str:
        return hmac.new(self._secret, f"{video_id}:{expires}".encode(), hashlib.sha256).hexdigest()[:32]

    # --- videos ----------------------------------------------------------------------------
    def video(self, video_id: str) -> dict[str, Any]:
        """The stored upload with this id (404 otherwise: ids are never paths)."""
        record = self.agent.ctx.store.video(video_id) if VIDEO_ID.fullmatch(video_id) else None
        if record is None or not self._is_upload(Path(record["path"])):
            raise HTTPException(404, "no such video")
        return record

    def _is_upload(self, path: Path) -> bool:
        return path.parent == self.upload_dir and path.is_file()

    def videos(self) -> list[dict[str, Any]]:
        return [v for v in self.agent.ctx.store.videos() if self._is_upload(Path(v["path"]))]

    def indexed(self, video_id: str) -> bool:
        sampling = sampling_key(self.agent.ctx.fps, self.agent.ctx.seek)
        return any(
            s["video_id"] == video_id and s["sampling"] == sampling and s["complete"]
            for s in self.agent.ctx.store.frame_sets()
        )

    def describe(self, record: dict[str, Any]) -> VideoOut:
        meta, video_id = record["meta"], record["id"]
        url = f"/api/videos/{video_id}/file"
        if self.api_key is not None:
            url += f"?token={self.media_token(video_id)}"
        job = self._latest_job.get(video_id)
        return VideoOut(
            id=video_id,
            name=str(meta.get("name") or Path(record["path"]).name),
            duration=float(meta["duration"]),
            width=int(meta["width"]),
            height=int(meta["height"]),
            fps=float(meta["fps"]),
            indexed=self.indexed(video_id),
            url=url,
            job=job.to_dict() if job else None,
        )

    async def receive_upload(self, request: Request) -> tuple[Path, str, str]:
        """Stream the multipart ``file`` field to a temp file: (temp path, sha256, client file name)."""
        content_type, params = parse_options_header(request.headers.get("content-type", ""))
        boundary = params.get(b"boundary")
        if content_type != b"multipart/form-data" or not boundary:
            raise HTTPException(400, "send the video as multipart/form-data in a field named 'file'")
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes + 64 * 1024:
            raise HTTPException(413, f"the upload is larger than the {self._limit()} limit")
        sink = _UploadSink(self.incoming, self.max_bytes)
        parser = MultipartParser(boundary, sink.callbacks())
        try:
            async for chunk in request.stream():
                parser.write(chunk)
                if sink.too_large:
                    raise HTTPException(413, f"the upload is larger than the {self._limit()} limit")
                if sink.problem:
                    raise HTTPException(400, sink.problem)
            parser.finalize()
            if sink.problem:
                raise HTTPException(400, sink.problem)
            if sink.path is None or not sink.complete:
                raise HTTPException(400, "no file: send the video in a multipart field named 'file'")
        except BaseException:
            sink.discard()
            raise
        finally:
            sink.close()
        return sink.path, sink.digest.hexdigest(), sink.filename

    def _limit(self) -> str:
        return f"{self.max_bytes / (1024 * 1024):g} MB"

    def accept(self, temp: Path, digest: str, client_name: str) -> tuple[dict[str, Any], bool]:
        """Probe the upload and store it as ``<sha256><ext>`` (blocking: run in a thread)."""
        try:
            try:
                with Video.open(temp) as video:
                    meta = video.meta.to_dict()
            except VideoError as exc:
                status = 415 if isinstance(exc, NotAMediaFile | NoVideoStream) else 422
                raise HTTPException(status, str(exc).replace(str(temp), client_name)) from None
            store = self.agent.ctx.store
            existing = store.video(digest)
            if existing is not None and self._is_upload(Path(existing["path"])):
                return existing, False
            target = self.upload_dir / (digest + _extension(client_name, meta["container"]))
            os.replace(temp, target)
            meta |= {"path": str(target), "name": client_name, "uploaded": time.time()}
            store.add_video(digest, target, meta)
            return store.video(digest) or {}, True
        finally:
            temp.unlink(missing_ok=True)

    # --- index jobs --------------------------------------------------------------------------
    def start_index(self, record: dict[str, Any]) -> Job:
        video_id = record["id"]
        with self._lock:
            job = self._latest_job.get(video_id)
            if job is not None and job.state in ("queued", "running"):
                return job  # one job per video at a time
            job = Job(id=uuid.uuid4().hex, video=video_id)
            self.jobs[job.id] = job
            self._latest_job[video_id] = job
            while len(self.jobs) > MAX_JOBS_KEPT:
                self.jobs.popitem(last=False)
        threading.Thread(
            target=self._run_index,
            args=(job, Path(record["path"])),
            daemon=True,
            name=f"vidagent-index-{video_id[:8]}",
        ).start()
        return job

    def _run_index(self, job: Job, path: Path) -> None:
        with self._lock:
            lock = self._index_locks.setdefault(job.video, threading.Lock())
        with lock:
            job.state = "running"

            def progress(done: int, total: int) -> None:
                job.done, job.total = done, total

            try:
                report = index_video(
                    self.agent.ctx, path, progress=progress
                )  # frames, speech, on-screen text
                job.frames_added, job.seconds = report.frames_added, round(report.seconds, 3)
                job.state = "done"
            except VidagentError as exc:
                job.error, job.state = _public(str(exc), path), "error"
            except Exception:
                log.exception("index job %s failed", job.id)
                job.error, job.state = "internal error while indexing (see the server log)", "error"

    # --- sessions and chat ---------------------------------------------------------------------
    def session_video(self, session: str) -> str:
        video_id = self.sessions.video_of(session) if SESSION_ID.fullmatch(session) else None
        if video_id is None:
            raise HTTPException(404, "no such session")
        return video_id

    def claim(self, session: str) -> None:
        with self._lock:
            if session in self._busy:
                raise HTTPException(409, "this session is still answering its previous question")
            self._busy.add(session)

    def release(self, session: str) -> None:
        with self._lock:
            self._busy.discard(session)

    def run_chat(
        self,
        path: Path,
        body: ChatRequest,
        session: str,
        emit: Any,
        stop: threading.Event,
        history: list[dict[str, str]] | None = None,
    ) -> None:
        """Run the graph for one question in this (worker) thread, handing each event to ``emit``
        (``history``: earlier turns a client kept itself, for a new session)."""
        try:
            with self.chat_slots:
                stream = self.agent.stream(
                    path, body.question, body.options, session=session, history=history
                )
                for event in stream:
                    if stop.is_set():  # the client went away
                        return
                    emit(event)  # the answer event carries its cited rows
        except VidagentError as exc:
            emit({"type": "error", "session": session, "message": _public(str(exc), path)})
        except Exception:
            log.exception("chat in session %s failed", session)
            emit({"type": "error", "session": session, "message": INTERNAL_ERROR})
        finally:
            self.release(session)


class _UploadSink:
    """python-multipart callbacks writing the ``file`` field to disk, hashing, counting bytes."""

    def __init__(self, folder: Path, max_bytes: int) -> None:
        self.folder, self.max_bytes = folder, max_bytes
        self.path: Path | None = None
        self.filename = "upload"
        self.digest = hashlib.sha256()
        self.size = 0
        self.too_large = False
        self.complete = False
        self.problem: str | None = None
        self._handle: Any = None
        self._headers: dict[str, bytes] = {}
        self._field, self._value = b"", b""
        self._writing = False

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._data,
            "on_part_end": self._part_end,
        }

    def _part_begin(self) -> None:
        self._headers, self._field, self._value = {}, b"", b""

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._field.decode("latin-1").lower()] = self._value  # bytes: browsers send UTF-8 names
        self._field, self._value = b"", b""

    def _headers_finished(self) -> None:
        disposition = self._headers.get("content-disposition", b"")
        _, params = parse_options_header(disposition)
        name = params.get(b"name", b"").decode("utf-8", "replace")
        filename = _filename(disposition, params)
        self._writing = name == "file" and filename is not None
        if not self._writing:
            return
        if self.path is not None:
            self.problem = "send one file per upload"
            self._writing = False
            return
        self.filename = _client_name(filename)
        handle, temp = tempfile.mkstemp(dir=self.folder, prefix="upload-")
        self._handle, self.path = os.fdopen(handle, "wb"), Path(temp)

    def _data(self, data: bytes, start: int, end: int) -> None:
        if not self._writing or self.too_large:
            return
        self.size += end - start
        if self.size > self.max_bytes:
            self.too_large = True
            return
        block = data[start:end]
        self.digest.update(block)
        self._handle.write(block)

    def _part_end(self) -> None:
        if self._writing:
            self.complete = True
        self._writing = False

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def discard(self) -> None:
        self.close()
        if self.path is not None:
            self.path.unlink(missing_ok=True)


def _filename(disposition: bytes, params: dict[bytes, bytes]) -> str | None:
    """The part's file name: RFC 5987's ``filename*=UTF-8''...`` when sent (python-multipart drops
    it, so it is read from the header itself), else ``filename`` as the UTF-8 browsers send (Latin-1
    when the bytes are not UTF-8)."""
    extended = re.search(rb"filename\*\s*=\s*\"?([^;\"]+)", disposition, re.IGNORECASE)
    if extended is not None and b"''" in extended.group(1):
        charset, _, quoted = extended.group(1).strip().partition(b"''")
        try:
            return unquote(
                quoted.decode("ascii"), encoding=charset.decode("ascii") or "utf-8", errors="replace"
            )
        except (LookupError, UnicodeDecodeError):
            pass
    raw = params.get(b"filename")
    if raw is None:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _client_name(raw: str) -> str:
    """The client's file name as display metadata: last path component, printable, short."""
    name = PurePath(raw.replace("\\", "/")).name
    name = "".join(ch for ch in name if ch.isprintable() and ch not in "<>\"'`")[:120].strip()
    return name or "upload"


def _extension(client_name: str, container: str) -> str:
    suffix = PurePath(client_name).suffix.lower()
    if suffix in VIDEO_EXTENSIONS:
        return suffix
    return next((ext for name, ext in CONTAINER_EXTENSIONS.items() if name in container.split(",")), ".video")


def _public(message: str, path: Path) -> str:
    """An error message without the server's file system layout."""
    return message.replace(str(path), path.name).replace(str(path.parent), "")


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, default=_json_default)}\n\n".encode()


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def best_time(row: dict[str, Any], fps: float) -> float:
    """The moment a row is best shown at: its best frame's time, else its frame, else its middle."""
    start, end = float(row["start"]), float(row["end"])
    data = row.get("data") or {}
    if isinstance(data.get("best_t"), int | float):
        t = float(data["best_t"])
    elif row.get("frame_index", -1) >= 0 and fps > 0:
        t = (row["frame_index"] + 0.5) / fps
    else:
        t = (start + end) / 2
    return min(max(t, start), end) if end >= start else start


def render_thumbnail(path: Path, row: dict[str, Any], mask: np.ndarray | None) -> bytes:
    """JPEG of the frame at the row's best time, its box drawn and its mask overlaid."""
    from io import BytesIO

    from PIL import Image, ImageDraw

    with Video.open(path) as video:
        t = min(best_time(row, video.fps), max(video.duration - 1e-3, 0.0))
        frames = video.sample_at([t])
    if not len(frames):
        raise VidagentError("the frame could not be decoded")
    image = Image.fromarray(frames.frames[0])
    if mask is not None and mask.any():
        layer = Image.fromarray(mask.astype(np.uint8) * 255).resize(image.size, Image.NEAREST)
        tint = Image.new("RGB", image.size, (0, 170, 255))
        image = Image.composite(Image.blend(image, tint, 0.45), image, layer)
    scale = min(1.0, THUMB_MAX_SIDE / max(image.size))
    if scale < 1.0:
        image = image.resize((round(image.width * scale), round(image.height * scale)), Image.BILINEAR)
    box = row.get("box")
    if box is not None and len(box) == 4 and all(np.isfinite(box)):
        x0, y0, x1, y1 = (float(v) * scale for v in box)
        ImageDraw.Draw(image).rectangle([x0, y0, x1, y1], outline=(255, 60, 60), width=3)
    out = BytesIO()
    image.save(out, format="JPEG", quality=85)
    return out.getvalue()


class ChatRun:
    """One question answered in a worker thread (``_Server.run_chat``), its events handed to the
    event loop; leaving :meth:`events` early (the client went away) stops the run."""

    def __init__(
        self,
        server: _Server,
        path: Path,
        body: ChatRequest,
        session: str,
        history: list[dict[str, str]] | None = None,
    ) -> None:
        loop = asyncio.get_running_loop()
        self.session = session
        self._queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._stop = threading.Event()

        def emit(event: dict[str, Any] | None) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is gone (server shutting down)
                loop.call_soon_threadsafe(self._queue.put_nowait, event)

        def work() -> None:
            try:
                server.run_chat(path, body, session, emit, self._stop, history=history)
            finally:
                emit(None)

        threading.Thread(target=work, daemon=True, name=f"vidagent-chat-{session[:8]}").start()

    async def events(self) -> Any:
        """The run's events (plan, tool_call, tool_result, then answer or error), as they come."""
        try:
            while (event := await self._queue.get()) is not None:
                yield event
        finally:
            self._stop.set()


class _Guard:
    """ASGI middleware: loopback-only Host without a key, same-origin writes, security headers."""

    def __init__(self, app: Any, *, loopback_only: bool, origins: frozenset[str]) -> None:
        self.app, self.loopback_only, self.origins = app, loopback_only, origins

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        host = headers.get("host", "")
        hostname = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if self.loopback_only and not is_loopback(hostname):
            await JSONResponse({"detail": "this server only answers on a loopback address"}, 421)(
                scope, receive, send
            )
            return
        origin = headers.get("origin")
        if (
            scope["method"] not in SAFE_METHODS
            and origin is not None
            and origin not in self.origins
            and origin != f"{scope.get('scheme', 'http')}://{host}"
        ):
            await JSONResponse({"detail": f"requests from {origin} are not allowed"}, 403)(
                scope, receive, send
            )
            return
        page = not scope["path"].startswith(("/api/", "/v1/", "/docs", "/redoc", "/openapi.json"))

        async def send_secure(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                out = MutableHeaders(scope=message)
                out.setdefault("x-content-type-options", "nosniff")
                out.setdefault("referrer-policy", "no-referrer")
                if page:
                    out.setdefault("content-security-policy", PAGE_CSP)
                    out.setdefault("x-frame-options", "DENY")
            await send(message)

        await self.app(scope, receive, send_secure)


def create_app(
    agent: VideoAgent,
    *,
    upload_dir: str | Path,
    max_upload_mb: float = 512,
    api_key: str | None = None,
    cors_origins: tuple[str, ...] | list[str] = (),
    max_concurrent_chats: int = 4,
) -> FastAPI:
    """The FastAPI app serving ``agent``: the HTTP API, the web chat page and the docs."""
    server = _Server(agent, Path(upload_dir), max_upload_mb, api_key or None, max_concurrent_chats)
    app = FastAPI(
        title="vidagent",
        version=__version__,
        description="Ask questions about videos; answers cite evidence (spans, boxes, masks).",
    )
    app.state.vidagent = server
    api = APIRouter(prefix="/api", dependencies=[Depends(server.require_key)])

    @api.get("/videos", response_model=list[VideoOut], summary="List uploaded videos")
    def list_videos() -> list[VideoOut]:
        return [server.describe(v) for v in server.videos()]

    @api.post(
        "/videos",
        response_model=VideoOut,
        status_code=201,
        summary="Upload a video",
        responses={
            200: {"description": "Already uploaded"},
            413: {"description": "Too large"},
            415: {"description": "Not a video"},
            422: {"description": "A broken video"},
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "required": ["file"],
                            "properties": {"file": {"type": "string", "format": "binary"}},
                        }
                    }
                },
            }
        },
    )
    async def upload(request: Request) -> Any:
        temp, digest, name = await server.receive_upload(request)
        record, created = await run_in_threadpool(server.accept, temp, digest, name)
        body = server.describe(record).model_dump()
        return JSONResponse(body, status_code=201 if created else 200)

    @api.get("/videos/{video_id}", response_model=VideoOut, summary="One video")
    def get_video(video_id: str) -> VideoOut:
        return server.describe(server.video(video_id))

    @api.post("/videos/{video_id}/index", status_code=202, summary="Start indexing (a background job)")
    def start_index(video_id: str) -> dict[str, Any]:
        return server.start_index(server.video(video_id)).to_dict()

    @api.get("/jobs/{job_id}", summary="An index job's progress")
    def get_job(job_id: str) -> dict[str, Any]:
        job = server.jobs.get(job_id)
        if job is None:
            raise HTTPException(404, "no such job")
        return job.to_dict()

    @api.post(
        "/videos/{video_id}/sessions",
        response_model=SessionOut,
        status_code=201,
        summary="A new chat session about this video",
    )
    def new_session(video_id: str) -> SessionOut:
        server.video(video_id)
        return SessionOut(session=server.sessions.create(video_id), video=video_id)

    @api.get("/sessions/{session}", response_model=SessionOut, summary="A session's messages and evidence")
    def get_session(session: str) -> SessionOut:
        video_id = server.session_video(session)
        return SessionOut(
            session=session,
            video=video_id,
            messages=agent.history(session),
            evidence=agent.evidence_records(session),
        )

    @api.get(
        "/sessions/{session}/evidence/{row}/thumbnail",
        summary="An evidence row's frame (JPEG)",
        response_class=Response,
        responses={200: {"content": {"image/jpeg": {}}}},
    )
    def thumbnail(session: str, row: int) -> Response:
        video_id = server.session_video(session)
        record = server.video(video_id)
        rows = agent.evidence_records(session)
        if not 0 <= row < len(rows):
            raise HTTPException(404, "no such evidence row")
        mask = None
        if ref := rows[row].get("mask_ref"):
            with contextlib.suppress(KeyError):
                mask = agent.ctx.store.mask(str(ref))
        path = Path(record["path"])
        try:
            jpeg = render_thumbnail(path, rows[row], mask)
        except VidagentError as exc:
            raise HTTPException(422, _public(str(exc), path)) from None
        return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})

    @api.post(
        "/chat",
        summary="Ask a question in a session; the steps stream as server-sent events",
        responses={200: {"content": {"text/event-stream": {}}}},
    )
    async def chat(body: ChatRequest) -> StreamingResponse:
        record = server.video(body.video)
        session = body.session or server.sessions.create(record["id"])
        if server.session_video(session) != record["id"]:
            raise HTTPException(409, "this session belongs to another video")
        server.claim(session)
        run = ChatRun(server, Path(record["path"]), body, session)

        async def events() -> Any:
            async for event in run.events():
                yield _sse(str(event.get("type", "message")), event)
            yield _sse("done", {"type": "done", "session": session})

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "X-Session-Id": session},
        )

    app.include_router(api)
    app.include_router(openai_router(server))
    install_error_handlers(app)

    @app.get(
        "/api/videos/{video_id}/file",
        summary="The video file (Range requests)",
        tags=["media"],
        response_class=FileResponse,
    )
    def video_file(video_id: str, request: Request, token: str | None = None) -> FileResponse:
        if not (server.key_ok(request) or server.token_ok(video_id, token)):
            raise HTTPException(401, "a valid API key or signed URL is required")
        record = server.video(video_id)
        path = Path(record["path"])
        media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return FileResponse(path, media_type=media_type, headers={"Cache-Control": "private, max-age=3600"})

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(WEB_DIR / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")
    origins = frozenset(cors_origins)
    if origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=sorted(origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "Range"],
            expose_headers=["X-Session-Id", "Content-Range", "Accept-Ranges"],
        )
    app.add_middleware(_Guard, loopback_only=api_key is None, origins=origins)
    return app


def serve(
    agent: VideoAgent,
    *,
    host: str,
    port: int,
    upload_dir: Path,
    api_key: str | None,
    cors_origins: list[str],
    max_upload_mb: float,
) -> None:
    """Run the app with uvicorn (``vidagent serve``); refuses a non-loopback host without a key."""
    import uvicorn

    if not is_loopback(host) and not api_key:
        raise VidagentError(
            f"refusing to listen on {host} without an API key: set VIDAGENT_API_KEY "
            "(every request must then send it) or bind to 127.0.0.1"
        )
    app = create_app(
        agent,
        upload_dir=upload_dir,
        max_upload_mb=max_upload_mb,
        api_key=api_key,
        cors_origins=tuple(cors_origins),
    )
    uvicorn.run(app, host=host, port=port, log_level="info", timeout_graceful_shutdown=5)
