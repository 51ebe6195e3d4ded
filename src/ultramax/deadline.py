"""A deadline for the work of one process, for the waits a signal cannot cut short: SQLite's lock waits.

The hook client's in-process fallback bounds its run with SIGALRM, which stops Python code and blocked system
calls. It does not stop SQLite waiting for a lock another process holds: that wait (the connection's busy
timeout, up to 10 s in ultramax's stores) loops inside C, and the signal's Python handler runs only once it is
over. Neither ``Connection.interrupt()`` nor a progress handler ends it either: both are checked between
SQLite's VM steps, not in its busy loop (measured with SQLite 3.40: each waited the whole busy timeout).

So the fallback sets a deadline here, and every SQLite store on its path caps its connection's busy timeout at
the time left whenever it is about to use the connection (``limit_sqlite_wait``): a lock that is not free in
time makes the store fail with SQLite's "database is locked" before the deadline, which the pipeline handles
like any other stage failure. When the deadline ends, the connections get their own busy timeouts back.

Without a deadline (the daemon, the CLI) ``limit_sqlite_wait`` does nothing. The deadline is the process's,
set and read by the thread that does the bounded work.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator

__all__ = ["deadline_in", "limit_sqlite_wait", "switch_to_wal", "time_left"]

_end: float | None = None  # time.monotonic() by which the work must be done
_capped: dict[int, tuple[sqlite3.Connection, int]] = {}  # connections given a shorter busy timeout, and their own


@contextlib.contextmanager
def deadline_in(seconds: float) -> Iterator[None]:
    """Work inside the block must end within ``seconds``; a nested deadline never extends an outer one."""
    global _end
    outer = _end
    end = time.monotonic() + max(0.0, seconds)
    _end = end if outer is None else min(outer, end)
    try:
        yield
    finally:
        _end = outer
        if outer is None:
            _restore()


def time_left() -> float | None:
    """Seconds left before the deadline (0 once it has passed), or None when no deadline is set."""
    end = _end
    return None if end is None else max(0.0, end - time.monotonic())


def limit_sqlite_wait(conn: sqlite3.Connection, busy_timeout_ms: int) -> None:
    """Cap ``conn``'s busy timeout (its own: ``busy_timeout_ms``) at the time left before the deadline.

    Call it before using the connection; with no deadline set it costs one comparison. Past the deadline the
    cap is 0: a lock that is not free at once fails the statement ("database is locked") instead of waiting.
    """
    left = time_left()
    if left is None:
        return
    _capped.setdefault(id(conn), (conn, busy_timeout_ms))
    conn.execute(f"PRAGMA busy_timeout = {min(busy_timeout_ms, int(left * 1000))}")


def _restore() -> None:
    while _capped:
        _key, (conn, busy_timeout_ms) = _capped.popitem()
        with contextlib.suppress(sqlite3.Error):  # closed meanwhile: nothing to give back
            conn.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")


def switch_to_wal(conn: sqlite3.Connection, busy_timeout_ms: int) -> str:
    """Put ``conn``'s database in WAL mode, waiting for the lock like a writer (up to ``busy_timeout_ms``, less
    under a deadline); returns the journal mode it ends in. Processes that create the file at once race for
    the switch, which needs the exclusive lock, and SQLite answers "locked" at once, without its busy handler,
    to a connection that would deadlock waiting for it -- so the wait is here."""
    left = time_left()
    until = time.monotonic() + min(busy_timeout_ms / 1000, left if left is not None else float("inf"))
    while True:
        try:
            mode = str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower()
            if mode != "wal":
                mode = str(conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]).lower()
            return mode
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > until:
                raise
            time.sleep(0.01)
