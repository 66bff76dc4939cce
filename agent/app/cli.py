"""The `vidagent` command line.

Exit codes: 0 success, 1 a problem with the user's input or set-up (one line on stderr, no
traceback), 2 a usage error (unknown option, missing argument; printed by click).
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
import warnings
import weakref
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from vidagent.core.errors import VidagentError
from vidagent.evals.tasks import TASK_REGISTRY

app = typer.Typer(
    name="vidagent",
    help="Answer questions about videos with image-language foundation models, citing evidence.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
models_app = typer.Typer(help="Inspect profiles and build the tiny test checkpoints.", no_args_is_help=True)
app.add_typer(models_app, name="models")

out = Console()
err = Console(stderr=True)

VideoArg = Annotated[Path, typer.Argument(help="A video file FFmpeg can read.", show_default=False)]
BackendOpt = Annotated[str, typer.Option("--backend", help="Decoder: auto (PyAV), pyav or decord.")]
ProfileOpt = Annotated[str, typer.Option("--profile", "-p", help="Profile name or YAML path.")]
StoreOpt = Annotated[
    Path | None,
    typer.Option("--store", help="SQLite memory store (default: in the user data dir).", show_default=False),
]
SpanOpt = Annotated[
    tuple[float, float] | None,
    typer.Option("--span", help="Only inside START END (seconds).", show_default=False),
]
EngineOpt = Annotated[str, typer.Option(help="local (this process) or ray (Ray Data with model actors).")]
GpusOpt = Annotated[bool, typer.Option(help="ray: one GPU per actor.")]
RayAddressOpt = Annotated[
    str | None,
    typer.Option(
        help="ray: cluster address ('auto' joins a running one; default: start Ray here).", show_default=False
    ),
]
SeekOpt = Annotated[
    str,
    typer.Option(
        "--seek",
        help="Frames the index samples: exact (the frame shown at each grid time) or keyframe (the "
        "nearest keyframe, with its true time; many times faster on long videos, coarser in time).",
    ),
]
ENGINES = ("local", "ray")


@app.callback()
def _one_line_warnings() -> None:
    """Warnings (a damaged or truncated video, a fallback) print as one line, not file:line plus code."""
    warnings.showwarning = _show_warning


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    err.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)


def _check_engine(engine: str) -> None:
    if engine not in ENGINES:
        raise typer.BadParameter(f"--engine must be {' or '.join(ENGINES)}")


def _check_seek(seek: str) -> None:
    from vidagent.media.video import SEEK_MODES

    if seek not in SEEK_MODES:
        raise typer.BadParameter(f"--seek must be {' or '.join(SEEK_MODES)}, not {seek!r}")


def _progress(bar):  # -> Callable[[int, int], None]
    """A ``progress(done, total)`` callback that drives a tqdm bar."""

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    return update


@app.command()
def info(
    video: VideoArg,
    backend: BackendOpt = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Print a video's metadata (read from the container, nothing decoded)."""
    from vidagent.media.video import Video

    with Video.open(video, backend=backend) as v:
        meta = v.meta.to_dict() | {"backend": v.backend}
    if as_json:
        out.print_json(json.dumps(meta))
        return
    table = Table(title=str(video), show_header=False)
    for key, value in meta.items():
        table.add_row(key, f"{value:.3f}" if isinstance(value, float) else str(value))
    out.print(table)


@app.command()
def frames(
    video: VideoArg,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the JPEG files.")],
    fps: Annotated[float | None, typer.Option(help="Sample at this many frames per second.")] = None,
    n: Annotated[int | None, typer.Option("-n", help="Sample N frames uniformly instead.")] = None,
    span: SpanOpt = None,
    short_side: Annotated[int | None, typer.Option(help="Resize so the short side is this.")] = None,
    backend: BackendOpt = "auto",
    seek: SeekOpt = "exact",
) -> None:
    """Write sampled frames as JPEG files named by index and timestamp (with --seek keyframe, the
    nearest keyframes, named by their own index and time)."""
    from PIL import Image
    from tqdm import tqdm

    from vidagent.media.video import Video, target_times

    if fps is not None and n is not None:
        raise typer.BadParameter("give either --fps or -n, not both")
    if fps is None and n is None:
        fps = 1.0
    _check_seek(seek)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: set[Path] = set()
    sampled = 0
    with Video.open(video, backend=backend, seek=seek) as v:
        total = len(target_times(span or v.duration, fps=fps, n=n))
        with tqdm(total=total, unit="frame", desc="frames", disable=None) as bar:
            for chunk in v.iter_chunks(fps=fps, n=n, span=span, short_side=short_side):
                for image, t, index in zip(chunk.frames, chunk.timestamps, chunk.indices, strict=True):
                    name = out_dir / f"frame_{int(index):06d}_{t:010.3f}s.jpg"
                    if name not in written:  # sampling faster than the video, or a damaged stretch
                        Image.fromarray(image).save(name, quality=90)
                        written.add(name)
                sampled += len(chunk)
                bar.update(len(chunk))
    repeated = (
        f" ({sampled - len(written)} samples showed a frame already written)"
        if sampled > len(written)
        else ""
    )
    err.print(f"wrote {len(written)} frames to {out_dir}{repeated}", highlight=False, soft_wrap=True)


@models_app.command("list")
def models_list(profile: ProfileOpt = "auto") -> None:
    """Show the bundled profiles and the roles of one of them, with where each role's weights come from."""
    from vidagent.models.hub import planned_weights
    from vidagent.models.profile import list_profiles, load_profile
    from vidagent.models.tiny import TINY_ROLES

    prof = load_profile(profile)
    table = Table(title=f"profile {prof.name!r}: {prof.description}")
    weights = Table(title="where the weights come from")
    for col in ("role", "id", "kind", "device", "dtype"):
        table.add_column(col, no_wrap=col in ("role", "id"))
    weights.add_column("role", no_wrap=True)
    weights.add_column("weights", overflow="fold")
    for role, spec in prof.roles.items():
        table.add_row(role, spec.id, str(spec.kind or ""), spec.device, spec.dtype)
        cells = [_weights_cell(*planned_weights(spec, prof.path))]
        if spec.fallback is not None:  # the role's own second choice, loaded when the first cannot be
            fallback = spec.fallback
            table.add_row(
                "", f"else {fallback.id}", str(fallback.kind or ""), fallback.device, fallback.dtype
            )
            cells.append("else " + _weights_cell(*planned_weights(fallback, prof.path)))
        elif prof.fallback == "tiny" and role in TINY_ROLES and not spec.is_tiny and not spec.share_with:
            cells.append("else " + _weights_cell("random", f"tiny:{role}"))
        weights.add_row(role, "\n".join(cells))
    table.add_row("ocr", "PP-OCR (read_text)", "onnxruntime", "cpu", "")
    weights.add_row("ocr", _weights_cell(*_ocr_weights()))
    out.print(table)
    out.print(weights)
    out.print("bundled profiles: " + ", ".join(list_profiles()))


def _weights_cell(kind: str, where: str) -> str:
    label = {"real": "[green]real[/]", "random": "[bold red]RANDOM[/]"}.get(kind, "[red]unavailable[/]")
    return f"{label}: {where}"


def _ocr_weights() -> tuple[str, str]:
    """read_text's PP-OCR models ship inside the rapidocr-onnxruntime package: real weights, no hub."""
    import importlib.metadata

    try:
        return (
            "real",
            f"PyPI package rapidocr-onnxruntime {importlib.metadata.version('rapidocr-onnxruntime')}",
        )
    except importlib.metadata.PackageNotFoundError:
        return "none", "rapidocr-onnxruntime is not installed (pip install rapidocr-onnxruntime)"


@models_app.command("build-tiny")
def models_build_tiny(
    role: Annotated[list[str] | None, typer.Option("--role", help="Only these roles.")] = None,
    force: Annotated[bool, typer.Option(help="Rebuild even if present.")] = False,
) -> None:
    """Build the tiny random-weight checkpoints used by the `tiny` profile and the tests."""
    from vidagent.models.tiny import TINY_ROLES, build_tiny

    for name in role or sorted(TINY_ROLES):
        path = build_tiny(name, force=force)
        out.print(f"{name:16s} {path}")


def _context(profile: str, store: Path | None, fps: float = 1.0, seek: str = "exact"):  # -> ToolContext
    from vidagent.media.store import Store
    from vidagent.models.hub import ModelHub
    from vidagent.models.profile import load_profile
    from vidagent.tools.base import ToolContext

    _check_seek(seek)  # before any model loads
    hub = ModelHub(load_profile(profile))
    _warn_fallbacks(hub)
    return ToolContext(hub=hub, store=Store(store), fps=fps, seek=seek)


_warned: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # hub -> roles already named


def _warn_fallbacks(hub) -> None:
    """The loud banner naming the roles that run on tiny random weights (each once per hub)."""
    from vidagent.models.hub import fallback_banner

    named = _warned.setdefault(hub, set())
    new = {role: record for role, record in hub.fallbacks.items() if role not in named}
    if not new:
        return
    named.update(new)
    err.print(fallback_banner(new, warning="[bold yellow]WARNING:[/]"), highlight=False)


@app.command()
def index(
    videos: Annotated[list[Path], typer.Argument(help="Video files to index.", show_default=False)],
    fps: Annotated[float, typer.Option(help="Frames sampled per second.")] = 1.0,
    seek: SeekOpt = "exact",
    profile: ProfileOpt = "auto",
    store: StoreOpt = None,
    captions_every: Annotated[
        float | None,
        typer.Option(
            "--captions-every",
            help="Also caption every SECONDS with the VLM (searchable with `texts`).",
            show_default=False,
        ),
    ] = None,
    engine: EngineOpt = "local",
    workers: Annotated[
        int | None, typer.Option(help="ray: CLIP actors (default: one per GPU, else 1).", show_default=False)
    ] = None,
    gpus: GpusOpt = False,
    ray_address: RayAddressOpt = None,
    speech: Annotated[
        bool, typer.Option(help="Also transcribe the audio track (Whisper), searchable with `texts`.")
    ] = True,
    text: Annotated[
        bool, typer.Option(help="Also read the on-screen text (OCR, 1 frame/s), searchable with `texts`.")
    ] = True,
) -> None:
    """Sample, embed and store frames (incremental and resumable), transcribe the speech and read the
    on-screen text (stored with embeddings for `texts` and the find_text tool); optionally dense captions."""
    from tqdm import tqdm

    _check_engine(engine)
    ctx = _context(profile, store, fps, seek)
    if engine == "ray":
        from vidagent.media.ray_engine import index_with_ray

        with tqdm(unit="frame", desc=f"ray: {len(videos)} videos", disable=None) as bar:
            reports = index_with_ray(
                videos,
                profile=profile,
                store=ctx.store,
                fps=fps,
                seek=seek,
                workers=workers,
                gpus=gpus,
                address=ray_address,
                progress=_progress(bar),
            )
    for path in videos:
        if engine == "ray":
            report = {r.video_id: r for r in reports}[ctx.store.content_hash(path)]  # hashes are cached
        else:
            with tqdm(unit="frame", desc=path.name, disable=None) as bar:
                report = ctx.index.add(path, fps=fps, seek=seek, progress=_progress(bar))
        _warn_fallbacks(ctx.hub)
        out.print(
            f"{path}: {report.frames_total} frames ({report.frames_added} new) with {report.model_id} "
            f"in {report.seconds:.2f} s ({report.frames_per_second:.1f} frames/s); id {report.video_id[:12]}"
        )
        if speech or text:
            from vidagent.tools.find_text import index_texts

            started = time.perf_counter()
            with err.status(
                f"{path.name}: "
                + " and ".join(
                    (["transcribing the speech"] if speech else [])
                    + (["reading the on-screen text"] if text else [])
                )
            ):
                counts = index_texts(ctx, path, speech=speech, text=text)
            _warn_fallbacks(ctx.hub)
            found = ", ".join(
                f"{n} {'speech segments' if tool == 'transcribe' else 'on-screen text lines'}"
                for tool, n in counts.items()
            )
            out.print(
                f"{path}: {found or 'no speech or text read'} in {time.perf_counter() - started:.2f} s "
                "(search them with `vidagent texts`)"
            )
        if captions_every is not None:
            from vidagent.tools.caption import caption_video

            with tqdm(unit="caption", desc=f"{path.name} captions", disable=None) as bar:
                captions = caption_video(ctx, path, every_s=captions_every, progress=_progress(bar))
            out.print(f"{path}: {len(captions)} captions, one per {captions_every:g} s")


def _evidence_table(records: list[dict], title: str) -> Table:
    """Evidence records as a table, numbered by their ``id`` (a session's) or their position."""
    table = Table(title=title)
    for col in ("#", "tool", "span (s)", "score", "frame", "details"):
        table.add_column(col)
    shown = ("id", "tool", "start", "end", "score", "frame_index", "video")
    for i, row in enumerate(records):
        details = {k: v for k, v in row.items() if k not in shown}
        table.add_row(
            str(row.get("id", i)),
            row["tool"],
            f"{row['start']:.1f}-{row['end']:.1f}",
            f"{row['score']:.3f}",
            str(row.get("frame_index", "")),
            json.dumps(details, ensure_ascii=False)[:120],
        )
    return table


@app.command()
def retrieve(
    video: VideoArg,
    query: Annotated[str, typer.Argument(help="What to look for.")],
    k: Annotated[int, typer.Option("-k", help="How many moments.")] = 5,
    span: SpanOpt = None,
    fps: Annotated[float, typer.Option(help="Index sampling rate.")] = 1.0,
    seek: SeekOpt = "exact",
    profile: ProfileOpt = "auto",
    store: StoreOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print Evidence JSON.")] = False,
) -> None:
    """The moments of one video that best match a text query (indexes it first if needed)."""
    from vidagent.tools.retrieve import TOOL

    evidence = TOOL(_context(profile, store, fps, seek), video, query=query, k=k, span=span)
    out.print_json(evidence.to_json()) if as_json else out.print(
        _evidence_table(evidence.to_records(), query)
    )


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    k: Annotated[int, typer.Option("-k", help="How many moments.")] = 10,
    profile: ProfileOpt = "auto",
    store: StoreOpt = None,
) -> None:
    """Search every indexed video for moments matching a text query."""
    from vidagent.tools.retrieve import search_library

    ctx = _context(profile, store)
    evidence = search_library(ctx, query, k=k)
    table = Table(title=f"{query!r} across {len(ctx.store.videos())} videos")
    for col in ("video", "span (s)", "score"):
        table.add_column(col)
    for row in evidence.to_records():
        video = ctx.store.video(row["video"])
        table.add_row(
            video["path"] if video else row["video"],
            f"{row['start']:.1f}-{row['end']:.1f}",
            f"{row['score']:.3f}",
        )
    out.print(table)


def _probe(video: Path) -> None:
    """Open the video (headers and first frame, ~0.5 s) before any model loads, so a bad file is one
    line at once rather than after seconds of loading."""
    from vidagent.media.video import Video

    with Video.open(video):
        pass


def _agent(
    profile: str, store: Path | None, fps: float, max_steps: int | None = None, seek: str = "exact"
):  # -> VideoAgent
    from vidagent.agent.api import VideoAgent
    from vidagent.agent.graph import Budget

    budget = Budget(max_steps=max_steps) if max_steps else None
    agent = VideoAgent(_context(profile, store, fps, seek), budget=budget)
    _warn_fallbacks(agent.ctx.hub)
    return agent


def _print_event(event: dict) -> None:
    """One line per streamed step, on stderr, so stdout stays the answer."""
    kind = event["type"]
    if kind == "plan":
        calls = ", ".join(f"{c['tool']}({json.dumps(c['args'])})" for c in event.get("calls", []))
        tag = " [fallback plan]" if event.get("fallback") else ""
        err.print(f"[cyan]plan{tag}[/] {calls or 'answer now'}", highlight=False)
    elif kind == "tool_call":
        err.print(f"[blue]  → {event['tool']}[/] {json.dumps(event['args'])}", highlight=False)
    elif kind == "tool_result":
        if "error" in event:
            err.print(f"[red]  ✗ {event['error']}[/]", highlight=False)
        else:
            err.print(
                f"[green]  ✓ {event['tool']}[/] {len(event['evidence_ids'])} rows in {event['seconds']:.2f} s",
                highlight=False,
            )


def _print_answer(answer) -> None:
    out.print(f"[bold]{answer.text}[/]", highlight=False)
    out.print(
        f"confidence {answer.confidence:.2f} · {answer.seconds:.1f} s · {answer.tool_calls} tool calls · "
        f"{answer.tokens} tokens · session {answer.session}",
        highlight=False,
    )
    if answer.evidence:
        out.print(_evidence_table(answer.evidence, "cited evidence"))


@app.command()
def ask(
    video: VideoArg,
    question: Annotated[str, typer.Argument(help="The question.")],
    option: Annotated[
        list[str] | None, typer.Option("--option", "-o", help="A multiple-choice option (repeat).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the Answer as JSON.")] = False,
    session: Annotated[str | None, typer.Option(help="Continue this chat session.")] = None,
    profile: ProfileOpt = "auto",
    store: StoreOpt = None,
    fps: Annotated[float, typer.Option(help="Index sampling rate.")] = 1.0,
    seek: SeekOpt = "exact",
    max_steps: Annotated[int | None, typer.Option(help="Planner steps at most.")] = None,
) -> None:
    """Answer a question about a video, streaming the steps, citing evidence."""
    _ask(video, question, option, as_json, session, profile, store, fps, max_steps, seek)


def _ask(
    video: Path,
    question: str,
    option: list[str] | None = None,
    as_json: bool = False,
    session: str | None = None,
    profile: str = "auto",
    store: Path | None = None,
    fps: float = 1.0,
    max_steps: int | None = None,
    seek: str = "exact",
):  # -> (VideoAgent, the streamed events)
    _probe(video)
    agent = _agent(profile, store, fps, max_steps, seek)
    events = []
    for event in agent.stream(video, question, option, session=session):
        if not as_json:
            _print_event(event)
        events.append(event)
    answer = agent.answer_from(events[-1], question, events)
    _warn_fallbacks(agent.ctx.hub)
    if as_json:
        print(answer.model_dump_json(indent=2))
    else:
        _print_answer(answer)
    return agent, events


@app.command()
def chat(
    video: VideoArg,
    session: Annotated[str | None, typer.Option(help="Resume this session id.")] = None,
    profile: ProfileOpt = "auto",
    store: StoreOpt = None,
    fps: Annotated[float, typer.Option(help="Index sampling rate.")] = 1.0,
    seek: SeekOpt = "exact",
) -> None:
    """A terminal chat about one video: /evidence lists what was found, /quit leaves."""
    from vidagent.core.errors import VidagentError as _Error

    _probe(video)
    agent = _agent(profile, store, fps, seek=seek)
    conversation = agent.chat(video, session)
    err.print(f"chat about {video} · session {conversation.id} · /evidence, /quit")
    while True:
        try:
            line = input("you> ").strip()
        except EOFError:
            break
        if not line:
            continue
        if line in ("/quit", "/exit"):
            break
        if line == "/evidence":
            out.print(_evidence_table(conversation.evidence_records, f"session {conversation.id}"))
            continue
        try:
            final = None
            for event in conversation.stream(line):
                _print_event(event)
                final = event
            _print_answer(agent.answer_from(final, line))
        except _Error as exc:
            err.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
    err.print(f"bye · resume with --session {conversation.id}")


TEXT_TOOLS = ("caption", "read_text", "transcribe")


@app.command()
def texts(
    query: Annotated[str, typer.Argument(help="Words to find, or what they are about.")],
    tool: Annotated[
        str | None, typer.Option(help="Only caption, read_text or transcribe rows.", show_default=False)
    ] = None,
    video: Annotated[Path | None, typer.Option(help="Only this video.", show_default=False)] = None,
    k: Annotated[int, typer.Option("-k", help="How many rows.")] = 20,
    profile: ProfileOpt = "auto",
    store: StoreOpt = None,
) -> None:
    """Search the stored transcripts, on-screen text and captions of every video, by keywords (FTS5)
    and by meaning (the profile's sentence embedder), fused."""
    from vidagent.media.store import Store
    from vidagent.media.text_search import TextSearch
    from vidagent.models.hub import ModelHub
    from vidagent.models.profile import load_profile
    from vidagent.models.sentence_embedders import embedder_for

    if tool is not None and tool not in TEXT_TOOLS:
        raise typer.BadParameter(f"--tool must be one of {', '.join(TEXT_TOOLS)}")
    db = Store(store)
    hub = ModelHub(load_profile(profile))
    video_id = db.content_hash(video) if video is not None else None
    found = TextSearch(db, embedder_for(hub)).search(
        query, video_id=video_id, tools=[tool] if tool else None, k=k
    )
    _warn_fallbacks(hub)
    table = Table(title=f"{query!r}: {len(found)} rows")
    for col in ("video", "tool", "span (s)", "matched by", "text"):
        table.add_column(col)
    for hit in found:
        row = hit.row
        indexed = db.video(row["video_id"])
        table.add_row(
            indexed["path"] if indexed else row["video_id"][:12],
            row["tool"],
            f"{row['start']:.1f}-{row['end']:.1f}",
            hit.matched_by,
            json.dumps(row["text"], ensure_ascii=False)[:120],
        )
    out.print(table)


@app.command()
def bench(
    names: Annotated[list[str] | None, typer.Argument(help="Benchmarks to run (default: all).")] = None,
    quick: Annotated[bool, typer.Option(help="Small inputs: a smoke run.")] = False,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    full_size: Annotated[
        bool, typer.Option(help="Full-size gpu-profile architectures (random weights).")
    ] = False,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write results as JSON here.")] = None,
    list_only: Annotated[bool, typer.Option("--list", help="List the benchmarks and exit.")] = False,
) -> None:
    """Measure speed and memory (frames/s, latency percentiles, peak RSS) and print a table."""
    import tempfile

    from vidagent.evals.benchmarks import Settings, discover, flush_denormals, to_json, to_markdown

    available = discover()
    if list_only:
        for bench_ in available.values():
            out.print(f"{bench_.name:14s} {bench_.description}")
        return
    unknown = sorted(set(names or []) - set(available))
    if unknown:
        raise typer.BadParameter(f"unknown benchmark(s) {unknown}; available: {sorted(available)}")
    flush_denormals()  # random weights: measure the architecture, not denormal arithmetic
    rows = []
    with tempfile.TemporaryDirectory(prefix="vidagent-bench-") as workdir:
        settings = Settings(quick=quick, device=device, full_size=full_size, workdir=workdir)
        for name in names or list(available):
            err.print(f"[bold]bench {name}[/] …")
            rows.extend(available[name].run(settings))
    print(to_markdown(rows))
    if json_out is not None:
        json_out.write_text(to_json(rows))
        err.print(f"wrote {json_out}")


@app.command("train-ground")
def train_ground(
    train: Annotated[
        Path | None, typer.Option("--train", help="Training data: QVHighlights JSONL or Charades-STA txt.")
    ] = None,
    val: Annotated[
        Path | None, typer.Option("--val", help="Validation data, scored after every epoch.")
    ] = None,
    videos: Annotated[
        Path | None, typer.Option("--videos", help="Folder of <vid>.mp4 (mkv, webm…) files.")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="qvhighlights or charades.")] = "qvhighlights",
    epochs: Annotated[int | None, typer.Option(help="Epochs (default 30; synthetic 60, quick 30).")] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Run folder: best/, last/, metrics.jsonl.")] = Path(
        "runs/ground"
    ),
    resume: Annotated[
        Path | None, typer.Option("--resume", help="Continue from a checkpoint (<out>/last).")
    ] = None,
    profile: ProfileOpt = "auto",
    batch_size: Annotated[int, typer.Option(help="Queries per step.")] = 32,
    lr: Annotated[float, typer.Option(help="Peak learning rate (AdamW, warm-up then cosine).")] = 5e-4,
    mixed_precision: Annotated[str, typer.Option(help="no, fp16 or bf16.")] = "no",
    cpu: Annotated[bool, typer.Option(help="Train on the CPU even with a GPU present.")] = False,
    cache: Annotated[
        Path | None, typer.Option(help="Feature cache folder (default: in the cache dir).")
    ] = None,
    pool_grid: Annotated[
        int | None, typer.Option(help="Average-pool each frame's patches to GxG (smaller cache).")
    ] = None,
    synthetic: Annotated[
        bool, typer.Option("--synthetic", help="Prove it learns: synthetic shapes set, tiny CLIP.")
    ] = False,
    quick: Annotated[bool, typer.Option(help="With --synthetic: the small set the tests use.")] = False,
) -> None:
    """Train the temporal grounding head on a frozen CLIP (or, with --synthetic, on generated videos)."""
    from vidagent.evals.grounding import format_metrics, run_synthetic, score
    from vidagent.grounding.train import TrainSettings
    from vidagent.grounding.train import train as train_head

    if synthetic:
        report = run_synthetic(out_dir, quick=quick, epochs=epochs)
        out.print(
            f"synthetic set: {report['train_queries']} training / {report['val_queries']} held-out queries "
            f"(unseen videos, same 12-query vocabulary); tiny random-weight CLIP; "
            f"{report['parameters']:,} learnable parameters; trained in {report['train_seconds']} s"
        )
        print(
            format_metrics(
                {
                    "trained (last epoch)": report["trained"],
                    "random spans": report["random_uniform"],
                    "random spans, train lengths": report["random_prior"],
                }
            )
        )
        out.print(f"checkpoint: {report['checkpoint']}")
        return
    if train is None or videos is None:
        raise typer.BadParameter("give --train and --videos (or --synthetic)")
    head = {"pool_grid": pool_grid} if pool_grid else {}
    result = train_head(
        TrainSettings(
            train=train,
            val=val,
            videos=videos,
            format=fmt,
            out=out_dir,
            epochs=epochs or 30,
            batch_size=batch_size,
            lr=lr,
            resume=resume,
            profile=profile,
            mixed_precision=mixed_precision,
            cpu=cpu,
            cache=cache,
            head=head,
        ),
        score=score,
    )
    out.print(
        f"{result.parameters:,} learnable parameters; {len(result.history)} epochs in {result.seconds:.1f} s; "
        f"best: {result.best}, last: {result.last}; log: {result.out / 'metrics.jsonl'}"
    )
    if result.best_metrics:
        print(format_metrics({"best (val)": result.best_metrics}))


@app.command("eval-ground")
def eval_ground(
    ckpt: Annotated[Path, typer.Option("--ckpt", help="A trained head (e.g. runs/ground/best).")],
    data: Annotated[Path, typer.Option("--data", help="QVHighlights JSONL or Charades-STA txt.")],
    videos: Annotated[Path, typer.Option("--videos", help="Folder of <vid>.mp4 (mkv, webm…) files.")],
    fmt: Annotated[str, typer.Option("--format", help="qvhighlights or charades.")] = "qvhighlights",
    profile: ProfileOpt = "auto",
    cache: Annotated[
        Path | None, typer.Option(help="Feature cache folder (default: in the cache dir).")
    ] = None,
    baseline: Annotated[bool, typer.Option(help="Also score random spans (the chance level).")] = False,
    predictions: Annotated[
        Path | None, typer.Option("--predictions", help="Write predictions (JSONL) here.")
    ] = None,
) -> None:
    """Score a trained grounding head on a dataset and print the metrics table."""
    from vidagent.evals.grounding import evaluate_checkpoint, format_metrics, random_baseline

    result = evaluate_checkpoint(ckpt, data, videos, fmt=fmt, profile=profile, cache=cache)
    table = {str(ckpt): result.metrics}
    if baseline:
        table["random spans"] = random_baseline(result.samples, fmt)
    print(format_metrics(table))
    if predictions is not None:
        predictions.write_text("".join(json.dumps(p) + "\n" for p in result.predictions))
        err.print(f"wrote {len(result.predictions)} predictions to {predictions}")


@app.command("eval")
def eval_(
    target: Annotated[
        str,
        typer.Argument(
            help="A task: "
            + "; ".join(f"{name} ({registered.help})" for name, registered in TASK_REGISTRY.items())
            + "; or 'report' (summarise run files)."
        ),
    ],
    runs: Annotated[
        list[Path] | None, typer.Argument(help="report: one run file, or two to compare.", show_default=False)
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option("--data", help="The task's folder (or file, for jsonl).", show_default=False),
    ] = None,
    split: Annotated[
        str | None, typer.Option(help="Split or subset (task-specific).", show_default=False)
    ] = None,
    method: Annotated[
        str | None,
        typer.Option(
            help="agent, vlm-uniform (the single-VLM baseline), blind (no video) or planner (first plan step only; "
            "the default for routing; otherwise agent).",
            show_default=False,
        ),
    ] = None,
    profile: ProfileOpt = "auto",
    limit: Annotated[int | None, typer.Option(help="Only the first N samples.", show_default=False)] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Samples answered at once: local, threads over one set of models (default 1); ray, model actors "
            "(default: one per GPU, else 1).",
            show_default=False,
        ),
    ] = None,
    engine: EngineOpt = "local",
    gpus: GpusOpt = False,
    ray_address: RayAddressOpt = None,
    out_file: Annotated[
        Path | None,
        typer.Option("--out", help="Run file (JSONL; default runs/TASK-METHOD.jsonl).", show_default=False),
    ] = None,
    resume: Annotated[
        bool, typer.Option(help="Continue --out, answering only the samples not in it yet.")
    ] = False,
    frames: Annotated[int, typer.Option(help="vlm-uniform: frames shown to the VLM.")] = 8,
    max_steps: Annotated[int | None, typer.Option(help="agent: planner steps.", show_default=False)] = None,
    subtitles: Annotated[bool, typer.Option(help="videomme: give the subtitles as context.")] = False,
    stopwords: Annotated[
        Path | None,
        typer.Option(
            help="nextqa-oe: stop words dropped before WUPS (one per line; default NExT-OE's own list).",
            show_default=False,
        ),
    ] = None,
    judge: Annotated[
        str | None,
        typer.Option(help="Open-ended: a profile whose planner judges answers.", show_default=False),
    ] = None,
    per_kind: Annotated[int, typer.Option(help="synthetic, real: questions per kind.")] = 2,
    seed: Annotated[
        int, typer.Option(help="synthetic, real: which questions and clips (another seed, another set).")
    ] = 0,
    store: StoreOpt = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the report as JSON here.", show_default=False)
    ] = None,
) -> None:
    """Evaluate on a VideoQA benchmark (one JSONL line per sample, resumable), or report on runs."""
    from tqdm import tqdm

    from vidagent.evals.runner import METHODS, RunSettings, report, run_task, to_markdown
    from vidagent.evals.tasks import egoschema_submission, load_task

    if target == "report":
        if not runs:
            raise typer.BadParameter(
                "give one run file, or two to compare: vidagent eval report RUN.jsonl [RUN2]"
            )
        result = report(runs)
    else:
        if runs:
            raise typer.BadParameter(
                f"unexpected arguments {[str(r) for r in runs]} (only 'report' takes run files)"
            )
        method = method or ("planner" if target == "routing" else "agent")
        if method not in METHODS:
            raise typer.BadParameter(f"--method must be one of {', '.join(METHODS)}")
        if (target == "routing") != (method == "planner"):
            raise typer.BadParameter("the routing task runs with --method planner, and only it does")
        _check_engine(engine)
        out_file = out_file or Path("runs") / f"{target}-{method}.jsonl"
        if target == "synthetic":
            from vidagent.evals.synthetic import write_synthetic

            data = data or out_file.parent / "synthetic-data"
            write_synthetic(data, per_kind=per_kind, seed=seed)
        elif target == "real":
            from vidagent.evals.real_content import write_real_content

            data = data or out_file.parent / "real-data"
            with err.status(f"writing the real-content clips ({per_kind} per kind, seed {seed}) to {data}"):
                write_real_content(data, per_kind=per_kind, seed=seed)
        elif data is None and target != "routing":
            raise typer.BadParameter("--data is required: the folder holding the task's files")
        task = load_task(target, data, split=split, subtitles=subtitles, stopwords=stopwords)
        settings = RunSettings(
            task=task.name,
            method=method,
            profile=profile,
            split=split,
            limit=limit,
            frames=frames,
            max_steps=max_steps,
            judge=judge,
        )
        ray_engine = None
        if engine == "ray":
            from vidagent.evals.ray_eval import RayEngine

            ray_engine = RayEngine(store=store, workers=workers, gpus=gpus, address=ray_address)
        with tqdm(
            unit="q", desc=f"{target} {method}" + (" (ray)" if ray_engine else ""), disable=None
        ) as bar:
            rows = run_task(
                task,
                settings,
                out_file,
                store=store,
                resume=resume,
                workers=workers or 1,
                progress=_progress(bar),
                engine=ray_engine,
            )
        err.print(f"wrote {len(rows)} answers to {out_file}")
        if target == "egoschema" and any(r.get("correct") is None for r in rows):
            submission = out_file.with_suffix(".submission.csv")
            submission.write_text(egoschema_submission(rows))
            err.print(f"wrote the EgoSchema submission file {submission}")
        result = report([out_file])
    print(to_markdown(result), end="")
    if json_out is not None:
        json_out.write_text(json.dumps(result, indent=2, default=str))
        err.print(f"wrote {json_out}")


@app.command()
def detect(
    video: VideoArg,
    prompt: Annotated[
        str, typer.Argument(help="Objects to find, each ending with '.', e.g. 'person. bicycle.'")
    ],
    fps: Annotated[float, typer.Option(help="Frames examined per second.")] = 2.0,
    span: SpanOpt = None,
    box_threshold: Annotated[float, typer.Option(help="Drop boxes scoring at most this.")] = 0.35,
    text_threshold: Annotated[
        float, typer.Option(help="Drop boxes whose best label scores at most this.")
    ] = 0.25,
    out_video: Annotated[Path | None, typer.Option("--out", help="Also write an annotated mp4 here.")] = None,
    profile: ProfileOpt = "auto",
    store: StoreOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print Evidence JSON.")] = False,
) -> None:
    """Detect and track named objects (GroundingDINO + ByteTrack): one row per track, counts per label."""
    from pydantic import ValidationError
    from tqdm import tqdm

    from vidagent.tools.detect_track import DetectInput, render, to_evidence, tracks_for

    try:
        args = DetectInput(
            prompt=prompt, fps=fps, span=span, box_threshold=box_threshold, text_threshold=text_threshold
        )
    except ValidationError as error:
        raise typer.BadParameter(
            "; ".join(e["msg"].removeprefix("Value error, ") for e in error.errors())
        ) from None
    ctx = _context(profile, store)
    with tqdm(unit="frame", desc="detect", disable=None) as bar:
        video_id, tracks, settings = tracks_for(ctx, video, args, _progress(bar))
    evidence = to_evidence(tracks, settings, video_id)
    if as_json:
        out.print_json(evidence.to_json())
    else:
        out.print(_evidence_table(evidence.to_records(), f"{args.prompt} ({len(tracks)} tracks)"))
    if out_video is not None:
        with tqdm(unit="frame", desc="render", disable=None) as bar:
            render(video, tracks, out_video, step=settings["step"], span=args.span, progress=_progress(bar))
        err.print(f"wrote {out_video}")


@app.command()
def serve(
    host: Annotated[
        str, typer.Option(help="Address to bind; off loopback VIDAGENT_API_KEY is required.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    profile: ProfileOpt = "auto",
    store: StoreOpt = None,
    fps: Annotated[float, typer.Option(help="Index sampling rate.")] = 1.0,
    seek: SeekOpt = "exact",
    upload_dir: Annotated[
        Path | None, typer.Option(help="Where uploads go (default: next to the store).", show_default=False)
    ] = None,
    max_upload_mb: Annotated[float, typer.Option(help="Largest upload accepted.")] = 512.0,
    cors_origin: Annotated[
        list[str] | None,
        typer.Option("--cors-origin", help="Allow this origin (repeat).", show_default=False),
    ] = None,
) -> None:
    """Serve the HTTP API and the web chat page (http://127.0.0.1:8000/, API docs at /docs)."""
    import os

    from vidagent.core.paths import data_dir

    try:
        from vidagent.app.server import is_loopback
        from vidagent.app.server import serve as run_server
    except ModuleNotFoundError as exc:
        raise VidagentError(
            f"vidagent serve needs the server extra ({exc.name} is missing): pip install 'vidagent[server]'"
        ) from None

    key = os.environ.get("VIDAGENT_API_KEY", "").strip() or None
    if not is_loopback(host) and key is None:  # before any model loads
        raise VidagentError(
            f"refusing to listen on {host} without an API key: set VIDAGENT_API_KEY "
            "(every request must then send it) or bind to 127.0.0.1"
        )
    uploads = upload_dir or ((store.resolve().parent if store else data_dir()) / "uploads")
    agent = _agent(profile, store, fps, seek=seek)
    err.print(
        f"vidagent serving on http://{host}:{port}/ (profile {agent.ctx.hub.profile.name}, uploads in "
        f"{uploads}, API key {'required' if key else 'off'})",
        highlight=False,
    )
    run_server(
        agent,
        host=host,
        port=port,
        upload_dir=uploads,
        api_key=key,
        cors_origins=cors_origin or [],
        max_upload_mb=max_upload_mb,
    )


@app.command()
def doctor(profile: ProfileOpt = "auto") -> None:
    """Check torch, devices, decoders and whether each of the profile's models loads."""
    import platform

    import torch

    from vidagent.models.hub import ModelHub
    from vidagent.models.profile import load_profile

    table = Table(title="vidagent doctor", show_header=False)
    table.add_row("python", platform.python_version())
    table.add_row("torch", torch.__version__)
    table.add_row("cuda", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "not available")
    mps = getattr(torch.backends, "mps", None)
    table.add_row("mps", "available" if mps and mps.is_available() else "not available")
    for module in ("av", "decord", "transformers"):
        try:
            mod = __import__(module)
            table.add_row(module, getattr(mod, "__version__", "installed"))
        except ImportError as exc:
            table.add_row(module, f"[yellow]not importable ({exc})[/]")
    out.print(table)

    hub = ModelHub(load_profile(profile))
    roles = Table(title=f"profile {hub.profile.name!r}")
    for col in ("role", "id", "weights", "status"):
        roles.add_column(col)
    failures = 0
    for role, spec in hub.profile.roles.items():
        ok, message = hub.check(role)
        failures += not ok
        roles.add_row(
            role,
            spec.id,
            _weights_cell(*hub.weights(role)),
            ("[green]ok[/] " if ok else "[red]failed[/] ") + message,
        )
    ocr_kind, ocr_where = _ocr_weights()
    failures += ocr_kind != "real"
    roles.add_row(
        "ocr",
        "PP-OCR (read_text)",
        _weights_cell(ocr_kind, ocr_where),
        "[green]ok[/]" if ocr_kind == "real" else "[red]failed[/]",
    )
    out.print(roles)
    random = [role for role in hub.profile.roles if hub.weights(role)[0] == "random"]
    if random:
        err.print(
            f"[bold yellow]random weights:[/] {', '.join(random)} (answers that need them are meaningless); "
            f"real: {', '.join(r for r in hub.profile.roles if r not in random)}, ocr",
            highlight=False,
        )
    if failures:
        raise typer.Exit(1)


@app.command()
def demo(
    video: Annotated[str, typer.Option(help="A sample video name or a path.")] = "announcement",
    question: Annotated[str, typer.Option(help="What to ask.")] = "Where is the next train going?",
    profile: ProfileOpt = "auto",
    store: StoreOpt = None,
) -> None:
    """The main job on a real sample video: probe it, answer a question citing its evidence, and say
    which roles ran on real weights. The default clip (vidagent's own `announcement`: bikes footage with
    a spoken announcement and a sign) has an answer the packaged real weights can give with no hub."""
    from vidagent.media.sample_videos import SAMPLE_VIDEOS, sample_video

    path = sample_video(video) if video in SAMPLE_VIDEOS else Path(video)
    info(path)
    err.print(f"[bold]question:[/] {question}", highlight=False)
    agent, events = _ask(path, question, profile=profile, store=store)
    hub = agent.ctx.hub
    used = {role: hub.weights(role) for role in hub.loaded_roles()}
    ocr_used = any(
        event.get("type") == "tool_call" and event.get("tool") in ("read_text", "find_text")
        for event in events
    )
    real = [role for role, (kind, _) in used.items() if kind == "real"] + (["ocr"] if ocr_used else [])
    random = [role for role, (kind, _) in used.items() if kind == "random"]
    err.print(
        f"[bold]weights:[/] real: {', '.join(real) or 'none'}"
        + (f"; [bold red]TINY RANDOM[/]: {', '.join(random)}" if random else "; no random weights ran")
        + " (`vidagent doctor` shows where each comes from)",
        highlight=False,
    )


@app.command("mcp")
def mcp_(
    allow: Annotated[
        list[Path] | None,
        typer.Option(
            "--allow",
            help="Let clients name video files under DIR (repeat; default: video ids from the store only).",
            show_default=False,
        ),
    ] = None,
    http: Annotated[
        bool, typer.Option("--http", help="Serve streamable HTTP on 127.0.0.1 instead of stdio.")
    ] = False,
    port: Annotated[int, typer.Option(help="--http: TCP port (the endpoint is /mcp).")] = 8000,
    profile: ProfileOpt = "auto",
    store: StoreOpt = None,
    fps: Annotated[float, typer.Option(help="Index sampling rate.")] = 1.0,
    seek: SeekOpt = "exact",
    max_steps: Annotated[
        int | None, typer.Option(help="ask: planner steps at most.", show_default=False)
    ] = None,
) -> None:
    """Serve vidagent to MCP clients (desktop assistants, coding agents): every tool, ask and index,
    and the store's videos as resources; over stdio, or streamable HTTP on loopback with --http."""
    try:
        from vidagent.app import mcp_server
    except ModuleNotFoundError as exc:
        raise VidagentError(
            f"vidagent mcp needs the mcp extra ({exc.name} is missing): pip install 'vidagent[mcp]'"
        ) from None

    allowed = mcp_server.allowed_directories(allow or [])  # before any model loads
    with mcp_server.stdout_to_stderr() if not http else contextlib.nullcontext():
        agent = _agent(profile, store, fps, max_steps, seek)  # on stdio, stdout carries only the protocol
    server = mcp_server.build_server(agent, allowed)
    where = f"http://127.0.0.1:{port}/mcp" if http else "stdio"
    videos = "video ids, and files under " + ", ".join(map(str, allowed)) if allowed else "video ids only"
    err.print(
        f"vidagent MCP server on {where} (profile {agent.ctx.hub.profile.name}, store "
        f"{agent.ctx.store.path}; videos: {videos})",
        highlight=False,
        soft_wrap=True,
    )
    if http:
        mcp_server.run_http(server, port)
    else:
        mcp_server.run_stdio(server)


def main(argv: list[str] | None = None) -> None:
    """Entry point: user-facing errors become one line on stderr and exit code 1."""
    try:
        app(args=argv, prog_name="vidagent", standalone_mode=True)
    except VidagentError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
