"""Export and import of memory as JSON Lines: one record per line, round-trip safe.

Records: ``{"type": "project", ...}``, ``{"type": "block", ...}`` (current value; limits re-checked on
import), ``{"type": "passage", ...}`` (text, kind, times, session, source, tags, indexing context).
Embeddings are not exported: they are derived data, recomputed on import.

An import is all or nothing: every line is checked first (a problem is named by its line and field), then
everything is written in one transaction. What it stores is cleaned as captured text is -- ``<private>``
spans dropped, secrets redacted -- since a file may come from anywhere; a text longer than a passage holds is
stored whole as consecutive passages, as a save stores it. A project's directory and capture
switch are taken from the file only when the import creates the project: an existing one keeps its own.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from ultramax.errors import describe_json
from ultramax.memory.blocks import valid_block_label
from ultramax.memory.capture import MAX_PASSAGE_CHARS, clean
from ultramax.memory.database import database_problem
from ultramax.memory.models import KINDS, MemoryStoreError, NewPassage, Project
from ultramax.memory.passages import content_hash
from ultramax.memory.projects import valid_project_name
from ultramax.memory.service import split_passages
from ultramax.memory.store import SQLiteStore
from ultramax.redact import redact, redact_path

__all__ = ["FORMAT", "ImportCounts", "Record", "export_records", "import_records", "parse_records", "write_jsonl"]

FORMAT = "ultramax-memory/1"
_TYPES = "header, project, block or passage"
_SHOWN_PROBLEMS = 10


# -- export ------------------------------------------------------------------------------------------------------
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


# -- checking an import --------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ProjectRecord:
    line: int
    name: str
    path: str | None
    created_at: float | None
    capture: bool


@dataclass(frozen=True, slots=True)
class BlockRecord:
    line: int
    project: str
    label: str
    value: str
    limit: int | None
    description: str | None


@dataclass(frozen=True, slots=True)
class PassageRecord:
    line: int
    project: str
    passages: tuple[NewPassage, ...]
    """One passage, or the consecutive parts of a text longer than a passage holds (as a save stores it)."""


Record = ProjectRecord | BlockRecord | PassageRecord


class _Invalid(MemoryStoreError):
    """What is wrong with one line; collected with the others' and reported together."""


def parse_records(lines: Iterable[str | bytes], source: str) -> list[Record]:
    """Every line checked and cleaned; one error naming each bad line (up to ten) if any is wrong."""
    records: list[Record] = []
    problems: list[str] = []
    for number, raw in enumerate(lines, start=1):
        try:
            record = _parse_line(raw, number)
        except _Invalid as exc:
            problems.append(f"line {number}: {exc}")
            continue
        if record is not None:
            records.append(record)
    if problems:
        shown = "\n  ".join(problems[:_SHOWN_PROBLEMS])
        more = f"\n  ... and {len(problems) - _SHOWN_PROBLEMS} more" if len(problems) > _SHOWN_PROBLEMS else ""
        lines_word = "line" if len(problems) == 1 else "lines"
        raise MemoryStoreError(
            f"{source}: nothing was imported; fix {len(problems)} {lines_word} and import again:\n  {shown}{more}"
        )
    return records


def _parse_line(raw: str | bytes, number: int) -> Record | None:
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _Invalid(f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})") from None
    if number == 1:
        raw = raw.removeprefix("\ufeff")  # a byte-order mark some editors add
    if not raw.strip():
        return None
    try:
        record = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise _Invalid(f"not JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(record, dict):
        raise _Invalid(f"expected a JSON object, not {describe_json(record)}")
    if "type" not in record:
        raise _Invalid(f"field 'type' is missing ({_TYPES})")
    kind = record["type"]
    if kind == "header":
        if record.get("format") != FORMAT:
            raise _Invalid(f"field 'format' is {describe_json(record.get('format'))}; this ultramax reads {FORMAT!r}")
        return None
    if kind == "project":
        return ProjectRecord(
            number,
            _project_name(record, "name"),
            _optional_str(record, "path"),
            _optional_number(record, "created_at"),
            _optional_bool(record, "capture", default=True),
        )
    if kind == "block":
        return _block(record, number)
    if kind == "passage":
        return _passage(record, number)
    raise _Invalid(f"field 'type' is {describe_json(kind)}, not a record type ({_TYPES})")


def _block(record: dict[str, Any], number: int) -> BlockRecord:
    project = _project_name(record, "project")
    label = _required_str(record, "label")
    if not valid_block_label(label):
        raise _Invalid(f"field 'label' is {describe_json(label)}: letters, digits, '_' or '-', up to 64")
    value = _required_str(record, "value")
    value = clean(value, max_chars=None) if value.strip() else ""
    limit = record.get("limit")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise _Invalid(f"field 'limit' must be a whole number of characters, 1 or more, not {describe_json(limit)}")
    if limit is not None and len(value) > limit:
        raise _Invalid(
            f"field 'value' holds {len(value):,} characters (once cleaned) but its 'limit' is {limit:,}: "
            "shorten the value or raise the limit"
        )
    description = _optional_str(record, "description")
    if description:
        description = clean(description, max_chars=None)
    return BlockRecord(number, project, label, value, limit, description or None)


def _passage(record: dict[str, Any], number: int) -> PassageRecord:
    project = _project_name(record, "project")
    text = clean(_required_str(record, "content"), max_chars=None)
    if not text:
        raise _Invalid("field 'content' is empty once <private> spans are removed")
    kind = _optional_str(record, "kind") or "general"
    if kind not in KINDS:
        raise _Invalid(f"field 'kind' is {describe_json(kind)}; one of {', '.join(KINDS)}")
    tags = record.get("tags")
    if tags is not None and not (isinstance(tags, list) and all(isinstance(t, str) for t in tags)):
        raise _Invalid(f"field 'tags' must be a list of strings, not {describe_json(tags)}")
    context = _optional_str(record, "context")
    # where it came from is free text in a file from anywhere (a path, a command line): redacted as the text is
    session_id, source_event, source = (_optional_str(record, f) for f in ("session_id", "source_event", "source"))
    fields: dict[str, Any] = {
        "kind": kind,
        "session_id": redact(session_id) if session_id else session_id,
        "created_at": _optional_number(record, "created_at"),
        "source_event": redact(source_event) if source_event else source_event,
        "source": redact_path(source) if source else source,
        "tags": tuple(t for t in (clean(tag, max_chars=None) for tag in tags or ()) if t),
        "context": clean(context) if context else "",
        "external_id": _optional_str(record, "external_id"),
    }
    return PassageRecord(
        number, project, tuple(NewPassage(part, **fields) for part in split_passages(text, MAX_PASSAGE_CHARS))
    )


def _required_str(record: dict[str, Any], name: str) -> str:
    if name not in record:
        raise _Invalid(f"field {name!r} is missing")
    value = record[name]
    if not isinstance(value, str):
        raise _Invalid(f"field {name!r} must be a string, not {describe_json(value)}")
    return value


def _optional_str(record: dict[str, Any], name: str) -> str | None:
    value = record.get(name)
    if value is not None and not isinstance(value, str):
        raise _Invalid(f"field {name!r} must be a string or null, not {describe_json(value)}")
    return value


def _optional_number(record: dict[str, Any], name: str) -> float | None:
    value = record.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _Invalid(f"field {name!r} must be a number (seconds since 1970) or null, not {describe_json(value)}")
    return float(value)


def _optional_bool(record: dict[str, Any], name: str, *, default: bool) -> bool:
    value = record.get(name, default)
    if not isinstance(value, bool):
        raise _Invalid(f"field {name!r} must be true or false, not {describe_json(value)}")
    return value


def _project_name(record: dict[str, Any], name: str) -> str:
    value = _required_str(record, name)
    if not valid_project_name(value):
        raise _Invalid(
            f"field {name!r} is {describe_json(value)}, not a project name "
            "(letters, digits, '.', '_' or '-', up to 128, no leading symbol)"
        )
    return value


# -- importing -----------------------------------------------------------------------------------------------------
@dataclass(slots=True)
class ImportCounts:
    projects: int = 0
    blocks: int = 0
    passages: int = 0
    duplicates: int = 0
    """Passages not stored because the project holds the same text already (or an earlier line did)."""
    unchanged_blocks: int = 0
    """Blocks the project holds already exactly as the file has them: no new version is written."""


def import_records(
    store: SQLiteStore, lines: Iterable[str | bytes], *, source: str = "<input>", project: str | None = None
) -> ImportCounts:
    """Check every line of an export, then load it in one transaction: all of it, or nothing on any error.

    ``project`` loads a one-project file into that project instead of its own (created if needed).
    """
    records = parse_records(lines, source)
    if project is not None:
        records = _retarget(records, project, source)
    counts = ImportCounts()
    fresh: dict[str, list[NewPassage]] = {}
    seen: set[tuple[str, str]] = set()
    where = source
    try:
        with store.transaction():
            for record in records:
                where = f"{source}, line {record.line}"
                _apply(store, record, counts, fresh, seen)
            where = source
            for name, passages in fresh.items():
                store.add_passages(name, passages)
    except MemoryStoreError as exc:
        raise MemoryStoreError(f"{where}: nothing was imported: {exc}") from exc
    except sqlite3.DatabaseError as exc:  # from the transaction's own BEGIN or COMMIT
        raise MemoryStoreError(f"{where}: nothing was imported: {database_problem(store.path, exc)}") from exc
    return counts


def _apply(
    store: SQLiteStore,
    record: Record,
    counts: ImportCounts,
    fresh: dict[str, list[NewPassage]],
    seen: set[tuple[str, str]],
) -> None:
    if isinstance(record, ProjectRecord):
        if store.get_project(record.name) is None:
            owner = next((p.name for p in store.list_projects() if record.path and p.path == record.path), None)
            # a directory belongs to one project: where another already has it, the new project goes without
            store.ensure_project(record.name, None if owner else record.path, created_at=record.created_at)
            store.set_capture(record.name, record.capture)
        counts.projects += 1
    elif isinstance(record, BlockRecord):
        store.ensure_project(record.project)
        current = next((blk for blk in store.blocks(record.project) if blk.label == record.label), None)
        if (
            current is not None
            and current.value == record.value
            and record.limit in (None, current.limit)
            and record.description in (None, current.description)
        ):
            counts.unchanged_blocks += 1  # re-importing an export must not add a no-op version
            return
        store.write_block(
            record.project,
            record.label,
            record.value,
            source="import",
            limit=record.limit,
            description=record.description,
        )
        counts.blocks += 1
    else:
        store.ensure_project(record.project)
        for passage in record.passages:
            key = (record.project, content_hash(passage.text))
            if key in seen or store.has_passage(record.project, passage.text):
                counts.duplicates += 1
                continue
            seen.add(key)
            fresh.setdefault(record.project, []).append(passage)
            counts.passages += 1


def _retarget(records: list[Record], project: str, source: str) -> list[Record]:
    if not valid_project_name(project):
        raise MemoryStoreError(
            f"invalid project name {project!r}: use letters, digits, '.', '_' or '-' (up to 128, no leading symbol)"
        )
    names = sorted({r.name if isinstance(r, ProjectRecord) else r.project for r in records})
    if len(names) > 1:
        raise MemoryStoreError(
            f"{source} holds {len(names)} projects ({', '.join(names)}); --project loads one into another: "
            "export it alone with `ultramax memory export --project NAME`"
        )
    # the file's directory stays with the project it came from; the target keeps (or gets) none from it
    return [
        dataclasses.replace(r, name=project, path=None)
        if isinstance(r, ProjectRecord)
        else dataclasses.replace(r, project=project)
        for r in records
    ]
