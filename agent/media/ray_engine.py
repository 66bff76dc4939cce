"""Indexing beyond one process: Ray Data over the videos' frame chunks, CLIP in model actors.

``index_with_ray(paths, profile=..., store=...)`` is ``vidagent index --engine ray``. The driver
(this process) owns the store: it hashes each video, registers it, works out which grid
positions are still missing (the same fixed grid and chunking as :class:`~vidagent.media.index.Index`,
so a killed run resumes and a finished video is skipped) and hands those chunks to Ray Data.
Each chunk is embedded in a model actor (``ClipEncoder`` over the profile's ``clip`` role: one
actor per GPU with ``gpus=True``, else ``workers`` CPU actors). With GPUs, chunks are decoded
in CPU tasks of their own that stream frames into the actors, so every core decodes while the
GPUs embed (decoding and image preprocessing on the CPU limit a single GPU process; see
evals/BENCHMARKS.md); on CPUs each actor decodes its own chunks. Only the embeddings travel
back; the driver writes each chunk in one transaction, exactly as the local engine does, so the
store is the same whichever engine filled it.

Across machines: start a Ray cluster (``ray start --head`` / ``ray start --address=HEAD:6379``),
pass ``address="auto"`` (``--ray-address auto``), and keep the videos on storage every node
sees at the same path (NFS, a bucket mount): actors open the files by path.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vidagent.core.errors import VidagentError
from vidagent.media.index import INDEX_DECODER, IndexReport, embed_distinct, sampling_key
from vidagent.media.store import Store
from vidagent.media.video import Video, target_times

ENV_PREFIXES = ("VIDAGENT_", "HF_", "TRANSFORMERS_", "OMP_NUM_THREADS")


class RayUnavailable(VidagentError):
    """The ray engine needs the ray extra."""


@dataclass
class _Plan:
    """One video's work: its id, grid and the chunks of positions still missing."""

    path: Path
    video_id: str
    grid: np.ndarray
    done: int
    chunks: list[np.ndarray]
    started: float


def decode_chunk(row: dict[str, Any], short_side: int) -> dict[str, Any]:
    """Ray Data task: one chunk's frames, decoded at the encoder's input size (uint8 bytes + shape).

    One decoder per task (Ray runs the tasks in parallel); chunks start at keyframes where they can
    (:func:`keyframe_chunks`), so no task decodes a stretch that another one decodes too.
    """
    seek = str(row.get("seek", "exact"))
    with Video.open(str(row["path"]), backend=INDEX_DECODER, seek=seek, workers=1) as video:
        frames = video.sample_at(np.asarray(row["times"], np.float64), short_side=short_side)
    return {
        "video_id": row["video_id"],
        "positions": np.asarray(row["positions"], np.int64)[: len(frames)].tobytes(),
        "timestamps": np.asarray(frames.timestamps, np.float64).tobytes(),
        "indices": np.asarray(frames.indices, np.int64).tobytes(),
        "frames": np.ascontiguousarray(frames.frames).tobytes(),
        "shape": list(frames.frames.shape),
    }


class EmbedChunks:
    """The Ray Data model actor: embeds each chunk's frames with CLIP (decoding them first when the
    pipeline has no decode stage)."""

    def __init__(self, profile: str, chunk_size: int) -> None:
        from vidagent.models.encoders import ClipEncoder
        from vidagent.models.hub import ModelHub
        from vidagent.models.profile import load_profile

        # the profile's device: "auto" is the GPU Ray gave this actor, else the CPU
        self.encoder = ClipEncoder(ModelHub(load_profile(profile)).get("clip"), batch_size=chunk_size)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out: dict[str, list[Any]] = {
            k: [] for k in ("video_id", "positions", "timestamps", "indices", "embeddings", "dim", "model_id")
        }
        for i in range(len(batch["video_id"])):
            row = {key: values[i] for key, values in batch.items()}
            if "frames" not in row:
                row = decode_chunk(row, self.encoder.input_size)
            frames = np.frombuffer(row["frames"], np.uint8).reshape([int(n) for n in row["shape"]])
            indices = np.frombuffer(row["indices"], np.int64)
            embeddings = embed_distinct(self.encoder, frames, indices).astype(np.float32)
            for key in ("video_id", "positions", "timestamps", "indices"):
                out[key].append(row[key])
            out["embeddings"].append(embeddings.tobytes())
            out["dim"].append(embeddings.shape[1] if embeddings.ndim == 2 else self.encoder.embed_dim)
            out["model_id"].append(self.encoder.model_id)
        return {k: np.array(v, dtype=object) for k, v in out.items()}


def _ray() -> Any:
    try:
        import ray
    except ModuleNotFoundError:
        raise RayUnavailable("the ray engine needs Ray: pip install 'vidagent[ray]'") from None
    return ray


def init_ray(address: str | None = None, num_cpus: int | None = None) -> Any:
    """Connect to (or start) Ray, passing vidagent's and Hugging Face's settings to the workers.

    Ray Data's own progress lines are turned down to warnings (unless ``RAY_DATA_LOG_LEVEL`` says
    otherwise): the CLI shows one progress bar.
    """
    os.environ.setdefault("RAY_DATA_LOG_LEVEL", "WARNING")  # read when Ray Data sets up its loggers
    ray = _ray()
    if not ray.is_initialized():
        env = {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIXES)}
        ray.init(
            address=address,
            num_cpus=num_cpus if address is None else None,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
            runtime_env={"env_vars": env},
        )
    ray.data.DataContext.get_current().enable_progress_bars = False
    return ray


def keyframe_chunks(
    todo: np.ndarray, grid: np.ndarray, keys: np.ndarray | None, size: int
) -> list[np.ndarray]:
    """``todo`` (grid positions) in chunks of at most ``size``, each cut where a keyframe lies
    between two positions when one does in the chunk's second half (else at ``size``)."""
    if keys is None:
        return [todo[i : i + size] for i in range(0, len(todo), size)]
    times = grid[todo]
    keyed = np.searchsorted(keys, times[1:], side="right") > np.searchsorted(keys, times[:-1], side="right")
    chunks, start = [], 0
    while start < len(todo):
        end = min(start + size, len(todo))
        if end < len(todo):
            cuts = np.flatnonzero(keyed[start + max(size // 2, 1) - 1 : end - 1])
            if len(cuts):
                end = start + max(size // 2, 1) + int(cuts[-1])
        chunks.append(todo[start:end])
        start = end
    return chunks


def _plan(store: Store, path: Path, model_id: str, fps: float, seek: str, chunk_size: int) -> _Plan:
    started = time.perf_counter()
    with Video.open(path, backend=INDEX_DECODER, seek=seek, workers=1) as video:
        video_id = store.content_hash(path)
        store.add_video(video_id, path, video.meta.to_dict())
        grid = target_times((0.0, video.duration), fps=fps)
        keys = video.keyframes
    done = store.stored_positions(video_id, model_id, sampling_key(fps, seek))
    todo = np.array([k for k in range(len(grid)) if k not in done], dtype=np.int64)
    return _Plan(path, video_id, grid, len(done), keyframe_chunks(todo, grid, keys, chunk_size), started)


def index_with_ray(
    paths: Sequence[str | Path],
    *,
    profile: str = "auto",
    store: Store,
    fps: float = 1.0,
    seek: str = "exact",
    workers: int | None = None,
    gpus: bool = False,
    chunk_size: int = 32,
    address: str | None = None,
    decode_tasks: bool | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[IndexReport]:
    """Index ``paths`` with Ray (see the module docstring); one report per video, in order.

    ``decode_tasks`` (default: with ``gpus``) decodes chunks in CPU tasks of their own, streamed
    into the model actors, so every CPU core decodes while the GPUs embed; without it each actor
    decodes its own chunks (on CPUs that share cores with the encoder, nothing is gained by
    splitting).
    """
    from vidagent.models.encoders import ClipEncoder
    from vidagent.models.hub import ModelHub
    from vidagent.models.profile import load_profile

    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    # the driver resolves the checkpoint once (model id and width key the stored rows)
    encoder = ClipEncoder(ModelHub(load_profile(profile)).get("clip"))
    model_id, dim, sampling = encoder.model_id, encoder.embed_dim, sampling_key(fps, seek)
    plans: list[_Plan] = []
    for path in paths:
        plan = _plan(store, Path(path), model_id, fps, seek, chunk_size)
        if all(p.video_id != plan.video_id for p in plans):  # the same content twice: index it once
            plans.append(plan)
    for plan in plans:
        store.begin_frame_set(plan.video_id, model_id, sampling, len(plan.grid), dim)
    items = [
        {
            "path": str(plan.path),
            "video_id": plan.video_id,
            "positions": chunk.tolist(),
            "times": plan.grid[chunk].tolist(),
            "seek": seek,
        }
        for plan in plans
        for chunk in plan.chunks
    ]
    total = sum(len(plan.grid) for plan in plans)
    finished = sum(plan.done for plan in plans)
    added = dict.fromkeys((plan.video_id for plan in plans), 0)
    if progress:
        progress(finished, total)
    if items:
        ray = init_ray(address, num_cpus=workers)
        actors = workers or (max(1, int(ray.cluster_resources().get("GPU", 0))) if gpus else 1)
        dataset = ray.data.from_items(items)
        if decode_tasks if decode_tasks is not None else gpus:
            dataset = dataset.map(decode_chunk, fn_kwargs={"short_side": encoder.input_size}, num_cpus=1)
        dataset = dataset.map_batches(
            EmbedChunks,
            fn_constructor_kwargs={"profile": profile, "chunk_size": chunk_size},
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=actors),
            num_gpus=1 if gpus else 0,
            num_cpus=0 if gpus else 1,
        )
        for row in dataset.iter_rows():
            if row["model_id"] != model_id:
                raise VidagentError(
                    f"a Ray worker loaded {row['model_id']!r} for the clip role, the driver "
                    f"{model_id!r}: give every node the same checkpoints"
                )
            positions = np.frombuffer(row["positions"], np.int64)
            embeddings = np.frombuffer(row["embeddings"], np.float32).reshape(len(positions), int(row["dim"]))
            store.add_frames(
                row["video_id"],
                model_id,
                sampling,
                positions,
                np.frombuffer(row["timestamps"]),
                np.frombuffer(row["indices"], np.int64),
                embeddings,
            )
            added[row["video_id"]] += len(positions)
            finished += len(positions)
            if progress:
                progress(finished, total)
    reports = []
    for plan in plans:
        store.finish_frame_set(plan.video_id, model_id, sampling)
        reports.append(
            IndexReport(
                video_id=plan.video_id,
                path=str(plan.path),
                model_id=model_id,
                sampling=sampling,
                frames_total=len(plan.grid),
                frames_added=added[plan.video_id],
                seconds=time.perf_counter() - plan.started,
            )
        )
    return reports
