"""The safety layers' durable state: one SQLite database in ULTRAMAX_HOME (``safety.db``, WAL, mode 0600).

It holds the exposure ledger (orders, fills, positions), the circuit breakers, the durable rate buckets,
the pre-trade judgements post-execution verification compares against, and the pending confirmations
(whose one-time tokens make the file a secret: it is created 0600 before SQLite opens it, and SQLite gives
its ``-wal`` and ``-shm`` files the same mode). WAL lets the daemon and an in-process hook read and write at
once; every write is one short ``BEGIN IMMEDIATE`` transaction, so concurrent writers queue on SQLite's lock
(``busy_timeout``, cut to the time left when the hook's in-process fallback runs against a deadline:
``ultramax.deadline``) instead of failing. Every commit survives a crash; fills, breaker trips and confirmations
are also fsynced (``write(durable=True)``) so they survive a power loss.

One ``SafetyStore`` per database per process, shared by the layers (``SafetyStore.for_paths``); the
connection opens on first use, so a layer that never needs state never pays for it.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from ultramax.deadline import limit_sqlite_wait, switch_to_wal
from ultramax.errors import UltramaxError
from ultramax.fsutil import private_dir
from ultramax.paths import Paths

__all__ = ["SCHEMA_VERSION", "SafetyStore", "SafetyStoreError"]

SCHEMA_VERSION = 3
MAX_OPEN_STORES = 8
BUSY_TIMEOUT_MS = 10_000  # how long a writer queues for the lock (less under a deadline)


_MIGRATIONS: tuple[tuple[int, str], ...] = (
    (
        1,
        """
        CREATE TABLE orders (
            order_id TEXT PRIMARY KEY,          -- broker id, or 'pending:<digest>' before one is known
            client_order_id TEXT,
            tool TEXT NOT NULL,
            symbol TEXT NOT NULL,
            side TEXT NOT NULL,                 -- buy | sell
            asset_class TEXT NOT NULL,
            multiplier REAL NOT NULL DEFAULT 1,
            qty TEXT,                           -- decimals as text: exact
            notional TEXT,
            limit_price TEXT,
            status TEXT NOT NULL,               -- open | filled | partially_filled | canceled | rejected | ...
            filled_qty TEXT NOT NULL DEFAULT '0',
            filled_avg_price TEXT,
            digest TEXT,                        -- SHA-256 of the call that placed it
            session TEXT,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        );
        CREATE INDEX orders_status ON orders(status);
        CREATE INDEX orders_digest ON orders(digest, created_at);
        CREATE TABLE fills (
            id INTEGER PRIMARY KEY,
            order_id TEXT NOT NULL,
            symbol TEXT NOT NULL,
            side TEXT NOT NULL,
            qty TEXT NOT NULL,
            price TEXT NOT NULL,
            multiplier REAL NOT NULL DEFAULT 1,
            ts REAL NOT NULL,
            source TEXT NOT NULL
        );
        CREATE TABLE positions (
            symbol TEXT PRIMARY KEY,
            qty TEXT NOT NULL,                  -- signed: long > 0, short < 0
            last_price TEXT,
            multiplier REAL NOT NULL DEFAULT 1,
            updated_at REAL NOT NULL
        );
        CREATE TABLE breakers (
            scope TEXT PRIMARY KEY,             -- 'mcp:<server>' or 'files'
            failures INTEGER NOT NULL DEFAULT 0,
            opened_at REAL,
            reason TEXT,
            rule TEXT,
            updated_at REAL NOT NULL
        );
        CREATE TABLE buckets (
            key TEXT PRIMARY KEY,
            tokens REAL NOT NULL,
            updated_at REAL NOT NULL
        );
        CREATE TABLE judgements (
            digest TEXT NOT NULL,
            tool TEXT NOT NULL,
            session TEXT,
            params TEXT NOT NULL,               -- canonical JSON of the judged input
            judged_at REAL NOT NULL
        );
        CREATE INDEX judgements_digest ON judgements(digest, judged_at);
        CREATE TABLE confirmations (
            token TEXT PRIMARY KEY,             -- secrets.token_urlsafe; the file is 0600
            ref TEXT NOT NULL UNIQUE,           -- short public handle shown to the model and the user
            digest TEXT NOT NULL,
            tool TEXT NOT NULL,
            summary TEXT NOT NULL,
            reasons TEXT NOT NULL,
            project TEXT,
            status TEXT NOT NULL,               -- pending | approved | used | void
            created_at REAL NOT NULL,
            expires_at REAL NOT NULL,
            approved_at REAL,
            approved_by TEXT,
            used_at REAL
        );
        CREATE INDEX confirmations_digest ON confirmations(digest, status);
        """,
    ),
    (
        2,
        # one book per project: two projects may trade two accounts, and one's complete position read must
        # not zero the other's positions; rows from before (project '') are read by every project
        """
        ALTER TABLE orders ADD COLUMN project TEXT NOT NULL DEFAULT '';
        ALTER TABLE fills ADD COLUMN project TEXT NOT NULL DEFAULT '';
        CREATE TABLE positions_v2 (
            project TEXT NOT NULL DEFAULT '',
            symbol TEXT NOT NULL,
            qty TEXT NOT NULL,
            last_price TEXT,
            multiplier REAL NOT NULL DEFAULT 1,
            updated_at REAL NOT NULL,
            PRIMARY KEY (project, symbol)
        );
        INSERT INTO positions_v2 (project, symbol, qty, last_price, multiplier, updated_at)
            SELECT '', symbol, qty, last_price, multiplier, updated_at FROM positions;
        DROP TABLE positions;
        ALTER TABLE positions_v2 RENAME TO positions;
        """,
    ),
    (
        3,
        """
        ALTER TABLE positions ADD COLUMN read_at REAL;  -- when a position read last set it: fills before are in it
        """,
    ),
)


class SafetyStoreError(UltramaxError):
    """The safety database cannot be opened: it is damaged, or not a file ultramax can read and write."""


class SafetyStore:
    """A thread-safe handle on the safety database."""

    _instances: ClassVar[dict[Path, SafetyStore]] = {}
    _instances_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, path: Path) -> None:
        self.path = path
        self._path_text = str(path)
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._pid = os.getpid()
        self._generation = 0  # bumped per connection: data_version numbers are per connection

    @classmethod
    def for_paths(cls, paths: Paths) -> SafetyStore:
        """The process's store for ``paths`` (one connection per database per process)."""
        home = paths.home
        store = cls._instances.get(home)
        if store is not None and store._pid == os.getpid():
            return store
        with cls._instances_lock:
            store = cls._instances.get(home)
            if store is None or store._pid != os.getpid():
                store = cls._instances[home] = cls(home / "safety.db")
                while len(cls._instances) > MAX_OPEN_STORES:  # one home per process in use; tests make many
                    evicted = cls._instances.pop(next(iter(cls._instances)))
                    if evicted._pid == os.getpid():  # never close a connection inherited across fork()
                        evicted.close()
            return store

    def exists(self) -> bool:
        """Whether the database exists (no layer has anything to read before the first write)."""
        return self._conn is not None or os.access(self._path_text, os.F_OK)

    # -- connection ---------------------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        conn = self._conn
        if conn is not None:
            limit_sqlite_wait(conn, BUSY_TIMEOUT_MS)  # the hook fallback's deadline, if one is set
            return conn
        try:
            private_dir(self.path.parent)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)  # 0600 before SQLite creates -wal/-shm alike
            os.close(fd)
            if self.path.stat().st_mode & 0o077:
                os.chmod(self.path, 0o600)
        except OSError as exc:
            raise SafetyStoreError(
                f"{self.path}: the safety database cannot be opened ({exc.strerror or exc}); "
                "it must be a file you can read and write"
            ) from exc
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False)
        try:
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            limit_sqlite_wait(conn, BUSY_TIMEOUT_MS)
            switch_to_wal(conn, BUSY_TIMEOUT_MS)
            conn.execute("PRAGMA synchronous=NORMAL")
            self._migrate(conn)
        except BaseException as exc:
            conn.close()
            # a lock held by another process stays what it is (the hook's deadline handling reads it); only a
            # file SQLite cannot read as a database gets the way back
            if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError):
                raise SafetyStoreError(
                    f"{self.path}: the safety database is damaged ({exc}); move it aside (mv {self.path} "
                    f"{self.path}.broken) and a new, empty one is made: the exposure ledger, circuit breakers and "
                    "pending confirmations start again from nothing"
                ) from exc
            raise
        self._conn = conn
        self._generation += 1
        return conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            for number, script in _MIGRATIONS:
                if number > version:
                    for statement in _statements(script):
                        conn.execute(statement)
                    conn.execute(f"PRAGMA user_version={number}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    @contextlib.contextmanager
    def write(self, *, durable: bool = False) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE: writers queue on the database lock, never interleave).

        Every commit survives a crash of the process. ``durable`` commits (fills, breaker trips, tokens) are
        also fsynced, so they survive a power loss (~5 ms instead of ~0.5 ms).
        """
        with self._lock:
            conn = self._connect()
            if durable:
                conn.execute("PRAGMA synchronous=FULL")
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            finally:
                if durable:
                    conn.execute("PRAGMA synchronous=NORMAL")

    def query(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return list(self._connect().execute(sql, params).fetchall())

    def data_version(self) -> tuple[int, int]:
        """Changes whenever another connection commits (cheap: lets warm caches notice other writers).

        Commits through this store's own connection do not change it: the writer invalidates its cache.
        """
        with self._lock:
            version = int(self._connect().execute("PRAGMA data_version").fetchone()[0])
            return self._generation, version

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def _statements(script: str) -> Iterator[str]:
    """The script's statements, comments removed first (a comment may hold a semicolon)."""
    code = "\n".join(line.split("--", 1)[0] for line in script.splitlines())
    for part in code.split(";"):
        text = part.strip()
        if text:
            yield text
