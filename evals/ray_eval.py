"""``vidagent eval ... --engine ray``: a run's samples answered by model actors under Ray Data.

The driver (this process) owns the run file, exactly as with the local engine: it writes the
header, works out which samples are missing (``--resume``) and appends each sample's line as
soon as an actor returns it, so a run file is the same whichever engine filled it, and either
engine resumes the other's. Each actor sets up the run's method (and judge) once, loading its
planner or VLM at start, so a missing checkpoint fails the run rather than each sample (one
actor per GPU with ``gpus=True``, else ``workers`` CPU actors), and answers one sample per
call with the local engine's own code (:meth:`Runner.answer_row`). The driver loads no model.

For the agent method the driver first indexes every video the missing samples need with the
Ray index engine (:func:`vidagent.media.ray_engine.index_with_ray`) into the run's store, so the
actors start from a finished index and never index one video twice at once. A video that cannot
be opened is left out of that step; its samples' lines record the error, as locally.

The store is one SQLite file (WAL mode): actors on one machine share it. SQLite must not be
shared over a network filesystem, so on a multi-node cluster leave ``--store`` unset and each
node keeps its own store under its ``VIDAGENT_HOME`` (each node then indexes the videos its
actors meet), while the videos (and ``clips/`` for span tasks) sit on storage every node sees
at the same path.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from vidagent.core.errors import VidagentError
from vidagent.evals.runner import Runner, RunSettings, make_judge, make_method
from vidagent.evals.tasks import Sample, Task, cut_clip

log = logging.getLogger(__name__)


class AnswerSamples:
    """The Ray Data model actor: the run's method and judge, answering one sample per call."""

    def __init__(
        self, task: Task, settings: RunSettings, store: str | None, out: str, clips_dir: str
    ) -> None:
        method = make_method(settings, store)
        judge = make_judge(settings.judge) if settings.judge and task.open_ended else None
        self.runner = Runner(task, settings, method, out, judge=judge, clips_dir=clips_dir)
        self.samples = {sample.id: sample for sample in task.samples}

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = [
            json.dumps(self.runner.answer_row(self.samples[str(id_)]), default=str) for id_ in batch["id"]
        ]
        return {"row": np.array(rows, dtype=object)}


def videos_to_index(samples: list[Sample], clips_dir: Path) -> list[Path]:
    """The distinct files the agent will be shown (clips cut for span samples), those that open."""
    from vidagent.media.video import Video

    videos: dict[Path, bool] = {}  # file -> it opens
    for sample in samples:  # a sample that fails here fails the same way in its actor, which records why
        try:
            video = cut_clip(sample.video, sample.span, clips_dir) if sample.span else sample.video
        except (VidagentError, OSError, ValueError) as exc:
            log.info("not pre-indexing %s %s: %s", sample.video, sample.span, exc)
            continue
        if video in videos:
            continue
        try:
            with Video.open(video):
                videos[video] = True
        except (VidagentError, OSError, ValueError) as exc:
            log.info("not pre-indexing %s: %s", video, exc)
            videos[video] = False
    return [video for video, opens in videos.items() if opens]


@dataclass
class RayEngine:
    """Answers a runner's missing samples on Ray; pass it to :meth:`Runner.run` as ``engine``."""

    store: str | Path | None = None
    workers: int | None = None  # CPU actors (default 1), or GPU actors (default: one per GPU)
    gpus: bool = False
    address: str | None = None  # an existing cluster ("auto"), else a local Ray is started

    def __call__(self, runner: Runner, todo: list[Sample]) -> Iterator[dict[str, Any]]:
        from vidagent.media.ray_engine import init_ray

        if not todo:
            return
        ray = init_ray(self.address, num_cpus=self.workers)
        if runner.settings.method == "agent":
            self._index(runner, todo)
        actors = self.workers or (max(1, int(ray.cluster_resources().get("GPU", 0))) if self.gpus else 1)
        task = runner.task
        dataset = ray.data.from_items([{"id": sample.id} for sample in todo], override_num_blocks=len(todo))
        dataset = dataset.map_batches(
            AnswerSamples,
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=actors),
            num_gpus=1 if self.gpus else 0,
            num_cpus=0 if self.gpus else 1,
            fn_constructor_kwargs={
                "task": replace(task, samples=todo),  # its scorers too (real, routing)
                "settings": runner.settings,
                "store": str(self.store) if self.store else None,
                "out": str(runner.out),
                "clips_dir": str(runner.clips_dir),
            },
        )
        for row in dataset.iter_rows():  # one sample per block: each line lands as it is answered
            yield json.loads(row["row"])

    def _index(self, runner: Runner, todo: list[Sample]) -> None:
        from vidagent.media.ray_engine import index_with_ray
        from vidagent.media.store import Store

        videos = videos_to_index(todo, runner.clips_dir)
        if not videos:
            return
        try:
            index_with_ray(
                videos,
                profile=runner.settings.profile,
                store=Store(self.store),
                fps=runner.settings.fps,
                workers=self.workers,
                gpus=self.gpus,
                address=self.address,
            )
        except Exception as exc:  # Ray re-raises a worker's error wrapped in its own types
            log.warning(
                "indexing on Ray failed (%s: %s); the actors will index as they go", type(exc).__name__, exc
            )
