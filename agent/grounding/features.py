"""Feature caches of the grounding head: frozen CLIP features per clip, computed once.

* :class:`FeatureCache` (training and evaluation): one frame at the centre of every clip
  (``clip_seconds``: 2 s for QVHighlights, 1 s for Charades-STA by default), the tokens of its
  last ``K`` layers saved as ``<cache>/<clip model>/clip<c>s-last<K>-grid<g>/<vid>.safetensors``
  (float16, with the video's duration), with a small in-memory LRU in front. For ViT-B/32 a frame
  is 4 layers x 50 tokens x 768 x 2 bytes = 300 KB: 23 MB per 150 s QVHighlights video at 2 s
  clips. ``--pool-grid 4`` (CLS + 4x4 pooled patches) cuts that to a third.
* :class:`QueryFeatures`: text-tower features per query string, kept in memory for a run.
* :class:`ClipFeatureMemory` (the ``ground`` tool): per-clip features of recently grounded
  videos, computed on demand for the asked span only, kept in memory per (video, CLIP, settings).

Both LRUs are :class:`LruMemory`.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np

from vidagent.core.errors import VidagentError
from vidagent.grounding.head import GroundConfig, clip_grid, text_features, vision_features
from vidagent.models.encoders import ClipEncoder

Key = TypeVar("Key", bound=Hashable)
Value = TypeVar("Value")
CLIP_MEMORY_VIDEOS = 8  # videos whose per-clip features the ground tool keeps in memory


class LruMemory(Generic[Key, Value]):
    """The ``size`` most recently used items (thread-safe)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[Key, Value] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Key) -> Value | None:
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            return self._items[key]

    def put(self, key: Key, value: Value) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def setdefault(self, key: Key, make: type[Value]) -> Value:
        """The item under ``key``, made with ``make()`` (and kept) when missing."""
        with self._lock:
            if key not in self._items:
                self._items[key] = make()
            self._items.move_to_end(key)
            found = self._items[key]
            while len(self._items) > self.size:
                self._items.popitem(last=False)
            return found

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


class ClipFeatureMemory:
    """Per-clip head features of recently grounded videos: (video, CLIP, settings) -> {clip: array}.

    The ``ground`` tool fills it for the clips of each asked span only; one lives on each
    ``ToolContext`` (``ctx.shared``), so an agent or a server reuses it across queries.
    """

    def __init__(self, videos: int = CLIP_MEMORY_VIDEOS) -> None:
        self._videos: LruMemory[tuple, dict[int, np.ndarray]] = LruMemory(videos)

    def clips(self, key: tuple) -> dict[int, np.ndarray]:
        return self._videos.setdefault(key, dict)

    def clear(self) -> None:
        self._videos.clear()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "--", text).strip("-") or "model"


class FeatureCache:
    """Per-video CLIP features on disk (computed once) with a small in-memory LRU in front."""

    def __init__(
        self,
        root: str | Path,
        encoder: ClipEncoder,
        config: GroundConfig,
        *,
        memory_items: int = 512,
        chunk: int = 64,
    ) -> None:
        grid = config.pool_grid if config.pool_grid is not None else "all"
        self.encoder = encoder
        self.config = config
        self.directory = (
            Path(root)
            / _slug(encoder.model_id)
            / (f"clip{config.clip_seconds:g}s-last{config.num_layers}-grid{grid}")
        )
        self.chunk = chunk
        self._memory: LruMemory[str, tuple[np.ndarray, float]] = LruMemory(memory_items)

    def path(self, vid: str) -> Path:
        return self.directory / f"{_slug(vid)}.safetensors"

    def has(self, vid: str) -> bool:
        return self.path(vid).is_file()

    def get(self, vid: str, video: str | Path | None = None) -> tuple[np.ndarray, float]:
        """(features float16 (T, K, N, D), duration s) of ``vid``, extracting from ``video`` if needed."""
        if (found := self._memory.get(vid)) is not None:
            return found
        if not self.has(vid):
            if video is None:
                raise VidagentError(f"no cached features for {vid!r} in {self.directory} and no video given")
            self.extract(vid, video)
        from safetensors import safe_open

        with safe_open(str(self.path(vid)), framework="np") as handle:
            features = handle.get_tensor("features")
            duration = float((handle.metadata() or {}).get("duration", 0.0))
        self._memory.put(vid, (features, duration))
        return features, duration

    def extract(self, vid: str, video: str | Path) -> Path:
        """Run the frozen CLIP over the clip centres of ``video`` and save the features."""
        from safetensors.numpy import save_file

        from vidagent.media.video import Video

        with Video.open(video) as opened:
            duration = float(opened.duration)
            times = clip_grid(duration, self.config.clip_seconds)
            parts = []
            for start in range(0, len(times), self.chunk):
                frames = opened.sample_at(
                    times[start : start + self.chunk], short_side=self.encoder.input_size
                )
                if len(frames):
                    parts.append(vision_features(self.encoder, frames.frames, self.config))
                if len(frames) < len(times[start : start + self.chunk]):
                    break  # truncated file: keep the clips that decode
        if not parts:
            raise VidagentError(f"{video}: no frame decodes")
        features = np.concatenate(parts)
        target = self.path(vid)
        target.parent.mkdir(parents=True, exist_ok=True)
        staged = target.with_name(f".{target.name}.tmp")
        metadata = {"duration": f"{duration:.6f}", "video": str(video), "model": self.encoder.model_id}
        save_file({"features": np.ascontiguousarray(features)}, str(staged), metadata=metadata)
        staged.replace(target)
        return target

    def ensure(self, videos: dict[str, Path], progress: bool = True) -> None:
        """Extract every video of ``videos`` (vid -> path) not cached yet, with a progress bar."""
        from tqdm import tqdm

        todo = [vid for vid in videos if not self.has(vid)]
        for vid in tqdm(
            todo, desc="CLIP features", unit="video", disable=None if progress and todo else True
        ):
            self.extract(vid, videos[vid])


class QueryFeatures:
    """Text-tower features per query string, computed in batches and kept in memory."""

    def __init__(self, encoder: ClipEncoder, config: GroundConfig, batch_size: int = 128) -> None:
        self.encoder, self.config, self.batch_size = encoder, config, batch_size
        self._cache: dict[str, np.ndarray] = {}

    def get_many(self, queries: Sequence[str]) -> list[np.ndarray]:
        todo = sorted({q for q in queries if q not in self._cache})
        for start in range(0, len(todo), self.batch_size):
            batch = todo[start : start + self.batch_size]
            self._cache.update(zip(batch, text_features(self.encoder, batch, self.config), strict=True))
        return [self._cache[q] for q in queries]

    def get(self, query: str) -> np.ndarray:
        return self.get_many([query])[0]
