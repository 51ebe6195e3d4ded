"""Keyword search over the passages: FTS5's bm25 ranking, with the terms too common to matter dropped first.

The MATCH expression comes from ``fts.fts_query`` (quoted terms, OR-ed); the hybrid search (``search.py``)
fuses this ranking with the vector index's.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ultramax.memory.database import SQLiteDatabase
from ultramax.memory.fts import BM25_WEIGHTS
from ultramax.memory.models import MemoryStoreError

__all__ = ["KeywordSearch"]


class KeywordSearch(SQLiteDatabase):
    """bm25 top hits in ``passages_fts``, filtered by project and time, with its term-pruning settings."""

    def __init__(self, path: Path, *, busy_timeout_ms: int = 10_000) -> None:
        self._df_cache: dict[str, tuple[int, int]] = {}
        # bm25 term pruning (measured in docs/benchmarks.md): terms in more than half the passages carry no
        # weight and are always dropped; past LARGE_STORE passages, terms in more than 10% are dropped too --
        # 3x faster bm25 at 100k (24 -> 7 ms p50) for -0.009 recall@5 on LoCoMo where it was forced on
        self.common_term_fraction = 0.5
        self.large_store = 20_000
        self.large_store_fraction = 0.1
        super().__init__(path, busy_timeout_ms=busy_timeout_ms)

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

    def keyword_within(self, match: str, ids: Sequence[int], limit: int) -> list[tuple[int, float]]:
        """bm25 top ``limit`` for an FTS5 MATCH expression among the passages ``ids`` only (a session's, the
        hot set's): (passage id, bm25 -- lower is better)."""
        if not match or not ids:
            return []
        ordered = sorted(ids)
        conn = self._conn()
        out: list[tuple[int, float]] = []
        try:
            for start in range(0, len(ordered), 500):
                chunk = ordered[start : start + 500]
                rows = conn.execute(
                    f"SELECT rowid, bm25(passages_fts, {BM25_WEIGHTS}) AS s FROM passages_fts "
                    f"WHERE passages_fts MATCH ? AND rowid IN ({','.join('?' * len(chunk))}) ORDER BY s LIMIT ?",
                    [match, *chunk, limit],
                )
                out.extend((int(r[0]), float(r[1])) for r in rows)
        except sqlite3.OperationalError as exc:
            raise MemoryStoreError(f"keyword search failed for {match!r}: {exc}") from exc
        out.sort(key=lambda x: x[1])
        return out[:limit]

    def _project_count(self) -> int:
        # kept per thread, beside the thread's connection: SQLite's data_version is a counter of that one
        # connection, so a token read on another thread's connection may equal this one's while the projects
        # changed -- and a stale count of 1 would drop the project filter and show another project's passages
        token = self.change_token()
        seen: tuple[tuple[int, int], int] | None = getattr(self._local, "projects_seen", None)
        if seen is None or seen[0] != token:
            seen = self._local.projects_seen = (
                token,
                int(self._conn().execute("SELECT count(*) FROM projects").fetchone()[0]),
            )
        return seen[1]

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
