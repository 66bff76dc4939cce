"""Grounding data: QVHighlights and Charades-STA queries, targets per clip, the training dataset.

* **QVHighlights** JSONL, one query per line: ``qid, query, vid, duration, relevant_windows``
  (seconds), ``relevant_clip_ids`` and ``saliency_scores`` (three annotators, 0-4, per relevant
  2 s clip). The test split without labels loads too (no windows).
* **Charades-STA** text files, one query per line: ``vid start end##query``. Durations come
  from the video files.

Videos are found as ``<videos dir>/<vid>.<mp4|mkv|webm|avi|mov>``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from vidagent.core.errors import VidagentError, VideoNotFound
from vidagent.grounding.features import FeatureCache, QueryFeatures
from vidagent.grounding.head import pad_batch

FORMATS = ("qvhighlights", "charades")
VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".avi", ".mov")
QVH_CLIP_SECONDS = 2.0  # QVHighlights' clip ids and saliency scores are per 2 s clip
DEFAULT_CLIP_SECONDS = {"qvhighlights": 2.0, "charades": 1.0}


class GroundingDataError(VidagentError):
    """A grounding data file cannot be read."""


# --- data ------------------------------------------------------------------------------------------
@dataclass
class GroundingSample:
    """One query on one video; windows in seconds."""

    qid: str
    query: str
    vid: str
    duration: float  # seconds (0 until known, for Charades-STA)
    windows: list[tuple[float, float]]
    relevant_clip_ids: list[int] = field(default_factory=list)
    saliency_scores: list[list[float]] = field(default_factory=list)

    @property
    def has_saliency(self) -> bool:
        return bool(self.relevant_clip_ids) and bool(self.saliency_scores)


def load_qvhighlights(path: str | Path) -> list[GroundingSample]:
    """Read a QVHighlights JSONL file."""
    samples = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            samples.append(
                GroundingSample(
                    qid=str(row["qid"]),
                    query=str(row["query"]),
                    vid=str(row["vid"]),
                    duration=float(row.get("duration") or 0.0),
                    windows=[(float(s), float(e)) for s, e in row.get("relevant_windows") or []],
                    relevant_clip_ids=[int(c) for c in row.get("relevant_clip_ids") or []],
                    saliency_scores=[
                        [float(v) for v in scores] for scores in row.get("saliency_scores") or []
                    ],
                )
            )
        except (ValueError, KeyError, TypeError) as error:
            raise GroundingDataError(f"{path}:{number}: not a QVHighlights row ({error})") from None
    return samples


_CHARADES = re.compile(r"^\s*(\S+)\s+([0-9.]+)\s+([0-9.]+)\s*##(.*)$")


def load_charades(path: str | Path) -> list[GroundingSample]:
    """Read a Charades-STA file (``vid start end##query`` per line); durations are filled later."""
    samples = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        match = _CHARADES.match(line)
        if match is None:
            raise GroundingDataError(f"{path}:{number}: expected 'vid start end##query', got {line[:80]!r}")
        vid, start, end, query = match.groups()
        s, e = sorted((float(start), float(end)))
        samples.append(
            GroundingSample(
                qid=str(len(samples)), query=query.strip(), vid=vid, duration=0.0, windows=[(s, e)]
            )
        )
    return samples


def load_samples(path: str | Path, fmt: str) -> list[GroundingSample]:
    if fmt not in FORMATS:
        raise GroundingDataError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if not Path(path).is_file():
        raise GroundingDataError(f"data file {str(path)!r} does not exist")
    return load_qvhighlights(path) if fmt == "qvhighlights" else load_charades(path)


def find_video(videos_dir: str | Path, vid: str) -> Path:
    """``<videos_dir>/<vid>.<suffix>`` for the first suffix that exists."""
    for suffix in VIDEO_SUFFIXES:
        path = Path(videos_dir) / f"{vid}{suffix}"
        if path.is_file():
            return path
    raise VideoNotFound(Path(videos_dir) / vid, f"no video file for {vid!r} ({'/'.join(VIDEO_SUFFIXES)})")


def clip_targets(sample: GroundingSample, clips: int, clip_seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """(windows in clip units (G, 2), per-clip saliency in [0, 1] (clips,)) of one sample.

    Saliency: the mean annotator score / 4 of the QVHighlights 2 s clip under each clip's centre
    when scores are given; otherwise 1 for clips whose centre lies in a window (and the clip
    under the centre of a window too short to hold any clip centre).
    """
    limit = clips * clip_seconds
    windows = np.array([(min(s, limit), min(e, limit)) for s, e in sample.windows], dtype=np.float32).reshape(
        -1, 2
    )
    windows = windows[windows[:, 1] > windows[:, 0]] / clip_seconds
    centres = (np.arange(clips) + 0.5) * clip_seconds
    saliency = np.zeros(clips, dtype=np.float32)
    if sample.has_saliency:
        scores = {
            c: float(np.mean(s)) / 4.0
            for c, s in zip(sample.relevant_clip_ids, sample.saliency_scores, strict=False)
        }
        for t, centre in enumerate(centres):
            saliency[t] = scores.get(int(centre // QVH_CLIP_SECONDS), 0.0)
    else:
        for start, end in windows:
            inside = ((np.arange(clips) + 0.5) >= start) & ((np.arange(clips) + 0.5) <= end)
            if not inside.any():
                inside[min(int((start + end) / 2), clips - 1)] = True
            saliency[inside] = 1.0
    return windows, saliency


class GroundingDataset(Dataset):
    """Samples with their cached features and targets (for the DataLoader)."""

    def __init__(
        self,
        samples: list[GroundingSample],
        features: FeatureCache,
        queries: QueryFeatures,
        videos: dict[str, Path],
    ) -> None:
        self.samples, self.features, self.queries, self.videos = samples, features, queries, videos
        self.config = features.config
        queries.get_many([s.query for s in samples])
        self.groups = {q: i for i, q in enumerate(sorted({s.query for s in samples}))}
        for sample in samples:  # durations from the files where the data leaves them out
            if not sample.duration:
                sample.duration = features.get(sample.vid, videos.get(sample.vid))[1]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.samples[index]
        video, _ = self.features.get(sample.vid, self.videos.get(sample.vid))
        windows, saliency = clip_targets(sample, len(video), self.config.clip_seconds)
        return {
            "video": video,
            "text": self.queries.get(sample.query),
            "windows": windows,
            "saliency": saliency,
            "group": self.groups[sample.query],
            "index": index,
        }


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    batch = pad_batch([i["video"] for i in items], [i["text"] for i in items])
    most = max(1, max(len(i["windows"]) for i in items))
    windows = torch.zeros(len(items), most, 2)
    window_mask = torch.zeros(len(items), most, dtype=torch.bool)
    saliency = torch.zeros(len(items), batch["video"].shape[1])
    for b, item in enumerate(items):
        windows[b, : len(item["windows"])] = torch.from_numpy(item["windows"])
        window_mask[b, : len(item["windows"])] = True
        saliency[b, : len(item["saliency"])] = torch.from_numpy(item["saliency"])
    batch.update(
        windows=windows,
        window_mask=window_mask,
        saliency=saliency,
        group=torch.tensor([i["group"] for i in items]),
        index=[i["index"] for i in items],
    )
    return batch
