"""The video index: frames sampled once, embedded with the shared CLIP, kept in the store.

``Index.add(video)`` samples the video on a fixed grid (``fps`` samples per second), decodes
the frames at the encoder's input size in a background thread while the encoder embeds the
previous chunk, and commits each chunk's embeddings in one transaction. Killed half-way, it
resumes from the last committed chunk: grid positions already stored are skipped, without
decoding them again. Re-adding an indexed video does no work.

What the temporal grounding head needs (patch tokens of the last layers) is not stored: it is
~300 KB per frame for ViT-B/32, 1 GB per hour of video at 1 fps. The ground tool computes it
on demand for the span it grounds in, from the same encoder (see ``ClipEncoder``).
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vidagent.media.store import FrameRows, Store
from vidagent.media.video import Frames, Video, target_times
from vidagent.models.encoders import ClipEncoder
from vidagent.models.hub import ModelHub

Progress = Callable[[int, int], None]  # (frames done, frames total)

# The decoder behind indexing. decord decoding in the background thread slows the encoder beside
# it 2.6x on CPU (ViT-B/32: 31 -> 12 frames/s; its decode threads keep the cores busy), PyAV's
# not at all (32.9 -> 32.5), so a whole index runs 60 % faster with PyAV (31.7 against 19.6
# frames/s over 10 minutes). The Ray engine decodes with the same one, so both store the same bits.
INDEX_DECODER = "pyav"


@dataclass(frozen=True)
class IndexReport:
    video_id: str
    path: str
    model_id: str
    sampling: str
    frames_total: int
    frames_added: int
    seconds: float
    texts: dict[str, int] = field(default_factory=dict)  # speech / on-screen text rows stored, per tool

    @property
    def frames_per_second(self) -> float:
        return self.frames_added / self.seconds if self.seconds > 0 else 0.0


def sampling_key(fps: float, seek: str = "exact") -> str:
    """The name of a frame set's sampling: "fps=1" (exact frames), "fps=1,seek=keyframe"."""
    return f"fps={fps:g}" if seek == "exact" else f"fps={fps:g},seek={seek}"


def embed_distinct(encoder: ClipEncoder, frames: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Embeddings of ``frames``, each distinct frame (by index) encoded once: keyframe mode, and
    sampling faster than the video's rate, give the same frame at several grid points."""
    distinct, first, inverse = np.unique(indices, return_index=True, return_inverse=True)
    if len(distinct) == len(indices):
        return encoder.encode_images(frames).embeddings
    return encoder.encode_images(frames[first]).embeddings[inverse.reshape(-1)]


def parse_sampling(key: str) -> tuple[float, str]:
    """``sampling_key``'s inverse: "fps=1,seek=keyframe" -> (1.0, "keyframe")."""
    fields = dict(part.split("=", 1) for part in key.split(","))
    return float(fields["fps"]), fields.get("seek", "exact")


class Index:
    """Builds and reads frame embeddings for videos; see the module docstring."""

    def __init__(
        self,
        hub: ModelHub,
        store: Store,
        *,
        chunk_size: int = 32,
        backend: str = INDEX_DECODER,
    ) -> None:
        self.hub = hub
        self.store = store
        self.chunk_size = chunk_size
        self.backend = backend
        self._encoder: ClipEncoder | None = None
        self._encoder_lock = threading.Lock()

    @property
    def encoder(self) -> ClipEncoder:
        with self._encoder_lock:
            if self._encoder is None:
                self._encoder = ClipEncoder(self.hub.get("clip"), batch_size=self.chunk_size)
            return self._encoder

    def video_id(self, path: str | Path) -> str:
        return self.store.content_hash(path)

    def add(
        self, path: str | Path, *, fps: float = 1.0, seek: str = "exact", progress: Progress | None = None
    ) -> IndexReport:
        """Index one video (incremental, resumable); returns what was done.

        ``seek="keyframe"`` stores, for each grid point, the nearest keyframe (with its true time)
        in a frame set of its own: much faster to build, coarser in time.
        """
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps}")
        started = time.perf_counter()
        with Video.open(path, backend=self.backend, seek=seek) as video:
            video_id = self.store.content_hash(path)
            self.store.add_video(video_id, path, video.meta.to_dict())
            encoder = self.encoder
            sampling = sampling_key(fps, seek)
            grid = target_times((0.0, video.duration), fps=fps)
            done = self.store.stored_positions(video_id, encoder.model_id, sampling)
            todo = np.array([k for k in range(len(grid)) if k not in done], dtype=np.int64)
            self.store.begin_frame_set(video_id, encoder.model_id, sampling, len(grid), encoder.embed_dim)
            if progress:
                progress(len(done), len(grid))
            added = 0
            for positions, frames in self._decode_ahead(video, grid, todo, encoder.input_size):
                embeddings = embed_distinct(encoder, frames.frames, frames.indices)
                self.store.add_frames(
                    video_id,
                    encoder.model_id,
                    sampling,
                    positions,
                    frames.timestamps,
                    frames.indices,
                    embeddings,
                )
                added += len(positions)
                if progress:
                    progress(len(done) + added, len(grid))
            self.store.finish_frame_set(video_id, encoder.model_id, sampling)
        return IndexReport(
            video_id=video_id,
            path=str(path),
            model_id=encoder.model_id,
            sampling=sampling,
            frames_total=len(grid),
            frames_added=added,
            seconds=time.perf_counter() - started,
        )

    def _decode_ahead(
        self, video: Video, grid: np.ndarray, todo: np.ndarray, short_side: int
    ) -> Iterator[tuple[np.ndarray, Frames]]:
        """Decode chunks in a thread, at most two ahead of the consumer (flat memory)."""
        chunks: queue.Queue[tuple[np.ndarray, Frames] | BaseException | None] = queue.Queue(maxsize=2)
        stop = threading.Event()

        def produce() -> None:
            try:
                start = 0
                for frames in video.iter_at(grid[todo], short_side=short_side, chunk_size=self.chunk_size):
                    if stop.is_set():
                        return
                    chunks.put((todo[start : start + len(frames)], frames))
                    start += len(frames)
            except BaseException as exc:  # handed to the consumer, re-raised there
                chunks.put(exc)
            finally:
                chunks.put(None)

        worker = threading.Thread(target=produce, name="vidagent-decode", daemon=True)
        worker.start()
        try:
            while (item := chunks.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            while worker.is_alive():  # unblock a producer waiting on a full queue
                with contextlib.suppress(queue.Empty):
                    chunks.get(timeout=0.1)
            worker.join()

    def frames(self, path_or_id: str | Path, *, fps: float = 1.0, seek: str = "exact") -> FrameRows:
        """Stored frames of a video (indexing it first if needed)."""
        video_id = self._resolve(path_or_id, fps, seek)
        return self.store.frames(video_id, self.encoder.model_id, sampling_key(fps, seek))

    def _resolve(self, path_or_id: str | Path, fps: float, seek: str) -> str:
        if isinstance(path_or_id, str) and (stored := self.store.video(path_or_id)) is not None:
            video_id = path_or_id
            info = self.store.frame_set(video_id, self.encoder.model_id, sampling_key(fps, seek))
            if info and info["complete"]:
                return video_id
            path_or_id = stored["path"]
        report = self.add(path_or_id, fps=fps, seek=seek)
        return report.video_id
