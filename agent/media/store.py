"""The memory store: one SQLite file (WAL mode) holding everything vidagent remembers.

Tables (see ``MIGRATIONS``): videos by content hash, a cache of file hashes by (path, size,
mtime), sampled frames with their CLIP embeddings (float16 blobs), and a cache of tool
results as Evidence JSON. Every key that depends on a model includes the model id and the
sampling settings, so changing a model never reuses stale rows.

Writes are transactions: a chunk of frames is committed whole or not at all, so a process
killed mid-index leaves a store that opens cleanly and an index that resumes from the last
committed chunk. The schema version lives in SQLite's ``user_version``; opening an older file
runs the missing migrations in order, opening a newer one is refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import sqlite3
import threading
import time
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vidagent.core.errors import VidagentError, VideoNotFound
from vidagent.core.evidence import Evidence
from vidagent.core.paths import data_dir

MIGRATIONS: list[str] = [
    # 1: videos, file hashes, frames with embeddings, tool results cache
    """
    CREATE TABLE videos (
        id TEXT PRIMARY KEY,             -- sha256 of the file's bytes
        path TEXT NOT NULL,              -- where it was last seen
        meta TEXT NOT NULL,              -- VideoMeta as JSON
        added_at REAL NOT NULL
    );
    CREATE TABLE file_hashes (
        path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, sha256 TEXT NOT NULL
    );
    CREATE TABLE frame_sets (
        video_id TEXT NOT NULL REFERENCES videos(id) ON DELETE CASCADE,
        model_id TEXT NOT NULL,
        sampling TEXT NOT NULL,          -- e.g. "fps=1"
        expected INTEGER NOT NULL,       -- frames the sampling asks for
        dim INTEGER NOT NULL,
        complete INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (video_id, model_id, sampling)
    );
    CREATE TABLE frames (
        video_id TEXT NOT NULL,
        model_id TEXT NOT NULL,
        sampling TEXT NOT NULL,
        k INTEGER NOT NULL,              -- position on the sampling grid (resume key)
        t REAL NOT NULL,                 -- seconds, from presentation timestamps
        frame_index INTEGER NOT NULL,
        embedding BLOB NOT NULL,         -- float16, L2-normalised
        PRIMARY KEY (video_id, model_id, sampling, k),
        FOREIGN KEY (video_id, model_id, sampling)
            REFERENCES frame_sets(video_id, model_id, sampling) ON DELETE CASCADE
    );
    CREATE TABLE tool_results (
        key TEXT PRIMARY KEY,            -- hash of (tool, video, model, arguments)
        tool TEXT NOT NULL,
        video_id TEXT,
        evidence TEXT NOT NULL,          -- Evidence JSON
        created_at REAL NOT NULL
    );
    CREATE INDEX tool_results_video ON tool_results(video_id, tool);
    """,
    # 2: text from videos (captions, OCR, transcripts; full-text searchable), object tracks, masks
    """
    CREATE TABLE texts (
        id INTEGER PRIMARY KEY,
        video_id TEXT NOT NULL,
        tool TEXT NOT NULL,              -- caption, read_text, transcribe
        model_id TEXT NOT NULL,
        settings TEXT NOT NULL,          -- hash of what else shaped the rows (prompt, thresholds)
        start REAL NOT NULL,
        end REAL NOT NULL,
        text TEXT NOT NULL,
        score REAL NOT NULL DEFAULT 1.0,
        data TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX texts_key ON texts(video_id, tool, model_id, settings, start);
    CREATE VIRTUAL TABLE texts_fts USING fts5(text, content='texts', content_rowid='id');
    CREATE TRIGGER texts_ai AFTER INSERT ON texts BEGIN
        INSERT INTO texts_fts(rowid, text) VALUES (new.id, new.text);
    END;
    CREATE TRIGGER texts_ad AFTER DELETE ON texts BEGIN
        INSERT INTO texts_fts(texts_fts, rowid, text) VALUES ('delete', old.id, old.text);
    END;
    CREATE TABLE text_sets (             -- which (video, tool, model, settings) are complete
        video_id TEXT NOT NULL, tool TEXT NOT NULL, model_id TEXT NOT NULL, settings TEXT NOT NULL,
        PRIMARY KEY (video_id, tool, model_id, settings)
    );
    CREATE TABLE tracks (
        video_id TEXT NOT NULL,
        model_id TEXT NOT NULL,
        settings TEXT NOT NULL,          -- hash of prompt, thresholds, sampling
        track_id INTEGER NOT NULL,
        label TEXT NOT NULL,
        data TEXT NOT NULL,              -- JSON: first/last seen, boxes per sampled frame, best frame, score
        PRIMARY KEY (video_id, model_id, settings, track_id)
    );
    CREATE TABLE track_sets (
        video_id TEXT NOT NULL, model_id TEXT NOT NULL, settings TEXT NOT NULL,
        PRIMARY KEY (video_id, model_id, settings)
    );
    CREATE TABLE masks (
        id TEXT PRIMARY KEY,             -- referenced by Evidence.mask_ref
        video_id TEXT NOT NULL,
        t REAL NOT NULL,
        height INTEGER NOT NULL,
        width INTEGER NOT NULL,
        bits BLOB NOT NULL               -- np.packbits of the boolean mask, zlib-compressed
    );
    CREATE INDEX masks_video ON masks(video_id, t);
    """,
    # 3: sentence embeddings of text rows (search by meaning beside FTS5's keywords)
    """
    CREATE TABLE text_vectors (
        text_id INTEGER NOT NULL REFERENCES texts(id) ON DELETE CASCADE,
        model_id TEXT NOT NULL,          -- the sentence embedder
        vector BLOB NOT NULL,            -- float16, L2-normalised
        PRIMARY KEY (text_id, model_id)
    );
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)


_TEXT_COLUMNS = "t.id, t.video_id, t.tool, t.start, t.end, t.text, t.score, t.data"


def _text_row(row: Sequence[Any], **extra: Any) -> dict[str, Any]:
    keys = ("id", "video_id", "tool", "start", "end", "text", "score")
    return {**dict(zip(keys, row[:7], strict=True)), "data": json.loads(row[7]), **extra}


def _narrowed(
    sql: str, params: list[Any], *, tools: Sequence[str] | None, video_id: str | None
) -> tuple[str, list[Any]]:
    if tools is not None:
        sql += f" AND t.tool IN ({','.join('?' * len(tools))})"
        params = [*params, *tools]
    if video_id is not None:
        sql += " AND t.video_id = ?"
        params = [*params, video_id]
    return sql, params


class StoreError(VidagentError):
    """The store file cannot be opened or is from a newer vidagent."""


@dataclass(frozen=True)
class FrameRows:
    """Stored frames of one (video, model, sampling), in time order."""

    timestamps: np.ndarray  # float64 (N,)
    indices: np.ndarray  # int64 (N,)
    embeddings: np.ndarray  # float32 (N, D), L2-normalised

    def __len__(self) -> int:
        return len(self.timestamps)


def default_store_path() -> Path:
    return data_dir() / "vidagent.sqlite"


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


class Store:
    """A thread-safe handle on the SQLite memory store."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_store_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._filling: dict[tuple[str, str, str, str], threading.Lock] = {}
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: not a usable vidagent store ({exc})") from exc

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path}: schema version {version} is newer than this vidagent ({SCHEMA_VERSION}); "
                "upgrade vidagent or use another --store"
            )
        for number in range(version, SCHEMA_VERSION):
            try:  # one transaction per migration: all of it or none of it
                self._db.executescript(
                    f"BEGIN;\n{MIGRATIONS[number]}\nPRAGMA user_version={number + 1};\nCOMMIT;"
                )
            except sqlite3.Error:
                self._db.rollback()
                raise

    @property
    def schema_version(self) -> int:
        return self._db.execute("PRAGMA user_version").fetchone()[0]

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """All writes inside commit together or not at all."""
        with self._lock, self._db:
            yield self._db

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- videos --------------------------------------------------------------------------
    def content_hash(self, path: str | Path) -> str:
        """sha256 of the file, computed once per (path, size, mtime) and cached; VideoNotFound when
        there is no such file (or it is a directory)."""
        path = Path(path).resolve()
        if not path.is_file():
            raise VideoNotFound(path, "no such file" if not path.exists() else "not a regular file")
        stat = path.stat()
        with self._lock:
            row = self._db.execute(
                "SELECT sha256 FROM file_hashes WHERE path=? AND size=? AND mtime_ns=?",
                (str(path), stat.st_size, stat.st_mtime_ns),
            ).fetchone()
        if row:
            return row[0]
        digest = file_sha256(path)
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO file_hashes VALUES (?, ?, ?, ?)",
                (str(path), stat.st_size, stat.st_mtime_ns, digest),
            )
        return digest

    def add_video(self, video_id: str, path: str | Path, meta: dict[str, Any]) -> None:
        with self.transaction() as db:
            db.execute(
                # the same bytes again: the new path, and the new facts merged over the old (an upload's
                # name survives a later index of it, and a file indexed before gets the upload's name)
                "INSERT INTO videos VALUES (?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET path=excluded.path, "
                "meta=json_patch(videos.meta, excluded.meta)",
                (video_id, str(Path(path).resolve()), json.dumps(meta), time.time()),
            )

    def videos(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT id, path, meta FROM videos ORDER BY added_at").fetchall()
        return [{"id": r[0], "path": r[1], "meta": json.loads(r[2])} for r in rows]

    def video(self, video_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT id, path, meta FROM videos WHERE id=?", (video_id,)).fetchone()
        return {"id": row[0], "path": row[1], "meta": json.loads(row[2])} if row else None

    # --- frames --------------------------------------------------------------------------
    def begin_frame_set(self, video_id: str, model_id: str, sampling: str, expected: int, dim: int) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO frame_sets VALUES (?, ?, ?, ?, ?, 0) ON CONFLICT DO UPDATE SET "
                "expected=excluded.expected, dim=excluded.dim",
                (video_id, model_id, sampling, expected, dim),
            )

    def add_frames(
        self,
        video_id: str,
        model_id: str,
        sampling: str,
        grid_positions: Sequence[int] | np.ndarray,
        timestamps: Sequence[float] | np.ndarray,
        indices: Sequence[int] | np.ndarray,
        embeddings: np.ndarray,
    ) -> None:
        """Write one chunk of frames in one transaction."""
        blobs = np.asarray(embeddings, dtype=np.float16)
        rows = [
            (video_id, model_id, sampling, int(k), float(t), int(i), blobs[row].tobytes())
            for row, (k, t, i) in enumerate(zip(grid_positions, timestamps, indices, strict=True))
        ]
        with self.transaction() as db:
            db.executemany("INSERT OR REPLACE INTO frames VALUES (?, ?, ?, ?, ?, ?, ?)", rows)

    def stored_positions(self, video_id: str, model_id: str, sampling: str) -> set[int]:
        """Grid positions already committed (what a resumed index can skip)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT k FROM frames WHERE video_id=? AND model_id=? AND sampling=?",
                (video_id, model_id, sampling),
            ).fetchall()
        return {r[0] for r in rows}

    def finish_frame_set(self, video_id: str, model_id: str, sampling: str) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE frame_sets SET complete=1 WHERE video_id=? AND model_id=? AND sampling=?",
                (video_id, model_id, sampling),
            )

    def frame_set(self, video_id: str, model_id: str, sampling: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT expected, dim, complete, (SELECT COUNT(*) FROM frames f WHERE f.video_id=s.video_id "
                "AND f.model_id=s.model_id AND f.sampling=s.sampling) FROM frame_sets s "
                "WHERE video_id=? AND model_id=? AND sampling=?",
                (video_id, model_id, sampling),
            ).fetchone()
        if row is None:
            return None
        return {"expected": row[0], "dim": row[1], "complete": bool(row[2]), "stored": row[3]}

    def frame_sets(self, model_id: str | None = None) -> list[dict[str, Any]]:
        query = "SELECT video_id, model_id, sampling, expected, complete FROM frame_sets"
        params: tuple[Any, ...] = ()
        if model_id is not None:
            query += " WHERE model_id=?"
            params = (model_id,)
        with self._lock:
            rows = self._db.execute(query, params).fetchall()
        keys = ("video_id", "model_id", "sampling", "expected", "complete")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def frames(self, video_id: str, model_id: str, sampling: str) -> FrameRows:
        with self._lock:
            dim_row = self._db.execute(
                "SELECT dim FROM frame_sets WHERE video_id=? AND model_id=? AND sampling=?",
                (video_id, model_id, sampling),
            ).fetchone()
            rows = self._db.execute(
                "SELECT t, frame_index, embedding FROM frames WHERE video_id=? AND model_id=? AND sampling=? "
                "ORDER BY k",
                (video_id, model_id, sampling),
            ).fetchall()
        dim = dim_row[0] if dim_row else 0
        embeddings = np.frombuffer(b"".join(r[2] for r in rows), dtype=np.float16).reshape(len(rows), dim)
        return FrameRows(
            timestamps=np.array([r[0] for r in rows], dtype=np.float64),
            indices=np.array([r[1] for r in rows], dtype=np.int64),
            embeddings=embeddings.astype(np.float32),
        )

    # --- tool results --------------------------------------------------------------------
    @staticmethod
    def result_key(tool: str, video_id: str | None, model_id: str, arguments: dict[str, Any]) -> str:
        payload = json.dumps([tool, video_id, model_id, arguments], sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()

    def cached_result(self, key: str) -> Evidence | None:
        with self._lock:
            row = self._db.execute("SELECT evidence FROM tool_results WHERE key=?", (key,)).fetchone()
        return Evidence.from_json(row[0]) if row else None

    def cache_result(self, key: str, tool: str, video_id: str | None, evidence: Evidence) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO tool_results VALUES (?, ?, ?, ?, ?)",
                (key, tool, video_id, evidence.to_json(), time.time()),
            )

    # --- text from videos: captions, OCR, transcripts ---------------------------------------
    @staticmethod
    def settings_key(settings: dict[str, Any]) -> str:
        return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def put_texts(
        self, video_id: str, tool: str, model_id: str, settings: str, rows: Sequence[dict[str, Any]]
    ) -> None:
        """Store a complete set of text rows ({start, end, text, score?, data?}) in one transaction."""
        with self.transaction() as db:
            db.execute(
                "DELETE FROM texts WHERE video_id=? AND tool=? AND model_id=? AND settings=?",
                (video_id, tool, model_id, settings),
            )
            db.executemany(
                "INSERT INTO texts (video_id, tool, model_id, settings, start, end, text, score, data) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        video_id,
                        tool,
                        model_id,
                        settings,
                        float(r["start"]),
                        float(r["end"]),
                        str(r["text"]),
                        float(r.get("score", 1.0)),
                        json.dumps(r.get("data", {})),
                    )
                    for r in rows
                ],
            )
            db.execute(
                "INSERT OR REPLACE INTO text_sets VALUES (?, ?, ?, ?)", (video_id, tool, model_id, settings)
            )

    @contextlib.contextmanager
    def filling(self, video_id: str, tool: str, model_id: str, settings: str) -> Iterator[None]:
        """Hold while checking for and computing one text set, so two threads asking for the same
        set at once (recall's find_text and transcribe on a new clip) compute it once: the second
        finds it stored."""
        key = (video_id, tool, model_id, settings)
        with self._lock:
            lock = self._filling.setdefault(key, threading.Lock())
        with lock:
            yield

    def texts(self, video_id: str, tool: str, model_id: str, settings: str) -> list[dict[str, Any]] | None:
        """The stored set, or None when it was never completed (so the tool must run)."""
        with self._lock:
            complete = self._db.execute(
                "SELECT 1 FROM text_sets WHERE video_id=? AND tool=? AND model_id=? AND settings=?",
                (video_id, tool, model_id, settings),
            ).fetchone()
            if not complete:
                return None
            rows = self._db.execute(
                "SELECT start, end, text, score, data FROM texts WHERE video_id=? AND tool=? AND model_id=? "
                "AND settings=? ORDER BY start, id",
                (video_id, tool, model_id, settings),
            ).fetchall()
        return [
            {"start": r[0], "end": r[1], "text": r[2], "score": r[3], "data": json.loads(r[4])} for r in rows
        ]

    def search_texts(
        self,
        query: str,
        *,
        tool: str | None = None,
        video_id: str | None = None,
        tools: Sequence[str] | None = None,
        any_word: bool = False,
        limit: int = 20,
    ) -> list[dict[str, Any]]:
        """Full-text search (SQLite FTS5, bm25-ranked) over every stored caption, OCR line, transcript.

        Every word of ``query`` must be in a row, or with ``any_word`` one of them (bm25 still ranks
        rows with more of them first). ``tool``/``tools`` and ``video_id`` narrow the rows searched.
        """
        words = [w for w in re.findall(r"\w+", query) if w]
        terms = (" OR " if any_word else " ").join('"' + word + '"' for word in words)
        if not terms:
            return []
        sql = (
            f"SELECT {_TEXT_COLUMNS}, bm25(texts_fts) AS rank FROM texts_fts "
            "JOIN texts t ON t.id = texts_fts.rowid WHERE texts_fts MATCH ?"
        )
        params: list[Any] = [terms]
        sql, params = _narrowed(sql, params, tools=[tool] if tool is not None else tools, video_id=video_id)
        sql += " ORDER BY rank LIMIT ?"
        params.append(limit)
        with self._lock:
            rows = self._db.execute(sql, params).fetchall()
        return [_text_row(r, rank=r[-1]) for r in rows]

    def text_rows(
        self, *, video_id: str | None = None, tools: Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        """Every stored text row (of one video, of some tools), with its row id."""
        sql, params = _narrowed(
            f"SELECT {_TEXT_COLUMNS} FROM texts t WHERE 1", [], tools=tools, video_id=video_id
        )
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY t.video_id, t.start, t.id", params).fetchall()
        return [_text_row(r) for r in rows]

    def text_vectors(self, ids: Sequence[int], model_id: str) -> dict[int, np.ndarray]:
        """The stored sentence embeddings of these text rows (rows without one are left out)."""
        found: dict[int, np.ndarray] = {}
        with self._lock:
            for start in range(0, len(ids), 500):
                chunk = [int(i) for i in ids[start : start + 500]]
                marks = ",".join("?" * len(chunk))
                for text_id, blob in self._db.execute(
                    f"SELECT text_id, vector FROM text_vectors WHERE model_id=? AND text_id IN ({marks})",
                    [model_id, *chunk],
                ):
                    found[text_id] = np.frombuffer(blob, dtype=np.float16).astype(np.float32)
        return found

    def put_text_vectors(self, model_id: str, ids: Sequence[int], vectors: np.ndarray) -> None:
        """Store sentence embeddings of text rows; a row deleted meanwhile is skipped."""
        with self.transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO text_vectors (text_id, model_id, vector) "
                "SELECT ?, ?, ? WHERE EXISTS (SELECT 1 FROM texts WHERE id=?)",
                [
                    (int(i), model_id, np.asarray(v, dtype=np.float16).tobytes(), int(i))
                    for i, v in zip(ids, vectors, strict=True)
                ],
            )

    # --- object memory: tracks -------------------------------------------------------------
    def put_tracks(
        self, video_id: str, model_id: str, settings: str, tracks: Sequence[dict[str, Any]]
    ) -> None:
        """Store a complete set of tracks ({track_id, label, ...JSON data}) in one transaction."""
        with self.transaction() as db:
            db.execute(
                "DELETE FROM tracks WHERE video_id=? AND model_id=? AND settings=?",
                (video_id, model_id, settings),
            )
            db.executemany(
                "INSERT INTO tracks VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (video_id, model_id, settings, int(t["track_id"]), str(t["label"]), json.dumps(t))
                    for t in tracks
                ],
            )
            db.execute("INSERT OR REPLACE INTO track_sets VALUES (?, ?, ?)", (video_id, model_id, settings))

    def tracks(self, video_id: str, model_id: str, settings: str) -> list[dict[str, Any]] | None:
        with self._lock:
            complete = self._db.execute(
                "SELECT 1 FROM track_sets WHERE video_id=? AND model_id=? AND settings=?",
                (video_id, model_id, settings),
            ).fetchone()
            if not complete:
                return None
            rows = self._db.execute(
                "SELECT data FROM tracks WHERE video_id=? AND model_id=? AND settings=? ORDER BY track_id",
                (video_id, model_id, settings),
            ).fetchall()
        return [json.loads(r[0]) for r in rows]

    # --- masks -----------------------------------------------------------------------------
    def put_masks(self, video_id: str, masks: Sequence[tuple[str, float, np.ndarray]]) -> None:
        """Store boolean masks (id, t, HxW array) compactly: packed bits, zlib-compressed."""
        rows = []
        for mask_id, t, mask in masks:
            mask = np.asarray(mask, dtype=bool)
            bits = zlib.compress(np.packbits(mask, axis=None).tobytes(), level=6)
            rows.append((mask_id, video_id, float(t), mask.shape[0], mask.shape[1], bits))
        with self.transaction() as db:
            db.executemany("INSERT OR REPLACE INTO masks VALUES (?, ?, ?, ?, ?, ?)", rows)

    def mask(self, mask_id: str) -> np.ndarray:
        with self._lock:
            row = self._db.execute("SELECT height, width, bits FROM masks WHERE id=?", (mask_id,)).fetchone()
        if row is None:
            raise KeyError(f"no mask {mask_id!r} in {self.path}")
        height, width, bits = row
        flat = np.unpackbits(np.frombuffer(zlib.decompress(bits), dtype=np.uint8), count=height * width)
        return flat.reshape(height, width).astype(bool)
