from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tests.synth import write_video
from vidagent.media.index import Index
from vidagent.media.sample_videos import sample_video
from vidagent.media.store import Store
from vidagent.media.video import Video


def test_index_stores_normalised_embeddings_once(tmp_path: Path, tiny_hub) -> None:
    store = Store(tmp_path / "s.sqlite")
    index = Index(tiny_hub, store, chunk_size=8)
    done = []
    report = index.add(sample_video("bikes"), fps=2, progress=lambda d, t: done.append((d, t)))
    assert report.frames_total == report.frames_added == 20
    assert done[-1] == (20, 20)
    rows = index.frames(report.video_id, fps=2)
    assert len(rows) == 20
    np.testing.assert_allclose(np.linalg.norm(rows.embeddings, axis=1), 1.0, atol=2e-3)
    assert np.all(np.diff(rows.timestamps) > 0)
    again = index.add(sample_video("bikes"), fps=2)  # nothing new to do
    assert again.frames_added == 0
    other = index.add(sample_video("bikes"), fps=1)  # another sampling: its own rows
    assert other.frames_added == 10
    assert len(index.frames(report.video_id, fps=2)) == 20


def test_keyframe_index_encodes_each_keyframe_once_at_its_true_time(
    tmp_path: Path, tiny_hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """seek="keyframe": its own frame set beside the exact one, every grid point stored (the
    nearest keyframe, true time), each distinct frame through the encoder once, and the
    embeddings those of the frames themselves."""
    video = write_video(tmp_path / "v.mp4", fps=10, seconds=8, size=(64, 48), gop=40, noise=40)  # keys 0, 4 s
    index = Index(tiny_hub, Store(tmp_path / "s.sqlite"), chunk_size=16)
    encoded: list[int] = []
    encode = index.encoder.encode_images
    monkeypatch.setattr(
        index.encoder, "encode_images", lambda f, **k: encoded.append(len(f)) or encode(f, **k)
    )
    report = index.add(video, seek="keyframe")
    assert report.sampling == "fps=1,seek=keyframe" and report.frames_added == 8
    assert encoded == [2]  # 8 grid points (0.5 s, 1.5 s, ...), 2 keyframes
    rows = index.frames(video, seek="keyframe")
    np.testing.assert_allclose(rows.timestamps, [0, 0, 4, 4, 4, 4, 4, 4])
    with Video.open(video) as opened:  # the keyframes themselves, read exactly
        keyframes = opened.sample_at([0.0, 4.0], short_side=index.encoder.input_size).frames
    np.testing.assert_allclose(
        rows.embeddings[[0, 2]], encode(keyframes).embeddings, atol=2e-3
    )  # stored as fp16
    assert (
        len(index.frames(video)) == 8 and len(Store(tmp_path / "s.sqlite").frame_sets()) == 2
    )  # exact: apart


def test_parse_sampling_inverts_sampling_key() -> None:
    from vidagent.media.index import parse_sampling, sampling_key

    for fps, seek in ((1.0, "exact"), (0.5, "keyframe"), (2.5, "exact")):
        assert parse_sampling(sampling_key(fps, seek)) == (fps, seek)


def test_bad_video_leaves_the_store_intact(tmp_path: Path, tiny_hub) -> None:
    from vidagent.core.errors import NotAMediaFile

    store = Store(tmp_path / "s.sqlite")
    index = Index(tiny_hub, store)
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"definitely not a video" * 50)
    with pytest.raises(NotAMediaFile):
        index.add(bad)
    assert store.videos() == []
    with pytest.raises(ValueError, match="fps must be positive"):
        index.add(sample_video("carphone"), fps=0)


KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from vidagent.models.hub import ModelHub
    from vidagent.media.index import Index
    from vidagent.models.profile import load_profile
    from vidagent.media.store import Store

    def progress(done, total):
        if done >= 16:  # two chunks of 8 committed: die without any clean-up
            os.kill(os.getpid(), signal.SIGKILL)

    index = Index(ModelHub(load_profile("tiny")), Store(sys.argv[1]), chunk_size=8)
    index.add(sys.argv[2], fps=4, progress=progress)
    """
)


@pytest.mark.slow
def test_killed_mid_index_resumes_from_last_committed_chunk(tmp_path: Path, tiny_hub) -> None:
    video = write_video(tmp_path / "long.mp4", seconds=12, fps=10, size=(64, 48))
    db = tmp_path / "s.sqlite"
    proc = subprocess.run([sys.executable, "-c", KILLER, str(db), str(video)], env=os.environ.copy())
    assert proc.returncode == -signal.SIGKILL
    assert sqlite3.connect(db).execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    store = Store(db)  # opens cleanly
    index = Index(tiny_hub, store, chunk_size=8)
    video_id = store.content_hash(video)
    assert store.stored_positions(video_id, "tiny/clip", "fps=4") == set(range(16))
    report = index.add(video, fps=4)
    assert report.frames_added == 48 - 16
    resumed = index.frames(video_id, fps=4)
    fresh = Index(tiny_hub, Store(tmp_path / "fresh.sqlite")).frames(video, fps=4)
    np.testing.assert_array_equal(resumed.timestamps, fresh.timestamps)
    np.testing.assert_allclose(resumed.embeddings, fresh.embeddings, atol=1e-3)
