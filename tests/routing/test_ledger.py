"""The cost ledger is durable and answers per session and per model."""

from __future__ import annotations

import sqlite3
import time

import pytest

from tests.conftest import UltramaxEnv
from ultramax.errors import ConfigError
from ultramax.routing import Ledger, LedgerEntry, Router, RouterConfig, Usage, load_catalog
from ultramax.routing.ledger import ledger_path, restore_router


def test_the_ledger_survives_reopening_and_groups_by_session_and_model(umx: UltramaxEnv) -> None:
    usage = Usage(input_tokens=100, output_tokens=50, cache_write_5m=10, cache_write_1h=5, cache_read=1000)
    with Ledger.open(umx.paths) as ledger:
        ledger.record(LedgerEntry("claude-haiku-4-5", usage, 0.001, 0.005, "claude-opus-5", "haiku", session="a"))
        ledger.record(LedgerEntry("claude-opus-5", usage, 0.005, 0.005, "claude-opus-5", "opus", session="a"))
        ledger.record(LedgerEntry("claude-haiku-4-5", usage, 0.001, 0.005, "claude-opus-5", "haiku", session="b"))
    assert ledger_path(umx.paths).is_file()
    with Ledger.open(umx.paths) as again:
        by_session = {row["session"]: row for row in again.totals("session")}
        by_model = {row["model"]: row for row in again.totals("model")}
        assert by_session["a"]["requests"] == 2 and by_session["a"]["cost"] == 0.006
        assert by_session["a"]["saved"] == 0.004 and by_session["a"]["cache_read"] == 2000
        assert by_model["claude-haiku-4-5"]["requests"] == 2
        assert [cost for _, cost in again.spent_since(time.time() - 60)] == [0.001, 0.005, 0.001]
        assert [row["session"] for row in again.entries(limit=2)] == ["a", "b"]


def test_a_restarted_proxys_router_takes_the_spend_ceilings_and_answer_sizes_the_ledger_remembers(
    umx: UltramaxEnv,
) -> None:
    answer = Usage(input_tokens=10, output_tokens=3_000, cache_write_1h=20_000, cache_read=40_000)
    with Ledger.open(umx.paths) as ledger:
        for _ in range(12):
            ledger.record(LedgerEntry("claude-sonnet-5", answer, 0.25, 0.5, "claude-opus-5", "sonnet", session="s-1"))
        title = Usage(input_tokens=10, output_tokens=9)  # a background title: not an answer of the conversation
        aside = "no tools: an auxiliary request (title, summary, classifier or hook prompt)"
        haiku = "claude-haiku-4-5"
        ledger.record(LedgerEntry(haiku, title, 0.001, 0.001, haiku, "haiku", session="s-1", reason=aside))
        router = Router(load_catalog(), RouterConfig(budget_per_hour=10))
        before = router.output_per_request
        restore_router(router, ledger)
    assert router.hourly_spend() == pytest.approx(12 * 0.25 + 0.001)
    assert before < router.output_per_request < 3_000 and router.cache_ttl == 3600  # one-hour writes, learned
    resumed = router.route(
        {"model": "claude-sonnet-5", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}], "tools": [{}]},
        {"x-claude-code-session-id": "s-1"},
    )
    assert any("ceiling stays claude-opus-5" in why for why in resumed.reasons)


def test_the_ledger_is_private_and_a_damaged_one_is_a_clear_error_naming_it(umx: UltramaxEnv) -> None:
    with Ledger.open(umx.paths) as ledger:
        ledger.record(LedgerEntry(model="claude-haiku-4-5", usage=Usage(input_tokens=10), cost=0.00001))
    path = ledger_path(umx.paths)
    assert path.stat().st_mode & 0o777 == 0o600
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(ConfigError, match=r"cost ledger cannot be opened .*move it aside"):
        Ledger.open(umx.paths)


def test_rows_older_than_the_retention_are_pruned_and_newer_ones_kept(umx: UltramaxEnv) -> None:
    now = time.time()
    with Ledger.open(umx.paths) as ledger:
        for age_days in (200, 100, 10, 0):
            ts = now - age_days * 86400
            ledger.record(LedgerEntry(model="claude-haiku-4-5", usage=Usage(input_tokens=10), cost=0.001, ts=ts))
        assert ledger.prune(now - 90 * 86400) == 2
        assert len(ledger.entries()) == 2
        assert ledger.prune(now - 90 * 86400) == 0


def test_a_ledger_written_before_speed_geography_and_server_tools_were_recorded_gains_them_and_keeps_its_rows(
    umx: UltramaxEnv,
) -> None:
    path = ledger_path(umx.paths)
    umx.paths.ensure_home()
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE requests (id INTEGER PRIMARY KEY, ts REAL NOT NULL, session TEXT NOT NULL DEFAULT '',"
        " agent TEXT NOT NULL DEFAULT '', requested_model TEXT NOT NULL DEFAULT '', model TEXT NOT NULL,"
        " tier TEXT NOT NULL DEFAULT '', input_tokens INTEGER NOT NULL DEFAULT 0,"
        " output_tokens INTEGER NOT NULL DEFAULT 0, cache_write_5m INTEGER NOT NULL DEFAULT 0,"
        " cache_write_1h INTEGER NOT NULL DEFAULT 0, cache_read INTEGER NOT NULL DEFAULT 0,"
        " cost REAL NOT NULL DEFAULT 0, requested_cost REAL NOT NULL DEFAULT 0, status INTEGER NOT NULL DEFAULT 0,"
        " error TEXT NOT NULL DEFAULT '', fallback_from TEXT NOT NULL DEFAULT '', reason TEXT NOT NULL DEFAULT '',"
        " ttfb_ms REAL NOT NULL DEFAULT 0, duration_ms REAL NOT NULL DEFAULT 0);"
        f" INSERT INTO requests (ts, model, input_tokens, cost) VALUES ({time.time()}, 'claude-opus-5', 10, 0.5);"
    )
    old.close()
    searched = Usage(input_tokens=10, web_search_requests=4, web_fetch_requests=1, speed="fast", inference_geo="us")
    with Ledger.open(umx.paths) as ledger:
        ledger.record(LedgerEntry("claude-opus-5", searched, 0.75))
        first, second = ledger.entries()
        assert (first["speed"], first["inference_geo"], first["web_search_requests"]) == ("", "", 0)
        assert (second["speed"], second["inference_geo"], second["web_search_requests"]) == ("fast", "us", 4)
        [total] = ledger.totals("model")
    assert (total["requests"], total["cost"], total["web_search_requests"], total["web_fetch_requests"]) == (
        2,
        1.25,
        4,
        1,
    )
    assert (total["fast_requests"], total["us_requests"]) == (1, 1)
    with Ledger.open(umx.paths) as again:  # opening it again adds nothing twice
        assert len(again.entries()) == 2
