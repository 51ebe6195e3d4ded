"""Layer 9 (circuit breaker), 15 (execution isolation: paper only) and 16 (post-execution verification)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from tests.trading.conftest import CRYPTO, OPEN, STOCK, Desk, crypto, guard_layers, order_response, paper_mcp, stock
from ultramax.safety.engine import SafetyEngine
from ultramax.safety.store import SafetyStore
from ultramax.safety.trading import breakers_for

CANCEL = "mcp__alpaca__cancel_order_by_id"


def fail_order(desk: Desk, n: int, **kw: object) -> None:
    for _ in range(n):
        desk.call(CRYPTO, crypto(), phase="post", error="Error: 403 insufficient buying power", **kw)


def test_three_failed_calls_open_the_breaker_and_new_orders_are_refused_while_cancels_and_reads_run(
    desk: Desk,
) -> None:
    fail_order(desk, 2)
    assert desk.call(CRYPTO, crypto()).permission == "allow"
    fail_order(desk, 1)
    denied = desk.call(CRYPTO, crypto())
    assert (denied.permission, denied.layer, denied.rule) == ("deny", "circuit_breaker", "circuit_breaker.open")
    assert "insufficient buying power" in denied.reason
    assert desk.call(CANCEL, {"order_id": "o-1"}).permission == "allow"
    assert desk.call("mcp__alpaca__get_orders", {"status": "open"}).permission == "allow"


def test_an_error_in_a_successful_response_counts_as_a_failure_and_a_success_restarts_the_count(desk: Desk) -> None:
    error = json.dumps({"code": 40310000, "message": "insufficient buying power"})
    for _ in range(2):
        desk.fill(CRYPTO, crypto(), error)
    desk.execute(CRYPTO, crypto(qty="0.001"), order_response("BTC/USD", "buy", "0.001", "60000"))
    for _ in range(2):
        desk.fill(CRYPTO, crypto(), error)
    assert desk.call(CRYPTO, crypto(qty="0.002")).permission == "allow"


def test_the_breaker_is_durable_so_a_fresh_process_sees_it_open(desk: Desk) -> None:
    fail_order(desk, 3)
    SafetyStore.for_paths(desk.umx.paths).close()
    fresh = SafetyEngine(guard_layers())  # what an in-process hook builds when no daemon answers
    decision = fresh.evaluate(desk.request(CRYPTO, crypto()))
    assert decision.rule == "circuit_breaker.open"


def test_after_the_cooldown_one_call_probes_and_a_success_closes_the_breaker(desk: Desk) -> None:
    fail_order(desk, 3)
    later = OPEN + timedelta(seconds=901)
    assert desk.call(CRYPTO, crypto(), now=later).permission == "allow"
    desk.fill(CRYPTO, crypto(), order_response("BTC/USD", "buy", "0.01", "60000"), now=later)
    state = breakers_for(desk.umx.paths).get("mcp:alpaca")
    assert state is not None and state.opened_at is None and state.failures == 0


def test_a_cancel_during_the_cooldown_runs_but_does_not_close_the_breaker(desk: Desk) -> None:
    fail_order(desk, 3)
    during = OPEN + timedelta(seconds=60)
    cancel_ok = json.dumps({"data": {"id": "o-1", "status": 204}})
    assert desk.call(CANCEL, {"order_id": "o-1"}, now=during).permission == "allow"
    desk.fill(CANCEL, {"order_id": "o-1"}, cancel_ok, now=during)
    desk.fill("mcp__alpaca__close_all_positions", {}, json.dumps({"data": []}), now=during)
    denied = desk.call(CRYPTO, crypto(), now=during + timedelta(seconds=1))
    assert (denied.permission, denied.rule) == ("deny", "circuit_breaker.open")
    assert "insufficient buying power" in denied.reason


def test_a_failed_probe_reopens_at_once(desk: Desk) -> None:
    fail_order(desk, 3)
    later = OPEN + timedelta(seconds=901)
    fail_order(desk, 1, now=later)
    assert desk.call(CRYPTO, crypto(), now=later + timedelta(seconds=1)).rule == "circuit_breaker.open"


def test_an_order_that_timed_out_trips_the_breaker_until_it_is_reconciled(desk: Desk) -> None:
    timeout = json.dumps({"error": {"message": "Request timed out; the order MAY have been placed", "timeout": True}})
    desk.fill(STOCK, stock(), timeout)
    decision = desk.call(STOCK, stock(client_order_id="next"))
    assert decision.rule == "circuit_breaker.open"
    assert "unknown_order_state" in decision.reason and "MAY have been placed" in decision.reason


def test_an_order_call_that_timed_out_in_the_client_trips_the_breaker_too(desk: Desk) -> None:
    desk.call(STOCK, stock(), phase="post", error="MCP error -32001: Request timed out")
    decision = desk.call(STOCK, stock(client_order_id="next"))
    assert (decision.permission, decision.rule) == ("deny", "circuit_breaker.open")
    assert "unknown_order_state" in decision.reason and "MAY have been placed" in decision.reason


def test_an_open_breaker_outside_trading_mode_asks_for_non_order_writes(desk: Desk) -> None:
    for _ in range(3):
        desk.call("mcp__alpaca__create_watchlist", {"name": "x"}, phase="post", error="boom", mode="development")
    decision = desk.call("mcp__alpaca__create_watchlist", {"name": "x"}, mode="development")
    assert (decision.permission, decision.rule) == ("ask", "circuit_breaker.open")


# -- execution isolation ------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["true", "1", "yes", "TRUE", "Yes"])
def test_values_the_alpaca_server_reads_as_paper_pass(desk: Desk, value: str) -> None:
    paper_mcp(desk.project, value)
    assert desk.call(CRYPTO, crypto()).permission == "allow"


@pytest.mark.parametrize("value", ["false", "on", " true", "true ", "paper", "0", ""])
def test_any_other_value_of_alpaca_paper_trade_is_live_and_refused(desk: Desk, value: str) -> None:
    paper_mcp(desk.project, value)
    decision = desk.call(CRYPTO, crypto())
    assert (decision.permission, decision.layer, decision.rule) == (
        "deny",
        "execution_isolation",
        "isolation.live_endpoint",
    )
    assert "LIVE" in decision.reason


def test_an_unset_or_indirect_paper_flag_is_refused_because_it_cannot_be_proven(desk: Desk) -> None:
    paper_mcp(desk.project, None)
    assert desk.call(CRYPTO, crypto()).rule == "isolation.paper_unset"
    paper_mcp(desk.project, "${ALPACA_PAPER_TRADE}")
    assert desk.call(CRYPTO, crypto()).rule == "isolation.paper_unproven"
    assert desk.call("mcp__alpaca__get_account_info", {}).permission == "allow"  # reads are not orders


def test_claude_codes_local_scope_wins_over_the_project_file(desk: Desk) -> None:
    local = {
        "projects": {
            str(desk.project): {"mcpServers": {"alpaca": {"command": "x", "env": {"ALPACA_PAPER_TRADE": "false"}}}}
        }
    }
    (desk.umx.home / ".claude.json").write_text(json.dumps(local), encoding="utf-8")
    assert desk.call(CRYPTO, crypto()).rule == "isolation.live_endpoint"


def test_a_server_configured_nowhere_follows_the_failure_policy(desk: Desk) -> None:
    (desk.project / ".mcp.json").unlink()
    assert desk.call(CRYPTO, crypto()).rule == "isolation.server_unknown"
    assert desk.call(CRYPTO, crypto(), mode="development").permission == "ask"


def test_the_gateway_passes_the_environment_it_launches_the_server_with(desk: Desk) -> None:
    (desk.project / ".mcp.json").unlink()
    ok = desk.call(CRYPTO, crypto(), metadata={"mcp_server_env": {"ALPACA_PAPER_TRADE": "true"}})
    assert ok.permission == "allow"
    live = desk.call(CRYPTO, crypto(), metadata={"mcp_server_env": {"ALPACA_PAPER_TRADE": "no"}})
    assert live.rule == "isolation.live_endpoint"


def test_live_trading_chosen_in_settings_is_allowed_but_every_live_order_is_confirmed(desk: Desk) -> None:
    paper_mcp(desk.project, "false")
    desk.set(tradingMode="live")
    decision = desk.call(CRYPTO, crypto())
    assert (decision.permission, decision.rule) == ("ask", "confirm.required")
    assert decision.reason.startswith("live order")


@pytest.mark.parametrize(
    ("command", "rule"),
    [
        ("curl -X POST https://api.alpaca.markets/v2/orders -d @order.json", "isolation.live_shell"),
        ("ALPACA_PAPER_TRADE=false uvx alpaca-mcp-server", "isolation.live_shell"),
        ("export ALPACA_PAPER_TRADE='on'", "isolation.live_shell"),
    ],
)
def test_shell_commands_that_reach_live_trading_are_refused_in_trading_mode(
    desk: Desk, command: str, rule: str
) -> None:
    decision = desk.call("Bash", {"command": command})
    assert (decision.permission, decision.rule) == ("deny", rule)


def test_paper_and_data_endpoints_and_ordinary_shell_work_pass(desk: Desk) -> None:
    for command in (
        "curl https://paper-api.alpaca.markets/v2/account",
        "curl https://data.alpaca.markets/v2/stocks/AAPL/quotes/latest",
        "ALPACA_PAPER_TRADE=true pytest -q",
        "pytest -q tests/",
    ):
        assert desk.call("Bash", {"command": command}).permission == "allow", command


def test_leaving_the_sandbox_is_put_to_the_user_in_trading_mode(desk: Desk) -> None:
    decision = desk.call("Bash", {"command": "make deploy", "dangerouslyDisableSandbox": True})
    assert (decision.permission, decision.rule) == ("ask", "isolation.unsandboxed")
    assert (
        desk.call("Bash", {"command": "make deploy", "dangerouslyDisableSandbox": True}, mode="development").permission
        == "allow"
    )


# -- post-execution verification ----------------------------------------------------------------------------
def test_a_fill_worse_than_the_approved_limit_trips_the_breaker(desk: Desk) -> None:
    order = stock(qty="1", price="190")
    assert desk.call(STOCK, order).permission == "allow"
    bad = desk.fill(STOCK, order, order_response("AAPL", "buy", "1", "195.00"))
    assert (bad.permission, bad.layer, bad.rule) == ("deny", "post_verification", "post_verification.mismatch")
    assert "bought at 195.00, above the limit 190" in bad.reason
    assert desk.call(STOCK, stock(qty="1", price="180")).rule == "circuit_breaker.open"


def test_a_fill_of_something_else_than_approved_is_a_mismatch(desk: Desk) -> None:
    order = stock(qty="1", price="190")
    desk.call(STOCK, order)
    decision = desk.fill(STOCK, order, order_response("MSFT", "sell", "5", "410"))
    assert decision.rule == "post_verification.mismatch"
    for part in ("symbol MSFT", "side sell", "quantity 5"):
        assert part in decision.reason


def test_an_order_that_ran_without_a_pre_trade_judgement_is_a_mismatch(desk: Desk) -> None:
    decision = desk.fill(CRYPTO, crypto(), order_response("BTC/USD", "buy", "0.01", "60000"))
    assert decision.rule == "post_verification.mismatch"
    assert "without a pre-trade judgement" in decision.reason


def test_a_matching_fill_passes_verification(desk: Desk) -> None:
    assert desk.execute(CRYPTO, crypto(), order_response("BTC/USD", "buy", "0.01", "59950")).permission == "allow"
    assert breakers_for(desk.umx.paths).get("mcp:alpaca") is None


def test_a_write_that_lands_elsewhere_than_approved_pauses_file_writes(desk: Desk) -> None:
    target = desk.project / "src" / "a.py"
    edit = {"file_path": str(target), "content": "x = 1\n"}
    fine = desk.call("Write", edit, phase="post", response={"type": "create", "filePath": str(target)})
    assert fine.permission == "allow"
    moved = desk.call("Write", edit, phase="post", response={"type": "create", "filePath": "/etc/cron.d/a"})
    assert (moved.permission, moved.rule) == ("deny", "post_verification.file_mismatch")
    paused = desk.call("Write", edit, mode="development")
    assert (paused.permission, paused.rule) == ("ask", "circuit_breaker.open")


def test_the_stored_reason_of_a_paused_write_does_not_keep_a_secret_in_a_file_name(desk: Desk) -> None:
    key = "sk-ant-api03-" + "Zq8mN3vR7tYw2KpL5xHc9Jd4"  # assembled: no scanner mistakes this file for a leak
    target = desk.project / "src" / "a.py"
    edit = {"file_path": str(target), "content": "x = 1\n"}
    desk.call("Write", edit, phase="post", response={"type": "create", "filePath": f"/tmp/backup_{key}.py"})
    state = breakers_for(desk.umx.paths).get("files")
    assert state is not None and state.opened_at is not None
    assert state.reason is not None and key not in state.reason
    assert "/tmp/backup_[REDACTED:anthropic-key].py" in state.reason


def test_a_write_inside_the_project_that_a_symlink_sends_outside_is_a_mismatch(desk: Desk) -> None:
    outside = desk.umx.root / "elsewhere"
    outside.mkdir()
    (desk.project / "link").symlink_to(outside)
    target = desk.project / "link" / "f.txt"
    decision = desk.call(
        "Write", {"file_path": str(target), "content": "x"}, phase="post", response={"filePath": str(target)}
    )
    assert decision.rule == "post_verification.file_mismatch"
    assert "through a symlink" in decision.reason


def test_calls_the_user_interrupted_are_not_failures_of_the_server(desk: Desk) -> None:
    for n in range(3):
        order = crypto(client_order_id=f"i-{n}")
        desk.call(CRYPTO, order, phase="post", error="[Request interrupted by user for tool use]")
    assert desk.call(CRYPTO, crypto(client_order_id="after")).permission == "allow"
