"""`vidagent index --engine ray`: Ray Data with CLIP actors fills the store exactly as the local engine.

A real local Ray instance (2 CPUs) started by the test; tiny CLIP weights.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.synth import write_video
from vidagent.app.cli import app
from vidagent.media.index import Index, sampling_key
from vidagent.media.store import Store

pytest.importorskip("ray", reason="the ray extra is not installed")
pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("ray")
    return [
        write_video(folder / f"v{i}.mp4", fps=10, seconds=seconds, size=(64, 48))
        for i, seconds in enumerate((7, 3))
    ]


def stored(store: Store, video_id: str, model_id: str, fps: float) -> tuple[np.ndarray, np.ndarray]:
    rows = store.frames(video_id, model_id, sampling_key(fps))
    return np.asarray(rows.timestamps), np.asarray(rows.embeddings)


def test_ray_index_equals_the_local_index(videos: list[Path], tmp_path: Path, tiny_hub, local_ray) -> None:
    from vidagent.media.ray_engine import index_with_ray

    local = Index(tiny_hub, Store(tmp_path / "local.sqlite"), chunk_size=4)
    expected = [local.add(v, fps=2) for v in videos]

    store = Store(tmp_path / "ray.sqlite")
    seen: list[tuple[int, int]] = []
    reports = index_with_ray(
        videos,
        profile="tiny",
        store=store,
        fps=2,
        workers=2,
        chunk_size=4,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert [r.video_id for r in reports] == [r.video_id for r in expected]
    assert [r.frames_added for r in reports] == [14, 6] and seen[-1] == (20, 20)
    for report in reports:
        info = store.frame_set(report.video_id, report.model_id, report.sampling)
        assert info is not None and info["complete"]
        times, embeddings = stored(store, report.video_id, report.model_id, 2)
        local_times, local_embeddings = stored(local.store, report.video_id, report.model_id, 2)
        np.testing.assert_array_equal(times, local_times)
        np.testing.assert_array_equal(embeddings, local_embeddings)  # same frames, same batches: same bits

    again = index_with_ray(videos, profile="tiny", store=store, fps=2, workers=2, chunk_size=4)
    assert [r.frames_added for r in again] == [0, 0]  # nothing left to do: Ray is not even asked


def test_decoding_in_tasks_of_its_own_stores_the_same_bits(
    videos: list[Path], tmp_path: Path, tiny_hub, local_ray
) -> None:
    from vidagent.media.ray_engine import index_with_ray

    local = Index(tiny_hub, Store(tmp_path / "local.sqlite"), chunk_size=4)
    expected = [local.add(v, fps=2) for v in videos]
    store = Store(tmp_path / "split.sqlite")
    reports = index_with_ray(
        videos, profile="tiny", store=store, fps=2, workers=1, chunk_size=4, decode_tasks=True
    )
    assert [r.frames_added for r in reports] == [14, 6]  # what --gpus runs: decode tasks -> model actors
    for report, want in zip(reports, expected, strict=True):
        times, embeddings = stored(store, report.video_id, report.model_id, 2)
        local_times, local_embeddings = stored(local.store, want.video_id, want.model_id, 2)
        np.testing.assert_array_equal(times, local_times)
        np.testing.assert_array_equal(embeddings, local_embeddings)


def test_ray_keyframe_index_equals_the_local_one(tmp_path: Path, tiny_hub, local_ray) -> None:
    """--seek keyframe under Ray (decode tasks cut at keyframes): the local index's frame set."""
    from vidagent.media.ray_engine import index_with_ray

    video = write_video(
        tmp_path / "k.mp4", fps=10, seconds=7, size=(64, 48), gop=20, noise=30
    )  # keys 0, 2, 4, 6 s
    local = Index(tiny_hub, Store(tmp_path / "local.sqlite"), chunk_size=4).add(video, fps=2, seek="keyframe")
    store = Store(tmp_path / "ray.sqlite")
    (report,) = index_with_ray(
        [video],
        profile="tiny",
        store=store,
        fps=2,
        seek="keyframe",
        workers=1,
        chunk_size=4,
        decode_tasks=True,
    )
    assert report.sampling == local.sampling == "fps=2,seek=keyframe" and report.frames_added == 14
    rows = store.frames(report.video_id, report.model_id, report.sampling)
    expected = Store(tmp_path / "local.sqlite").frames(local.video_id, local.model_id, local.sampling)
    assert len(set(rows.timestamps)) == 4  # the four keyframes (x264 put the last at 5.9 s)
    np.testing.assert_array_equal(rows.timestamps, expected.timestamps)
    np.testing.assert_allclose(rows.embeddings, expected.embeddings, atol=2e-3)


def test_a_half_indexed_video_resumes_under_ray(
    videos: list[Path], tmp_path: Path, tiny_hub, local_ray
) -> None:
    from vidagent.media.ray_engine import index_with_ray

    store = Store(tmp_path / "s.sqlite")
    index = Index(tiny_hub, store, chunk_size=4)
    report = index.add(videos[0], fps=2)
    with store.transaction() as db:  # as if killed after the first chunk: drop the rest, mark incomplete
        db.execute("DELETE FROM frames WHERE k >= 4")
        db.execute("UPDATE frame_sets SET complete=0")
    resumed = index_with_ray(videos[:1], profile="tiny", store=store, fps=2, workers=1, chunk_size=4)
    assert resumed[0].frames_added == report.frames_total - 4
    assert store.stored_positions(report.video_id, report.model_id, report.sampling) == set(range(14))


def test_cli_index_engine_ray(videos: list[Path], tmp_path: Path, tiny_hub, local_ray) -> None:
    result = CliRunner().invoke(
        app,
        [
            "index",
            *map(str, videos),
            "--engine",
            "ray",
            "--workers",
            "1",
            "--profile",
            "tiny",
            "--store",
            str(tmp_path / "c.sqlite"),
            "--fps",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "v0.mp4: 7 frames (7 new)" in result.stdout and "v1.mp4: 3 frames (3 new)" in result.stdout
    bad = CliRunner().invoke(app, ["index", str(videos[0]), "--engine", "spark"])
    assert bad.exit_code == 2 and "--engine must be local or ray" in bad.output
