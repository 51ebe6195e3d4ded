"""The memory store: a ``Store`` protocol and its embedded implementation on one SQLite file.

SQLite in WAL mode (a committed transaction survives ``kill -9`` of any process), FTS5 for keywords, and
embeddings as float32 BLOBs next to the text; the vector index itself lives in memory (``vectors.py``) and
is rebuilt from these BLOBs. Standard library only: the hook fallback and the CLI use it without numpy.

Every process may open the store -- the daemon (its background writer captures hook events), the CLI, the
MCP server -- because every write is one short ``BEGIN IMMEDIATE`` transaction with a busy timeout (cut to
the time left when the hook's in-process fallback runs against a deadline: ``ultramax.deadline``). A
PostgreSQL + pgvector backend implements the same protocol without touching callers.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import re
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from ultramax.memory.blocks import BlockStore
from ultramax.memory.database import database_problem
from ultramax.memory.fts import BM25_WEIGHTS
from ultramax.memory.models import (
    Block,
    BlockVersion,
    MemoryStoreError,
    NewPassage,
    Passage,
    Project,
)
from ultramax.memory.passages import PassageStore, VectorRow
from ultramax.paths import Paths

__all__ = [
    "SQLiteStore",
    "Store",
    "database_path",
    "database_problem",
]


def database_path(paths: Paths) -> Path:
    return paths.home / "memory.db"


class Store(Protocol):
    """What callers need from a memory backend."""

    # projects
    def ensure_project(self, name: str, path: str | None = None, *, created_at: float | None = None) -> Project: ...
    def project_of_dir(self, directory: Path) -> Project | None: ...
    def project_for_dir(self, directory: Path, name: str | None = None) -> Project: ...
    def get_project(self, name: str) -> Project | None: ...
    def list_projects(self) -> list[Project]: ...
    def set_capture(self, name: str, enabled: bool) -> Project: ...
    # core blocks
    def blocks(self, project: str) -> list[Block]: ...
    def block(self, project: str, label: str) -> Block: ...
    def write_block(
        self,
        project: str,
        label: str,
        value: str,
        *,
        source: str,
        limit: int | None = None,
        description: str | None = None,
    ) -> Block: ...
    def block_history(self, project: str, label: str) -> list[BlockVersion]: ...
    def undo_block(self, project: str, label: str) -> Block: ...
    # passages
    def add_passages(self, project: str, passages: Sequence[NewPassage]) -> list[int]: ...
    def has_passage(self, project: str, text: str) -> bool: ...
    def get_passages(self, ids: Sequence[int]) -> dict[int, Passage]: ...
    def forget(self, passage_id: int) -> bool: ...
    def recent(
        self,
        project: str,
        *,
        kinds: Sequence[str] | None = None,
        session_id: str | None = None,
        limit: int = 20,
    ) -> list[Passage]: ...
    def keyword_search(
        self,
        project_ids: Sequence[int] | None,
        match: str,
        limit: int,
        *,
        start: float | None = None,
        end: float | None = None,
    ) -> list[tuple[int, float]]: ...
    def count(self, project: str | None = None) -> int: ...
    def counts_by_project(self) -> dict[str, int]: ...
    def iter_passages(self, project: str | None = None) -> Iterator[Passage]: ...
    def session_passage_ids(self, project_id: int, session_id: str) -> list[int]: ...
    # capture state, change detection, lifecycle
    def get_state(self, project_id: int, session_id: str, key: str) -> Any: ...
    def set_state(self, project_id: int, session_id: str, key: str, value: Any) -> None: ...
    def change_token(self) -> tuple[int, int]: ...
    def transaction(self) -> contextlib.AbstractContextManager[None]: ...
    def integrity_check(self) -> list[str]: ...
    def close(self) -> None: ...
    # embeddings
    def unembedded(self, limit: int) -> list[tuple[int, int, float, str]]: ...
    def set_embeddings(self, rows: Sequence[tuple[int, bytes]], model: str) -> None: ...
    def vectors_since(self, seq: int) -> Iterator[VectorRow]: ...


class SQLiteStore(BlockStore, PassageStore):
    """The embedded store. Thread-safe: one connection per thread, writes serialised by SQLite's lock."""

    def __init__(self, path: Path, *, busy_timeout_ms: int = 10_000) -> None:
        self._df_cache: dict[str, tuple[int, int]] = {}
        # bm25 term pruning (measured in docs/benchmarks.md): terms in more than half the passages carry no
        # weight and are always dropped; past LARGE_STORE passages, terms in more than 10% are dropped too --
        # 3x faster bm25 at 100k (24 -> 7 ms p50) for -0.009 recall@5 on LoCoMo where it was forced on
        self.common_term_fraction = 0.5
        self.large_store = 20_000
        self.large_store_fraction = 0.1
        self._projects_seen: tuple[tuple[int, int], int] = ((-1, -1), 0)
        super().__init__(path, busy_timeout_ms=busy_timeout_ms)

    @classmethod
    def open(cls, paths: Paths) -> SQLiteStore:
        paths.ensure_home()
        return cls(database_path(paths))

    def keyword_search(
        self,
        project_ids: Sequence[int] | None,
        match: str,
        limit: int,
        *,
        start: float | None = None,
        end: float | None = None,
    ) -> list[tuple[int, float]]:
        """FTS5 bm25 top ``limit`` for an FTS5 MATCH expression: (passage id, bm25 -- lower is better).

        Terms found in more than half the passages are dropped first: bm25 gives them no weight (FTS5 clamps
        their idf to ~0) yet scoring their posting lists is most of the cost of a query. In a large store
        (over ``large_store`` passages) terms in more than ``large_store_fraction`` of them go too.
        """
        match = self._prune_common_terms(match)
        if not match:
            return []
        where = ["passages_fts MATCH ?"]
        args: list[Any] = [match]
        single = project_ids is not None and len(project_ids) == 1 and self._project_count() == 1
        if project_ids is not None and not single:
            where.append(f"p.project_id IN ({','.join('?' * len(project_ids))})")
            args += list(project_ids)
        if start is not None:
            where.append("p.created_at >= ?")
            args.append(start)
        if end is not None:
            where.append("p.created_at < ?")
            args.append(end)
        if len(where) == 1:  # no filter on the passage row: rank inside FTS5 alone
            sql = (
                f"SELECT rowid, bm25(passages_fts, {BM25_WEIGHTS}) AS score FROM passages_fts "
                "WHERE passages_fts MATCH ? "
            )
            sql += "ORDER BY score LIMIT ?"
        else:
            sql = (
                f"SELECT p.id, bm25(passages_fts, {BM25_WEIGHTS}) AS score FROM passages_fts "
                "JOIN passages p ON p.id = passages_fts.rowid "
                f"WHERE {' AND '.join(where)} ORDER BY score LIMIT ?"
            )
        try:
            return [(int(r[0]), float(r[1])) for r in self._conn().execute(sql, [*args, limit])]
        except sqlite3.OperationalError as exc:
            raise MemoryStoreError(f"keyword search failed for {match!r}: {exc}") from exc

    def _project_count(self) -> int:
        token = self.change_token()
        if self._projects_seen[0] != token:
            count = int(self._conn().execute("SELECT count(*) FROM projects").fetchone()[0])
            self._projects_seen = (token, count)
        return self._projects_seen[1]

    def _prune_common_terms(self, match: str) -> str:
        terms = re.findall(r'"([^"]+)"', match)
        if len(terms) < 2:
            return match
        conn = self._conn()
        total = int(conn.execute("SELECT coalesce(max(id), 0) FROM passages").fetchone()[0])
        if total < 1000:
            return match
        kept: list[str] = []
        for term in terms:
            cached = self._df_cache.get(term)
            if cached is None or abs(cached[1] - total) > total // 10:
                df = int(
                    conn.execute(
                        "SELECT count(*) FROM passages_fts WHERE passages_fts MATCH ?", (f'"{term}"',)
                    ).fetchone()[0]
                )
                cached = self._df_cache[term] = (df, total)
                if len(self._df_cache) > 50_000:
                    self._df_cache.clear()
            fraction = self.large_store_fraction if total > self.large_store else self.common_term_fraction
            if cached[0] <= total * fraction:
                kept.append(term)
        return " OR ".join(f'"{t}"' for t in kept) if kept else match

    # -- small per-session state for capture ----------------------------------------------------------------
    def get_state(self, project_id: int, session_id: str, key: str) -> Any:
        row = (
            self._conn()
            .execute(
                "SELECT value FROM capture_state WHERE project_id = ? AND session_id = ? AND key = ?",
                (project_id, session_id, key),
            )
            .fetchone()
        )
        return json.loads(row[0]) if row else None

    def set_state(self, project_id: int, session_id: str, key: str, value: Any) -> None:
        with self._write() as conn:
            if value is None:
                conn.execute(
                    "DELETE FROM capture_state WHERE project_id = ? AND session_id = ? AND key = ?",
                    (project_id, session_id, key),
                )
            else:
                conn.execute(
                    "INSERT INTO capture_state (project_id, session_id, key, value, updated_at) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (project_id, session_id, key) DO UPDATE SET value = excluded.value, "
                    "updated_at = excluded.updated_at",
                    (project_id, session_id, key, json.dumps(value), time.time()),
                )


def _translating(method: Callable[..., Any]) -> Callable[..., Any]:
    """Raise SQLite's errors from a public store method as ``database_problem`` (the seam to sqlite3)."""
    if inspect.isgeneratorfunction(method):

        @functools.wraps(method)
        def generator(self: SQLiteStore, *args: Any, **kwargs: Any) -> Iterator[Any]:
            try:
                yield from method(self, *args, **kwargs)
            except sqlite3.DatabaseError as exc:
                raise database_problem(self.path, exc) from exc

        return generator

    @functools.wraps(method)
    def call(self: SQLiteStore, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            raise database_problem(self.path, exc) from exc

    return call


for _name in sorted({name for cls in SQLiteStore.__mro__ for name in vars(cls)}):
    _member = inspect.getattr_static(SQLiteStore, _name)  # the method in force, from whichever part defines it
    if not _name.startswith("_") and inspect.isfunction(_member) and _name not in ("integrity_check", "close"):
        setattr(SQLiteStore, _name, _translating(_member))
