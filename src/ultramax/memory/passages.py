"""Archival passages: what was captured or saved of a project's work, stored once however often it recurs.

A passage is stored with its embedding as float32 bytes beside the text once the background writer has made
it (``vec_seq`` orders the embedded ones, so an in-memory vector index -- ``vectors.py`` -- loads them and then
refreshes with only what came since). FTS5 indexes the text through triggers; ``keyword_search`` ranks it.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator, Sequence
from typing import Any

from ultramax.memory.fts import identifier_terms
from ultramax.memory.models import KINDS, MemoryStoreError, NewPassage, Passage
from ultramax.memory.projects import ProjectStore

__all__ = ["PassageStore", "VectorRow", "content_hash"]

VectorRow = tuple[int, int, float, bytes, int]
"""(passage id, project id, created_at, float32 embedding bytes, vec_seq)"""


def content_hash(text: str) -> str:
    """Dedup key: the text with case and runs of whitespace folded."""
    return hashlib.sha256(" ".join(text.lower().split()).encode()).hexdigest()


class PassageStore(ProjectStore):
    """The passages table: adding (with dedup), reading, listing, counting and forgetting passages, and the
    embeddings the background writer fills in."""

    _PASSAGE_COLS = (
        "p.id, pr.name, p.kind, p.text, p.created_at, p.session_id, p.source_event, p.source, p.tags, "
        "p.context, p.external_id, p.seen, p.embedding IS NOT NULL"
    )

    @staticmethod
    def _passage_row(row: Sequence[Any]) -> Passage:
        return Passage(
            id=row[0],
            project=row[1],
            kind=row[2],
            text=row[3],
            created_at=row[4],
            session_id=row[5],
            source_event=row[6],
            source=row[7],
            tags=tuple(t for t in row[8].split(",") if t),
            context=row[9],
            external_id=row[10],
            seen=row[11],
            embedded=bool(row[12]),
        )

    def add_passages(self, project: str, passages: Sequence[NewPassage]) -> list[int]:
        """Store passages in one transaction; a duplicate (same text in the project) is not stored again --
        its ``seen`` count and time are bumped and its existing id returned. Returns the ids in order."""
        p = self._require(project)
        now = time.time()
        ids: list[int] = []
        with self._write() as conn:
            for item in passages:
                text = item.text.strip()
                if not text:
                    raise MemoryStoreError("a passage needs some text")
                if item.kind not in KINDS:
                    raise MemoryStoreError(f"unknown passage kind {item.kind!r}; one of {', '.join(KINDS)}")
                digest = content_hash(text)
                created = item.created_at if item.created_at is not None else now
                row = conn.execute(
                    "INSERT INTO passages (project_id, session_id, kind, text, context, terms, created_at, "
                    "source_event, source, tags, external_id, content_hash, last_seen) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (project_id, content_hash) DO UPDATE SET seen = seen + 1, "
                    "last_seen = excluded.last_seen "
                    "RETURNING id",
                    (
                        p.id,
                        item.session_id,
                        item.kind,
                        text,
                        item.context,
                        identifier_terms(text),
                        created,
                        item.source_event,
                        item.source,
                        ",".join(t.replace(",", " ") for t in item.tags),
                        item.external_id,
                        digest,
                        created,
                    ),
                ).fetchone()
                ids.append(int(row[0]))
        return ids

    def has_passage(self, project: str, text: str) -> bool:
        """Whether ``project`` holds ``text`` already, as ``add_passages`` tells duplicates apart."""
        p = self._require(project)
        row = (
            self._conn()
            .execute(
                "SELECT 1 FROM passages WHERE project_id = ? AND content_hash = ?", (p.id, content_hash(text.strip()))
            )
            .fetchone()
        )
        return row is not None

    def get_passages(self, ids: Sequence[int]) -> dict[int, Passage]:
        out: dict[int, Passage] = {}
        conn = self._conn()
        for start in range(0, len(ids), 500):
            chunk = list(ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            rows = conn.execute(
                f"SELECT {self._PASSAGE_COLS} FROM passages p JOIN projects pr ON pr.id = p.project_id "
                f"WHERE p.id IN ({marks})",
                chunk,
            )
            for r in rows:
                out[r[0]] = self._passage_row(r)
        return out

    def forget(self, passage_id: int) -> bool:
        with self._write() as conn:
            cur = conn.execute("DELETE FROM passages WHERE id = ?", (passage_id,))
        return cur.rowcount > 0

    def recent(
        self,
        project: str,
        *,
        kinds: Sequence[str] | None = None,
        session_id: str | None = None,
        limit: int = 20,
        since: float | None = None,
    ) -> list[Passage]:
        p = self._require(project)
        where = ["p.project_id = ?"]
        args: list[Any] = [p.id]
        if kinds:
            where.append(f"p.kind IN ({','.join('?' * len(kinds))})")
            args += list(kinds)
        if session_id is not None:
            where.append("p.session_id = ?")
            args.append(session_id)
        if since is not None:
            where.append("p.created_at >= ?")
            args.append(since)
        rows = self._conn().execute(
            f"SELECT {self._PASSAGE_COLS} FROM passages p JOIN projects pr ON pr.id = p.project_id "
            f"WHERE {' AND '.join(where)} ORDER BY p.created_at DESC, p.id DESC LIMIT ?",
            [*args, limit],
        )
        return [self._passage_row(r) for r in rows]

    def iter_passages(self, project: str | None = None) -> Iterator[Passage]:
        """Every passage (of one project), oldest first."""
        where, args = ("WHERE pr.name = ?", [project]) if project else ("", [])
        rows = self._conn().execute(
            f"SELECT {self._PASSAGE_COLS} FROM passages p JOIN projects pr ON pr.id = p.project_id {where} "
            "ORDER BY p.id",
            args,
        )
        for r in rows:
            yield self._passage_row(r)

    def session_passage_ids(self, project_id: int, session_id: str) -> list[int]:
        rows = self._conn().execute(
            "SELECT id FROM passages WHERE project_id = ? AND session_id = ? ORDER BY id", (project_id, session_id)
        )
        return [int(r[0]) for r in rows]

    def count(self, project: str | None = None) -> int:
        if project is None:
            return int(self._conn().execute("SELECT count(*) FROM passages").fetchone()[0])
        p = self._require(project)
        return int(self._conn().execute("SELECT count(*) FROM passages WHERE project_id = ?", (p.id,)).fetchone()[0])

    def counts_by_project(self) -> dict[str, int]:
        rows = self._conn().execute(
            "SELECT pr.name, count(p.id) FROM projects pr LEFT JOIN passages p ON p.project_id = pr.id GROUP BY pr.id"
        )
        return {r[0]: int(r[1]) for r in rows}

    # -- embeddings ------------------------------------------------------------------------------------------
    def unembedded(self, limit: int) -> list[tuple[int, int, float, str]]:
        """Passages waiting for an embedding: (id, project id, created_at, text to embed: text, then context)."""
        rows = self._conn().execute(
            "SELECT id, project_id, created_at, context, text FROM passages WHERE embedding IS NULL "
            "ORDER BY id LIMIT ?",
            (limit,),
        )
        return [(int(r[0]), int(r[1]), float(r[2]), f"{r[4]}\n{r[3]}" if r[3] else r[4]) for r in rows]

    def unembedded_count(self) -> int:
        return int(self._conn().execute("SELECT count(*) FROM passages WHERE embedding IS NULL").fetchone()[0])

    def set_embeddings(self, rows: Sequence[tuple[int, bytes]], model: str) -> None:
        if not rows:
            return
        with self._write() as conn:
            seq = int(conn.execute("SELECT coalesce(max(vec_seq), 0) FROM passages").fetchone()[0])
            for offset, (pid, blob) in enumerate(rows, start=1):
                conn.execute(
                    "UPDATE passages SET embedding = ?, embed_model = ?, vec_seq = ? WHERE id = ?",
                    (blob, model, seq + offset, pid),
                )

    def vectors_since(self, seq: int) -> Iterator[VectorRow]:
        """Embedded passages with ``vec_seq`` above ``seq``, in order (to load or refresh a vector index)."""
        rows = self._conn().execute(
            "SELECT id, project_id, created_at, embedding, vec_seq FROM passages "
            "WHERE vec_seq > ? AND embedding IS NOT NULL ORDER BY vec_seq",
            (seq,),
        )
        for r in rows:
            yield int(r[0]), int(r[1]), float(r[2]), bytes(r[3]), int(r[4])

    def created_at_of(self, ids: Sequence[int]) -> dict[int, float]:
        """When each of ``ids`` was made (ids that do not exist are left out)."""
        out: dict[int, float] = {}
        conn = self._conn()
        for start in range(0, len(ids), 500):
            chunk = list(ids[start : start + 500])
            rows = conn.execute(
                f"SELECT id, created_at FROM passages WHERE id IN ({','.join('?' * len(chunk))})", chunk
            )
            out.update((int(pid), float(ts)) for pid, ts in rows)
        return out

    def session_neighbours(self, ids: Sequence[int]) -> list[tuple[int, int | None, int | None, str]]:
        """For each of ``ids`` that belongs to a session: (id, the session's passage just before it, the one
        just after it, the last 16 characters of its text), in one indexed query."""
        if not ids:
            return []
        rows = self._conn().execute(
            f"WITH hit(id) AS (VALUES {','.join(['(?)'] * len(ids))}) "
            "SELECT hit.id, "
            "(SELECT max(p.id) FROM passages p WHERE p.session_id = x.session_id AND p.id < hit.id), "
            "(SELECT min(p.id) FROM passages p WHERE p.session_id = x.session_id AND p.id > hit.id), "
            "substr(x.text, -16) "
            "FROM hit JOIN passages x ON x.id = hit.id WHERE x.session_id IS NOT NULL AND x.session_id != ''",
            list(ids),
        )
        return [
            (int(hit), None if before is None else int(before), None if after is None else int(after), str(tail))
            for hit, before, after, tail in rows
        ]
