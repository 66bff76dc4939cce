"""Search what was said and shown: keywords (SQLite FTS5) and meaning (sentence embeddings), fused.

The store keeps every transcript segment, OCR line and caption as a text row (``Store.put_texts``).
:class:`TextSearch` finds the rows that match a query two ways and fuses the two rankings:

- **keywords**: FTS5 over the rows, bm25-ranked, any of the query's words but function words
  (rows with more of them rank first). Exact and cheap: "Oxford", "gate 42".
- **meaning**: the cosine between the query's and each row's sentence embedding (the profile's
  ``embedder`` role, all-MiniLM-L6-v2 in the bundled profiles; lexical similarity without one).
  A row is embedded once, the first time it is searched, and its vector is stored beside it
  (``text_vectors``, keyed by the embedder), so "when does she talk about the weather" finds
  "it will rain tomorrow" without a shared word.

Rankings are fused by reciprocal rank fusion (``1 / (RRF_K + rank)`` summed over the two lists),
the usual way to combine a keyword and a dense retriever without calibrating their scores. A row
found only by meaning must be at least ``MIN_COSINE`` alike, so a query that nothing matches
returns nothing rather than the least unlike rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vidagent.core.question_words import FUNCTION_WORDS, words
from vidagent.media.store import Store
from vidagent.models.sentence_embedders import Embedder

RRF_K = 60  # reciprocal rank fusion's constant (Cormack et al. 2009)
MIN_COSINE = 0.35  # a row found only by meaning must be at least this alike (MiniLM cosine)
CANDIDATES = 50  # rows taken from each ranking before fusing


@dataclass(frozen=True)
class TextHit:
    """One matching text row and why it matched."""

    row: dict[str, Any]  # the store's row: id, video_id, tool, start, end, text, score, data
    score: float  # fused (reciprocal rank) score; higher is better
    keyword_rank: int | None  # 0-based rank among keyword matches, None when no word matched
    cosine: float  # meaning: cosine of the query's and the row's embedding

    @property
    def matched_by(self) -> str:
        if self.keyword_rank is not None:
            return "keywords+meaning" if self.cosine >= MIN_COSINE else "keywords"
        return "meaning"


def keyword_query(query: str) -> str:
    """The query's words without function words ("a", "from": they match every row), unless that is all it has."""
    kept = [w for w in words(query) if w.lower() not in FUNCTION_WORDS]
    return " ".join(kept) if kept else query


class TextSearch:
    """Hybrid search over a store's text rows (see the module docstring)."""

    def __init__(self, store: Store, embedder: Embedder | None) -> None:
        self.store = store
        self.embedder = embedder

    def embed_rows(self, rows: Sequence[dict[str, Any]]) -> np.ndarray:
        """The embeddings of these rows (computing and storing the missing ones), one per row."""
        if self.embedder is None or not rows:
            return np.zeros((len(rows), 0), dtype=np.float32)
        ids = [int(r["id"]) for r in rows]
        stored = self.store.text_vectors(ids, self.embedder.name)
        missing = [r for r in rows if int(r["id"]) not in stored]
        if missing:
            vectors = self.embedder.encode([r["text"] for r in missing])
            self.store.put_text_vectors(self.embedder.name, [int(r["id"]) for r in missing], vectors)
            stored.update({int(r["id"]): v for r, v in zip(missing, vectors, strict=True)})
        return np.stack([stored[i] for i in ids]).astype(np.float32)

    def search(
        self, query: str, *, video_id: str | None = None, tools: Sequence[str] | None = None, k: int = 10
    ) -> list[TextHit]:
        """The ``k`` best rows for ``query`` (of one video, of some tools), best first."""
        keyword = self.store.search_texts(
            keyword_query(query), video_id=video_id, tools=tools, any_word=True, limit=CANDIDATES
        )
        keyword_rank = {int(r["id"]): rank for rank, r in enumerate(keyword)}
        rows = self.store.text_rows(video_id=video_id, tools=tools)
        if not rows or not query.strip():
            return []
        cosines = np.zeros(len(rows), dtype=np.float32)
        if self.embedder is not None:
            vectors = self.embed_rows(rows)
            cosines = vectors @ self.embedder.encode([query])[0]
        meaning_order = np.argsort(-cosines, kind="stable")[:CANDIDATES]
        meaning_rank = {
            int(rows[i]["id"]): rank for rank, i in enumerate(meaning_order) if cosines[i] >= MIN_COSINE
        }
        hits = []
        for row, cosine in zip(rows, cosines, strict=True):
            row_id = int(row["id"])
            if row_id not in keyword_rank and row_id not in meaning_rank:
                continue
            score = sum(
                1.0 / (RRF_K + 1 + ranks[row_id]) for ranks in (keyword_rank, meaning_rank) if row_id in ranks
            )
            hits.append(
                TextHit(row=row, score=score, keyword_rank=keyword_rank.get(row_id), cosine=float(cosine))
            )
        hits.sort(key=lambda hit: (-hit.score, hit.row["start"]))
        return hits[:k]
