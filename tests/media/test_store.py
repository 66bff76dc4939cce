from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from vidagent.core.evidence import Evidence
from vidagent.media.store import SCHEMA_VERSION, Store, StoreError


def test_schema_and_wal(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite") as store:
        assert store.schema_version == SCHEMA_VERSION
        mode = store._db.execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal"


def test_refuses_newer_schema_and_garbage(tmp_path: Path) -> None:
    path = tmp_path / "new.sqlite"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(StoreError, match="newer"):
        Store(path)
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"not a database at all" * 100)
    with pytest.raises(StoreError, match="not a usable vidagent store"):
        Store(garbage)


def test_content_hash_is_cached_by_path_size_mtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    video = tmp_path / "v.bin"
    video.write_bytes(b"abc")
    store = Store(tmp_path / "s.sqlite")
    first = store.content_hash(video)
    calls = []
    monkeypatch.setattr("vidagent.media.store.file_sha256", lambda p: calls.append(p) or "changed")
    assert store.content_hash(video) == first and not calls  # cached
    video.write_bytes(b"abcd")  # size changes -> recomputed
    assert store.content_hash(video) == "changed" and len(calls) == 1


def test_frames_round_trip_keys_include_model_and_sampling(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite")
    store.add_video("vid", tmp_path / "v.mp4", {"duration": 3.0})
    emb = np.eye(3, 4, dtype=np.float32)
    store.begin_frame_set("vid", "model-a", "fps=1", expected=3, dim=4)
    store.add_frames("vid", "model-a", "fps=1", [0, 1, 2], [0.5, 1.5, 2.5], [12, 37, 62], emb)
    store.finish_frame_set("vid", "model-a", "fps=1")
    rows = store.frames("vid", "model-a", "fps=1")
    assert rows.timestamps.tolist() == [0.5, 1.5, 2.5]
    assert rows.indices.tolist() == [12, 37, 62]
    np.testing.assert_allclose(rows.embeddings, emb)
    assert len(store.frames("vid", "model-b", "fps=1")) == 0  # another model never sees these rows
    assert len(store.frames("vid", "model-a", "fps=2")) == 0
    assert store.frame_set("vid", "model-a", "fps=1") == {
        "expected": 3,
        "dim": 4,
        "complete": True,
        "stored": 3,
    }
    assert store.stored_positions("vid", "model-a", "fps=1") == {0, 1, 2}


def test_failed_chunk_write_leaves_store_intact(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite")
    store.add_video("vid", tmp_path / "v.mp4", {})
    store.begin_frame_set("vid", "m", "fps=1", expected=4, dim=2)
    store.add_frames("vid", "m", "fps=1", [0, 1], [0.5, 1.5], [0, 1], np.ones((2, 2)))
    with pytest.raises(ValueError):  # lengths disagree: nothing of this chunk is written
        store.add_frames("vid", "m", "fps=1", [2, 3], [2.5], [2, 3], np.ones((2, 2)))
    assert store.stored_positions("vid", "m", "fps=1") == {0, 1}


def test_tool_results_cache(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite")
    key = store.result_key("retrieve", "vid", "clip", {"query": "a dog", "k": 3})
    assert key == store.result_key("retrieve", "vid", "clip", {"k": 3, "query": "a dog"})
    assert key != store.result_key("retrieve", "vid", "other-clip", {"query": "a dog", "k": 3})
    assert store.cached_result(key) is None
    ev = Evidence.from_rows([{"tool": "retrieve", "start": 1, "end": 2, "score": 0.5, "text": "hi"}])
    store.cache_result(key, "retrieve", "vid", ev)
    assert store.cached_result(key).to_records() == ev.to_records()


def test_migrates_a_version_1_store(tmp_path: Path) -> None:
    from vidagent.media.store import MIGRATIONS

    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.executescript(
        MIGRATIONS[0] + "PRAGMA user_version=1; INSERT INTO videos VALUES ('v', '/x.mp4', '{}', 0);"
    )
    db.close()
    with Store(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        assert store.video("v")["path"] == "/x.mp4"  # rows survive the migration


def test_texts_are_stored_as_complete_sets_and_searchable(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite")
    key = store.settings_key({"prompt": "describe"})
    assert store.texts("vid", "caption", "llava", key) is None  # never computed
    store.put_texts(
        "vid",
        "caption",
        "llava",
        key,
        [
            {"start": 0, "end": 5, "text": "A red car drives past a bakery."},
            {"start": 5, "end": 10, "text": "Two cyclists wait at the light.", "data": {"frames": 4}},
        ],
    )
    store.put_texts("vid2", "read_text", "ppocr", key, [{"start": 1, "end": 2, "text": "BAKERY open 24h"}])
    assert [r["text"][:5] for r in store.texts("vid", "caption", "llava", key)] == ["A red", "Two c"]
    hits = store.search_texts("bakery")
    assert {h["video_id"] for h in hits} == {"vid", "vid2"}
    assert [h["tool"] for h in store.search_texts("bakery", tool="read_text")] == ["read_text"]
    assert store.search_texts('cyclists" OR "x') == []  # user text cannot inject FTS syntax
    store.put_texts("vid", "caption", "llava", key, [])  # recomputed set replaces the old one
    assert store.texts("vid", "caption", "llava", key) == []
    assert [h["video_id"] for h in store.search_texts("bakery")] == ["vid2"]


def test_tracks_and_masks(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite")
    assert store.tracks("vid", "dino", "k") is None
    store.put_tracks(
        "vid", "dino", "k", [{"track_id": 2, "label": "person", "boxes": [[0.5, 1, 2, 3, 4, 0.9]]}]
    )
    assert store.tracks("vid", "dino", "k")[0]["label"] == "person"
    rng = np.random.default_rng(0)
    mask = rng.random((37, 53)) > 0.5
    store.put_masks("vid", [("m1", 1.5, mask)])
    np.testing.assert_array_equal(store.mask("m1"), mask)
    with pytest.raises(KeyError, match="no mask"):
        store.mask("nope")
