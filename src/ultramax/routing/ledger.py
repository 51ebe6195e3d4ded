"""The cost ledger: one row per model request with the usage the upstream reported and what it cost.

Durable in ``ULTRAMAX_HOME/ledger.sqlite3`` (SQLite, WAL). Costs use the catalog's prices for the model
that actually answered; ``requested_cost`` prices the usage at the model the client asked for, so
``requested_cost - cost`` is what routing saved. The usage it prices is what that model would have reported
had the conversation stayed on it (``Router.usage_as_asked``): a switch writes the conversation's prompt cache
anew on the other model, where staying would have read it, so a switch that cost more than it saved shows as
a negative saving instead of a large positive one.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ultramax.deadline import switch_to_wal
from ultramax.errors import ConfigError
from ultramax.fsutil import private_dir
from ultramax.paths import Paths
from ultramax.redact import redact
from ultramax.routing.analyzer import BACKGROUND_REASONS
from ultramax.routing.catalog import Usage

if TYPE_CHECKING:
    from ultramax.routing.router import Router

__all__ = ["Ledger", "LedgerEntry", "ledger_path", "restore_router"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    session TEXT NOT NULL DEFAULT '',
    agent TEXT NOT NULL DEFAULT '',
    requested_model TEXT NOT NULL DEFAULT '',
    model TEXT NOT NULL,
    tier TEXT NOT NULL DEFAULT '',
    input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    cache_write_5m INTEGER NOT NULL DEFAULT 0,
    cache_write_1h INTEGER NOT NULL DEFAULT 0,
    cache_read INTEGER NOT NULL DEFAULT 0,
    cost REAL NOT NULL DEFAULT 0,
    requested_cost REAL NOT NULL DEFAULT 0,
    status INTEGER NOT NULL DEFAULT 0,
    error TEXT NOT NULL DEFAULT '',
    fallback_from TEXT NOT NULL DEFAULT '',
    reason TEXT NOT NULL DEFAULT '',
    ttfb_ms REAL NOT NULL DEFAULT 0,
    duration_ms REAL NOT NULL DEFAULT 0,
    web_search_requests INTEGER NOT NULL DEFAULT 0,
    web_fetch_requests INTEGER NOT NULL DEFAULT 0,
    speed TEXT NOT NULL DEFAULT '',
    inference_geo TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS requests_ts ON requests(ts);
CREATE INDEX IF NOT EXISTS requests_session ON requests(session);
"""

#: Columns added since the first ledgers were written: a ledger without them gets them when it is opened (its
#: older rows read as standard speed, no geography, no server tools -- which is how they were priced).
_ADDED_COLUMNS = (
    ("web_search_requests", "INTEGER NOT NULL DEFAULT 0"),
    ("web_fetch_requests", "INTEGER NOT NULL DEFAULT 0"),
    ("speed", "TEXT NOT NULL DEFAULT ''"),
    ("inference_geo", "TEXT NOT NULL DEFAULT ''"),
)


def _add_columns(db: sqlite3.Connection) -> None:
    have = {row[1] for row in db.execute("PRAGMA table_info(requests)")}
    for name, declaration in _ADDED_COLUMNS:
        if name in have:
            continue
        try:
            db.execute(f"ALTER TABLE requests ADD COLUMN {name} {declaration}")
        except sqlite3.OperationalError as exc:  # another process opening the same ledger added it first
            if "duplicate column" not in str(exc):
                raise


def ledger_path(paths: Paths) -> Path:
    return paths.home / "ledger.sqlite3"


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    model: str
    usage: Usage
    cost: float
    requested_cost: float = 0.0
    requested_model: str = ""
    tier: str = ""
    session: str = ""
    agent: str = ""
    status: int = 200
    error: str = ""
    fallback_from: str = ""
    reason: str = ""
    ttfb_ms: float = 0.0
    duration_ms: float = 0.0
    ts: float = 0.0


class Ledger:
    """Append and query the ledger; safe to share between threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        private_dir(path.parent)
        self._lock = threading.Lock()
        try:
            path.touch(mode=0o600, exist_ok=True)  # what each request cost, per session: the user's alone
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            switch_to_wal(self._db, 5000)  # proxies started together may create the file at once
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            _add_columns(self._db)
        except (sqlite3.DatabaseError, OSError) as exc:
            raise ConfigError(
                f"{path}: the cost ledger cannot be opened ({exc}); if it is damaged, move it aside "
                f"(mv {path} {path}.broken) and the proxy starts a new one (this hour's spend starts at zero)"
            ) from exc
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(OSError):
                Path(f"{path}{suffix}").chmod(0o600)

    @classmethod
    def open(cls, paths: Paths) -> Ledger:
        paths.ensure_home()
        return cls(ledger_path(paths))

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _cursor(self) -> Iterator[sqlite3.Cursor]:
        with self._lock:
            cur = self._db.cursor()
            try:
                yield cur
            finally:
                cur.close()

    def record(self, entry: LedgerEntry) -> None:
        """Append ``entry``. Its texts are redacted here, whoever wrote them: an upstream's error can quote the
        request (a prompt with a key in it, a header), and session and agent ids and the model asked for come
        from the client (a key pasted into ANTHROPIC_MODEL is sent as the model)."""
        u = entry.usage
        with self._cursor() as cur:
            cur.execute(
                "INSERT INTO requests (ts, session, agent, requested_model, model, tier, input_tokens, output_tokens,"
                " cache_write_5m, cache_write_1h, cache_read, cost, requested_cost, status, error, fallback_from,"
                " reason, ttfb_ms, duration_ms, web_search_requests, web_fetch_requests, speed, inference_geo)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    entry.ts or time.time(),
                    redact(entry.session),
                    redact(entry.agent),
                    redact(entry.requested_model),
                    redact(entry.model),
                    entry.tier,
                    u.input_tokens,
                    u.output_tokens,
                    u.cache_write_5m,
                    u.cache_write_1h,
                    u.cache_read,
                    entry.cost,
                    entry.requested_cost,
                    entry.status,
                    redact(entry.error)[:500],  # redacted whole first: a cut could leave a key too short to match
                    redact(entry.fallback_from),
                    redact(entry.reason)[:500],
                    entry.ttfb_ms,
                    entry.duration_ms,
                    u.web_search_requests,
                    u.web_fetch_requests,
                    u.speed,
                    u.inference_geo,
                ),
            )

    def prune(self, older_than: float) -> int:
        """Delete the rows recorded before ``older_than`` (a timestamp); how many were deleted."""
        with self._cursor() as cur:
            cur.execute("DELETE FROM requests WHERE ts < ?", (older_than,))
            return int(cur.rowcount)

    def spent_since(self, since: float) -> list[tuple[float, float]]:
        """(timestamp, cost) of every request since ``since``, oldest first."""
        with self._cursor() as cur:
            rows = cur.execute("SELECT ts, cost FROM requests WHERE ts >= ? ORDER BY ts", (since,)).fetchall()
        return [(float(ts), float(cost)) for ts, cost in rows]

    def totals(self, by: str = "model", *, since: float = 0.0, session: str | None = None) -> list[dict[str, Any]]:
        """Requests, tokens, server tool requests, the requests served in fast mode and in the US (whose tokens
        cost more), cost and saving grouped by ``model``, ``session`` or ``tier``."""
        if by not in ("model", "session", "tier"):
            raise ValueError(f"cannot group by {by!r}")
        where = "ts >= ?"
        args: list[Any] = [since]
        if session is not None:
            where += " AND session = ?"
            args.append(session)
        with self._cursor() as cur:
            rows = cur.execute(
                f"SELECT {by}, COUNT(*), SUM(input_tokens), SUM(output_tokens), SUM(cache_write_5m),"
                f" SUM(cache_write_1h), SUM(cache_read), SUM(web_search_requests), SUM(web_fetch_requests),"
                f" SUM(speed = 'fast'), SUM(inference_geo = 'us'), SUM(cost), SUM(requested_cost) FROM requests"
                f" WHERE {where} GROUP BY {by} ORDER BY SUM(cost) DESC",
                args,
            ).fetchall()
        return [
            {
                by: key,
                "requests": n,
                "input_tokens": i or 0,
                "output_tokens": o or 0,
                "cache_write_5m": w5 or 0,
                "cache_write_1h": w1 or 0,
                "cache_read": cr or 0,
                "web_search_requests": searches or 0,
                "web_fetch_requests": fetches or 0,
                "fast_requests": fast or 0,
                "us_requests": us or 0,
                "cost": round(cost or 0.0, 6),
                "requested_cost": round(rc or 0.0, 6),
                "saved": round((rc or 0.0) - (cost or 0.0), 6),
            }
            for key, n, i, o, w5, w1, cr, searches, fetches, fast, us, cost, rc in rows
        ]

    def entries(self, *, limit: int = 100, session: str | None = None) -> list[dict[str, Any]]:
        """The newest ``limit`` rows, oldest first."""
        query = "SELECT * FROM requests"
        args: list[Any] = []
        if session is not None:
            query += " WHERE session = ?"
            args.append(session)
        query += " ORDER BY id DESC LIMIT ?"
        args.append(limit)
        with self._cursor() as cur:
            cur.execute(query, args)
            names = [d[0] for d in cur.description]
            rows = cur.fetchall()
        return [dict(zip(names, row, strict=True)) for row in reversed(rows)]


def restore_router(router: Router, ledger: Ledger, *, now: float | None = None, rows: int = 5000) -> None:
    """Give a starting proxy's router what the ledger remembers: the last hour's spend (for the budget), what
    each recent session asked for (a resumed session keeps its ceiling), and the recent answers' sizes and
    cache lives (for pricing turns with the prompt cache)."""
    for ts, cost in ledger.spent_since((time.time() if now is None else now) - 3600):
        router.record_spend(cost, ts)
    for row in ledger.entries(limit=rows):
        if any(why in row["reason"] for why in BACKGROUND_REASONS) or not row["requested_model"]:
            continue
        if row["session"]:
            router.remember_session(row["session"], row["requested_model"], row["model"])
        if row["status"] == 200:
            router.record_usage(
                Usage(
                    output_tokens=int(row["output_tokens"]),
                    cache_write_5m=int(row["cache_write_5m"]),
                    cache_write_1h=int(row["cache_write_1h"]),
                )
            )
