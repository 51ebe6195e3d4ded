"""Under a deadline, ultramax's SQLite stores wait for a held lock only as long as the time left, then fail;
their connections get their own busy timeouts back when the deadline ends."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from ultramax.deadline import deadline_in, limit_sqlite_wait, time_left
from ultramax.memory.models import MemoryStoreError
from ultramax.memory.store import SQLiteStore
from ultramax.safety.store import BUSY_TIMEOUT_MS, SafetyStore


@contextmanager
def write_lock_held(database: Path) -> Iterator[None]:
    """Another connection holds the database's write lock (SQLite's own lock on the real file)."""
    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()


@dataclass(frozen=True)
class Opened:
    """A store on a real file: a write through it, its connection's busy timeout now, and its own."""

    database: Path
    write: Callable[[], object]
    busy: Callable[[], int]
    own_busy_ms: int
    close: Callable[[], None]


def open_memory(tmp_path: Path) -> Opened:
    store = SQLiteStore(tmp_path / "memory.db")
    store.ensure_project("acme")

    def busy() -> int:
        return int(store._conn().execute("PRAGMA busy_timeout").fetchone()[0])

    return Opened(store.path, lambda: store.set_capture("acme", False), busy, store.busy_timeout_ms, store.close)


def open_safety(tmp_path: Path) -> Opened:
    store = SafetyStore(tmp_path / "safety.db")

    def write() -> None:
        with store.write() as conn:
            conn.execute("INSERT INTO judgements (digest, tool, session, params, judged_at) VALUES ('d','t','s','',0)")

    def busy() -> int:
        return int(store.query("PRAGMA busy_timeout")[0][0])

    busy()  # open it (and make its tables) before the lock is taken
    return Opened(store.path, write, busy, BUSY_TIMEOUT_MS, store.close)


STORES = pytest.mark.parametrize("open_store", [open_memory, open_safety], ids=["memory", "safety"])
LOCKED = (sqlite3.OperationalError, MemoryStoreError)  # the memory store names the file and what to do


@STORES
def test_a_write_behind_a_held_lock_fails_when_the_deadline_comes_not_after_the_busy_timeout(
    tmp_path: Path, open_store: Callable[[Path], Opened]
) -> None:
    store = open_store(tmp_path)
    try:
        assert store.busy() == store.own_busy_ms == 10_000  # on their own, both stores queue 10 s for the lock
        with write_lock_held(store.database), deadline_in(0.3):
            started = time.monotonic()
            with pytest.raises(LOCKED, match="locked"):
                store.write()
            waited = time.monotonic() - started
        assert 0.2 <= waited < 1.5, f"waited {waited:.2f} s for a 0.3 s deadline"
        assert store.busy() == store.own_busy_ms  # given back when the deadline ended
        store.write()  # and the lock, once free, is taken as before
    finally:
        store.close()


@STORES
def test_past_the_deadline_a_held_lock_fails_at_once(tmp_path: Path, open_store: Callable[[Path], Opened]) -> None:
    store = open_store(tmp_path)
    try:
        with write_lock_held(store.database), deadline_in(0):
            assert store.busy() == 0
            started = time.monotonic()
            with pytest.raises(LOCKED, match="locked"):
                store.write()
            assert time.monotonic() - started < 0.2
    finally:
        store.close()


def test_without_a_deadline_a_connection_is_left_as_it_is(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "x.db", timeout=7)
    try:
        assert time_left() is None
        limit_sqlite_wait(conn, 7000)
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 7000
    finally:
        conn.close()


def test_a_nested_deadline_never_extends_the_outer_one_and_ends_with_its_block() -> None:
    with deadline_in(0.5):
        with deadline_in(60):
            left = time_left()
            assert left is not None and left <= 0.5
        with deadline_in(0.1):
            left = time_left()
            assert left is not None and left <= 0.1
        left = time_left()
        assert left is not None and 0.1 < left <= 0.5
    assert time_left() is None


def test_a_connection_closed_under_the_deadline_is_no_trouble_when_it_ends(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "x.db")
    with deadline_in(5):
        limit_sqlite_wait(conn, 5000)
        assert 0 < conn.execute("PRAGMA busy_timeout").fetchone()[0] <= 5000
        conn.close()
    assert time_left() is None
