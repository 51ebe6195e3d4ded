"""The memory database file: its connections, the one writer at a time, and SQLite's errors put in words.

SQLite in WAL mode: a committed transaction survives ``kill -9`` of any process. Every process may open the
file -- the daemon (its background writer captures hook events), the CLI, the MCP server -- because every write
is one short ``BEGIN IMMEDIATE`` transaction with a busy timeout (cut to the time left when the hook's
in-process fallback runs against a deadline: ``ultramax.deadline``). ``SQLiteDatabase`` is the base each part
of the memory store builds on (``projects``, ``blocks``, ``passages``, ``keyword_search``, ``session_state``;
``store.SQLiteStore`` puts them together).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from ultramax.deadline import limit_sqlite_wait, switch_to_wal
from ultramax.fsutil import disk_is_full, private_dir
from ultramax.memory.migrations import migrate
from ultramax.memory.models import MemoryStoreError

__all__ = ["SQLiteDatabase", "database_problem", "looks_damaged", "orphan_wal", "set_aside_steps"]


class SQLiteDatabase:
    """One SQLite file, migrated on open. Thread-safe: one connection per thread, writes serialised by SQLite's
    lock."""

    def __init__(self, path: Path, *, busy_timeout_ms: int = 10_000) -> None:
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._write_counter = itertools.count(1)
        self._writes = 0
        private_dir(path.parent)
        _refuse_orphan_wal(path)
        conn = self._conn()
        st = path.stat()
        self._identity = (st.st_dev, st.st_ino)
        with contextlib.suppress(OSError):
            path.chmod(0o600)
        try:
            migrate(conn)
        except sqlite3.DatabaseError as exc:
            raise database_problem(path, exc) from exc

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            limit_sqlite_wait(conn, self.busy_timeout_ms)  # the hook fallback's deadline, if one is set
            return conn
        conn = None
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
            limit_sqlite_wait(conn, int(self.busy_timeout_ms))
            mode = switch_to_wal(conn, int(self.busy_timeout_ms))  # several hook processes may create it at once
            if mode != "wal":
                raise MemoryStoreError(f"{self.path}: cannot switch the memory database to WAL mode (got {mode})")
            conn.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: a commit survives any process crash
            conn.execute("PRAGMA foreign_keys = ON")
        except (sqlite3.Error, MemoryStoreError) as exc:
            if conn is not None:  # a connection that could not be set up is closed, not left to the collector
                conn.close()
            if isinstance(exc, MemoryStoreError):
                raise
            if isinstance(exc, sqlite3.DatabaseError):
                raise database_problem(self.path, exc) from exc
            raise MemoryStoreError(f"{self.path}: cannot open the memory database ({exc})") from exc
        self._local.conn = conn
        with self._conns_lock:
            self._conns.append(conn)
        return conn

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        nested = conn.in_transaction  # a name: mypy would hold conn.in_transaction False below the return
        if nested:  # inside transaction(): its outermost block commits or rolls back
            yield conn
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")  # a COMMIT that fails leaves the transaction open: roll it back below
        except BaseException:
            if conn.in_transaction:  # SQLite rolls some failures back itself; a second ROLLBACK would hide them
                conn.execute("ROLLBACK")
            self._rolled_back()
            raise
        self._writes = next(self._write_counter)  # itertools.count: atomic across threads

    def _rolled_back(self) -> None:
        """Forget what this process cached of rows a rolled-back transaction made (``projects`` caches some)."""

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Make the writes inside one transaction: all of them are committed together, or none is (an import).
        Other writers wait meanwhile, so keep it to work already checked and ready to write."""
        with self._write():
            yield

    def change_token(self) -> tuple[int, int]:
        """Changes after any commit: this process's (counted) or another's (SQLite's data_version)."""
        return self._writes, self.data_version()

    def close(self) -> None:
        with self._conns_lock:
            for conn in self._conns:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._conns.clear()
        self._local = threading.local()

    def integrity_check(self) -> list[str]:
        """SQLite's integrity check plus FTS5's; an empty list means the file is sound."""
        conn = self._conn()
        problems = [row[0] for row in conn.execute("PRAGMA integrity_check") if row[0] != "ok"]
        try:
            conn.execute("INSERT INTO passages_fts (passages_fts) VALUES ('integrity-check')")
        except sqlite3.DatabaseError as exc:
            problems.append(f"fts: {exc}")
        return problems

    def replaced(self) -> bool:
        """Whether ``path`` no longer names the file this object opened (moved aside, restored from a copy): its
        connections would go on reading and writing the old file wherever it now is."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return True
        return (st.st_dev, st.st_ino) != self._identity

    def data_version(self) -> int:
        """Changes whenever another connection commits (cheap cache invalidation)."""
        return int(self._conn().execute("PRAGMA data_version").fetchone()[0])


def set_aside_steps(path: Path) -> str:
    """How to move a damaged database aside safely: with the daemon stopped (it keeps the file open and would
    go on writing to it wherever it is moved) and together with its -wal and -shm (a -wal left behind holds
    committed changes, and the next database created at ``path`` would delete it)."""
    return (
        f"ultramax daemon stop; mv {path} {path}.broken; "
        f"for s in -wal -shm; do [ ! -e {path}$s ] || mv {path}$s {path}.broken$s; done"
    )


def orphan_wal(path: Path) -> str | None:
    """What is wrong if ``path`` is missing but its -wal is not: moving only the database file away (or deleting
    it) leaves that, and creating a new database at ``path`` deletes the -wal: the moved file would lose its last
    committed changes (all of them, schema included, when no checkpoint ran before a kill)."""
    wal = path.with_name(path.name + "-wal")
    try:
        if wal.stat().st_size == 0 or path.exists():
            return None
    except FileNotFoundError:
        return None
    return (
        f"{path} is missing but {wal} is still there: it belongs to the database that was moved or deleted and "
        f"holds its last changes. Move it next to that file, named after it (mv {wal} MOVED-FILE-wal), or delete "
        "it if that file is gone for good"
    )


def _refuse_orphan_wal(path: Path) -> None:
    problem = orphan_wal(path)
    if problem is not None:
        raise MemoryStoreError(problem)


def looks_damaged(exc: sqlite3.DatabaseError) -> bool:
    """Whether SQLite's error says the file itself is broken (not merely unreachable or out of space)."""
    low = str(exc).lower()
    return any(word in low for word in ("malformed", "not a database", "corrupt", "vtable constructor"))


def database_problem(path: Path, exc: sqlite3.DatabaseError) -> MemoryStoreError:
    """SQLite's error as a ``MemoryStoreError`` naming the file, what went wrong and what to do about it."""
    text = str(exc)
    low = text.lower()
    if looks_damaged(exc):
        hint = (
            f"the file looks damaged: move it aside with its -wal and -shm ({set_aside_steps(path)}), then "
            "restore what you exported with `ultramax memory import FILE`; `ultramax doctor` checks it"
        )
    elif "full" in low or disk_is_full(path):
        hint = "the disk is full: free some space; what was stored before is intact"
    elif "locked" in low or "busy" in low:
        hint = "another process holds the database; try again, or stop the process that has it open"
    elif "readonly" in low or "read-only" in low:
        hint = "make the file and its folder writable by you"
    else:
        hint = "check the disk (space, permissions, I/O errors) and try again; the file itself may be fine"
    return MemoryStoreError(f"{path}: memory database error ({text}); {hint}")
