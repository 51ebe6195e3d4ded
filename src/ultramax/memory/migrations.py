"""Schema migrations of the embedded memory store: append-only, named, applied in order, each in a transaction.

Never edit or reorder a migration that has shipped: add a new one at the end. ``migrate`` records each
applied name in ``schema_migrations``; a database that holds a name this build does not know was written by
a newer ultramax and is refused rather than guessed at.

Core blocks carry a CHECK constraint on their character limit, so the limit holds on every write path --
even SQL typed by hand -- not only in the Python API (Letta's #3241 was a path that skipped validation).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

from ultramax.memory.fts import identifier_terms
from ultramax.memory.models import MemoryStoreError

__all__ = ["MIGRATIONS", "applied_migrations", "migrate"]

Step = str | Callable[[sqlite3.Connection], None]


def _identifier_terms(conn: sqlite3.Connection) -> None:
    """Index each passage's identifiers in their other spellings (``fts.identifier_terms``): a ``terms``
    column, filled for the passages already stored, and the FTS5 table rebuilt with it as a third column."""
    conn.execute("DROP TRIGGER passages_fts_insert")
    conn.execute("DROP TRIGGER passages_fts_delete")
    conn.execute("DROP TRIGGER passages_fts_update")
    conn.execute("DROP TABLE passages_fts")
    conn.execute("ALTER TABLE passages ADD COLUMN terms TEXT NOT NULL DEFAULT ''")
    last = 0
    while rows := conn.execute("SELECT id, text FROM passages WHERE id > ? ORDER BY id LIMIT 5000", (last,)).fetchall():
        updates = [(terms, pid) for pid, text in rows if (terms := identifier_terms(text))]
        conn.executemany("UPDATE passages SET terms = ? WHERE id = ?", updates)
        last = rows[-1][0]
    for statement in _statements(_TERMS_FTS):
        conn.execute(statement)
    conn.execute("INSERT INTO passages_fts (passages_fts) VALUES ('rebuild')")


_TERMS_FTS = """
CREATE VIRTUAL TABLE passages_fts USING fts5 (
    text, context, terms, content='passages', content_rowid='id', tokenize='porter unicode61 remove_diacritics 2'
);
CREATE TRIGGER passages_fts_insert AFTER INSERT ON passages BEGIN
    INSERT INTO passages_fts (rowid, text, context, terms) VALUES (new.id, new.text, new.context, new.terms);
END;
CREATE TRIGGER passages_fts_delete AFTER DELETE ON passages BEGIN
    INSERT INTO passages_fts (passages_fts, rowid, text, context, terms)
    VALUES ('delete', old.id, old.text, old.context, old.terms);
END;
CREATE TRIGGER passages_fts_update AFTER UPDATE OF text, context, terms ON passages BEGIN
    INSERT INTO passages_fts (passages_fts, rowid, text, context, terms)
    VALUES ('delete', old.id, old.text, old.context, old.terms);
    INSERT INTO passages_fts (rowid, text, context, terms) VALUES (new.id, new.text, new.context, new.terms);
END;
"""


MIGRATIONS: tuple[tuple[str, Step], ...] = (
    (
        "0001_projects_blocks_passages",
        """
        CREATE TABLE projects (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            path TEXT UNIQUE,
            created_at REAL NOT NULL,
            capture INTEGER NOT NULL DEFAULT 1
        );
        CREATE TABLE blocks (
            id INTEGER PRIMARY KEY,
            project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
            label TEXT NOT NULL,
            value TEXT NOT NULL,
            char_limit INTEGER NOT NULL CHECK (char_limit > 0),
            description TEXT NOT NULL DEFAULT '',
            read_only INTEGER NOT NULL DEFAULT 0,
            version INTEGER NOT NULL,
            updated_at REAL NOT NULL,
            UNIQUE (project_id, label),
            CHECK (length(value) <= char_limit)
        );
        CREATE TABLE block_versions (
            block_id INTEGER NOT NULL REFERENCES blocks(id) ON DELETE CASCADE,
            version INTEGER NOT NULL,
            value TEXT NOT NULL,
            char_limit INTEGER NOT NULL,
            created_at REAL NOT NULL,
            source TEXT NOT NULL,
            parent_version INTEGER,
            PRIMARY KEY (block_id, version),
            CHECK (length(value) <= char_limit)
        );
        CREATE TABLE passages (
            id INTEGER PRIMARY KEY,
            project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
            session_id TEXT,
            kind TEXT NOT NULL,
            text TEXT NOT NULL,
            context TEXT NOT NULL DEFAULT '',
            created_at REAL NOT NULL,
            source_event TEXT,
            source TEXT,
            tags TEXT NOT NULL DEFAULT '',
            external_id TEXT,
            content_hash TEXT NOT NULL,
            seen INTEGER NOT NULL DEFAULT 1,
            last_seen REAL NOT NULL,
            embedding BLOB,
            embed_model TEXT,
            vec_seq INTEGER,
            UNIQUE (project_id, content_hash)
        );
        CREATE INDEX passages_project_time ON passages (project_id, created_at);
        CREATE INDEX passages_session ON passages (session_id);
        CREATE INDEX passages_unembedded ON passages (id) WHERE embedding IS NULL;
        CREATE INDEX passages_vec_seq ON passages (vec_seq) WHERE vec_seq IS NOT NULL;
        CREATE VIRTUAL TABLE passages_fts USING fts5 (
            text, context, content='passages', content_rowid='id', tokenize='porter unicode61 remove_diacritics 2'
        );
        CREATE TRIGGER passages_fts_insert AFTER INSERT ON passages BEGIN
            INSERT INTO passages_fts (rowid, text, context) VALUES (new.id, new.text, new.context);
        END;
        CREATE TRIGGER passages_fts_delete AFTER DELETE ON passages BEGIN
            INSERT INTO passages_fts (passages_fts, rowid, text, context)
            VALUES ('delete', old.id, old.text, old.context);
        END;
        CREATE TRIGGER passages_fts_update AFTER UPDATE OF text, context ON passages BEGIN
            INSERT INTO passages_fts (passages_fts, rowid, text, context)
            VALUES ('delete', old.id, old.text, old.context);
            INSERT INTO passages_fts (rowid, text, context) VALUES (new.id, new.text, new.context);
        END;
        """,
    ),
    (
        "0002_capture_state",
        """
        -- per-session capture state: the last failed command, so a later success can be stored as its fix
        CREATE TABLE capture_state (
            project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
            session_id TEXT NOT NULL,
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (project_id, session_id, key)
        );
        """,
    ),
    ("0003_identifier_terms", _identifier_terms),
)


def applied_migrations(conn: sqlite3.Connection) -> list[str]:
    exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'").fetchone()
    if not exists:
        return []
    return [row[0] for row in conn.execute("SELECT name FROM schema_migrations ORDER BY rowid")]


def migrate(conn: sqlite3.Connection) -> list[str]:
    """Bring the schema up to date; returns the names applied now. The connection must be in autocommit mode."""
    conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)")
    known = [name for name, _ in MIGRATIONS]
    done = applied_migrations(conn)
    unknown = [name for name in done if name not in known]
    if unknown:
        raise MemoryStoreError(
            f"the memory database was written by a newer ultramax (unknown migrations: {', '.join(unknown)}); "
            "upgrade ultramax to open it"
        )
    if done != known[: len(done)]:
        raise MemoryStoreError(f"the memory database's migrations are out of order: {done}")
    applied: list[str] = []
    for name, step in MIGRATIONS[len(done) :]:
        conn.execute("BEGIN IMMEDIATE")
        try:
            # another process may have migrated while we waited for the lock
            if conn.execute("SELECT 1 FROM schema_migrations WHERE name = ?", (name,)).fetchone():
                conn.execute("COMMIT")
                continue
            if isinstance(step, str):
                for statement in _statements(step):
                    conn.execute(statement)
            else:
                step(conn)
            conn.execute("INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)", (name, time.time()))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        applied.append(name)
    return applied


def _statements(script: str) -> list[str]:
    """Split a migration script into statements (triggers hold ';' inside BEGIN ... END)."""
    out: list[str] = []
    buf = ""
    for line in script.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("--"):
            continue
        buf += line + "\n"
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return out
