"""The cost ledger is durable and answers per session and per model."""

from __future__ import annotations

import time

from tests.conftest import UltramaxEnv
from ultramax.routing import Ledger, LedgerEntry, Usage
from ultramax.routing.ledger import ledger_path


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
