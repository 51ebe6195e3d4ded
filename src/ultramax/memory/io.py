"""Export and import of memory as JSON Lines: one record per line, round-trip safe.

Records: ``{"type": "project", ...}``, ``{"type": "block", ...}`` (current value; limits re-checked on
import), ``{"type": "passage", ...}`` (text, kind, times, session, source, tags, indexing context).
Embeddings are not exported: they are derived data, recomputed on import.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import IO, Any

from ultramax.memory.models import MemoryStoreError, NewPassage, Project
from ultramax.memory.store import SQLiteStore

__all__ = ["export_records", "import_records"]

FORMAT = "ultramax-memory/1"


def export_records(store: SQLiteStore, project: str | None = None) -> Iterator[dict[str, Any]]:
    """The records of every project, or of one; an unknown project fails here, before any record is made."""
    projects = [p for p in store.list_projects() if project is None or p.name == project]
    if project is not None and not projects:
        raise MemoryStoreError(f"no memory project named {project!r}; see `ultramax list-projects`")
    return _records(store, projects)


def _records(store: SQLiteStore, projects: list[Project]) -> Iterator[dict[str, Any]]:
    yield {"type": "header", "format": FORMAT}
    for p in projects:
        yield {"type": "project", "name": p.name, "path": p.path, "created_at": p.created_at, "capture": p.capture}
        for b in store.blocks(p.name):
            yield {
                "type": "block",
                "project": p.name,
                "label": b.label,
                "value": b.value,
                "limit": b.limit,
                "description": b.description,
                "read_only": b.read_only,
            }
        for passage in store.iter_passages(p.name):
            yield {
                "type": "passage",
                "project": p.name,
                "kind": passage.kind,
                "content": passage.text,
                "created_at": passage.created_at,
                "session_id": passage.session_id,
                "source_event": passage.source_event,
                "source": passage.source,
                "tags": list(passage.tags),
                "context": passage.context,
                "external_id": passage.external_id,
            }


def write_jsonl(records: Iterable[dict[str, Any]], out: IO[str]) -> int:
    n = 0
    for record in records:
        out.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
        n += 1
    return n


def import_records(store: SQLiteStore, lines: Iterable[str], *, batch: int = 500) -> dict[str, int]:
    """Load records; passages already present (same text in the project) are not duplicated."""
    counts = {"projects": 0, "blocks": 0, "passages": 0}
    pending: dict[str, list[NewPassage]] = {}

    def flush() -> None:
        for name, items in pending.items():
            if items:
                store.add_passages(name, items)
                counts["passages"] += len(items)
        pending.clear()

    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            kind = record["type"]
        except (ValueError, KeyError, TypeError) as exc:
            raise MemoryStoreError(f"line {number}: not a memory record ({exc})") from exc
        if kind == "header":
            if record.get("format") != FORMAT:
                raise MemoryStoreError(f"line {number}: unknown format {record.get('format')!r} (expected {FORMAT})")
        elif kind == "project":
            store.ensure_project(record["name"], record.get("path"), created_at=record.get("created_at"))
            store.set_capture(record["name"], bool(record.get("capture", True)))
            counts["projects"] += 1
        elif kind == "block":
            store.ensure_project(record["project"])
            store.write_block(
                record["project"],
                record["label"],
                record["value"],
                source="import",
                limit=int(record["limit"]),
                description=record.get("description") or None,
            )
            counts["blocks"] += 1
        elif kind == "passage":
            store.ensure_project(record["project"])
            pending.setdefault(record["project"], []).append(
                NewPassage(
                    record["content"],
                    kind=record.get("kind", "general"),
                    session_id=record.get("session_id"),
                    created_at=record.get("created_at"),
                    source_event=record.get("source_event"),
                    source=record.get("source"),
                    tags=tuple(record.get("tags") or ()),
                    context=record.get("context") or "",
                    external_id=record.get("external_id"),
                )
            )
            if sum(len(v) for v in pending.values()) >= batch:
                flush()
        else:
            raise MemoryStoreError(f"line {number}: unknown record type {kind!r}")
    flush()
    return counts
