"""Layers 1, 2, 3, 5 and 6: input validation, authentication, rate limits, permissions, risk assessment."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.trading.conftest import CRYPTO, OPEN, STOCK, Desk, crypto
from ultramax.safety.engine import SafetyEngine
from ultramax.safety.layers_core import RateLimitLayer
from ultramax.safety.store import SafetyStore


def test_a_malformed_tool_name_is_denied_by_input_validation(desk: Desk) -> None:
    decision = desk.call("Bash; rm -rf /", {"command": "ls"})
    assert (decision.permission, decision.rule) == ("deny", "input.tool_name")


def test_an_oversized_input_is_asked_about_in_development_and_denied_in_trading(desk: Desk) -> None:
    desk.set(maxInputBytes=2048)
    big = {"command": "echo " + "x" * 5000}
    lenient = desk.call("Bash", big, mode="development")
    strict = desk.call("Bash", big, mode="alphaforge")
    assert (lenient.permission, lenient.rule, lenient.layer) == ("ask", "input.too_large", "input_validation")
    assert (strict.permission, strict.rule) == ("deny", "input.too_large")
    assert "failure policy: deny" in strict.reason


def test_input_nested_absurdly_deep_follows_the_failure_policy(desk: Desk) -> None:
    value: dict[str, object] = {}
    for _ in range(100):
        value = {"x": value}
    decision = desk.call("mcp__notes__save", value, mode="development")
    assert (decision.permission, decision.rule) == ("ask", "input.shape")


@pytest.mark.parametrize(
    ("tool", "data", "problem"),
    [
        ("Bash", {"command": ["rm", "-rf", "/"]}, "command is list, not text"),
        ("Bash", {"description": "clean up"}, "no command to check"),
        ("Write", {"file_path": 5, "content": "x"}, "file_path is int, not text"),
        ("Edit", {"file_path": "a.py", "old_string": "x", "new_string": {"$": 1}}, "new_string is dict, not text"),
        ("Read", {"file_path": True}, "file_path is a boolean, not text"),
    ],
)
def test_a_field_the_gate_reads_as_text_that_is_not_text_follows_the_failure_policy(
    desk: Desk, tool: str, data: dict[str, object], problem: str
) -> None:
    lenient = desk.call(tool, data, mode="development")
    strict = desk.call(tool, data, mode="alphaforge")
    assert (lenient.permission, lenient.rule, lenient.layer) == ("ask", "input.field_type", "input_validation")
    assert (strict.permission, strict.rule) == ("deny", "input.field_type")
    assert f"{tool} input: {problem}" in lenient.reason


def test_an_optional_text_field_left_null_is_not_a_problem(desk: Desk) -> None:
    assert desk.call("Glob", {"pattern": "*.py", "path": None}, mode="development").permission == "allow"


def test_an_invalid_order_is_denied_in_every_mode_with_the_problem_named(desk: Desk) -> None:
    decision = desk.call(CRYPTO, crypto(qty="NaN"), mode="development")
    assert (decision.permission, decision.rule) == ("deny", "input.order_invalid")
    assert "not a finite number" in decision.reason


def test_the_configured_principal_is_enforced_by_authentication(desk: Desk) -> None:
    desk.settings.values["ultramax.requireUser"] = "alice"
    assert desk.call("Read", {"file_path": "/tmp/x"}, principal="alice").permission == "allow"
    denied = desk.call("Read", {"file_path": "/tmp/x"}, principal="mallory")
    assert (denied.permission, denied.rule, denied.layer) == ("deny", "auth.require_user", "authentication")
    assert "'mallory'" in denied.reason


def test_require_user_denies_a_call_without_a_principal_and_trading_writes_always_need_one(desk: Desk) -> None:
    assert desk.call("Read", {"file_path": "/tmp/x"}, principal=None).permission == "allow"
    order = desk.call(CRYPTO, crypto(), principal=None)
    assert (order.permission, order.rule) == ("deny", "auth.principal_required")
    desk.set(requireUser=True)
    read = desk.call("Read", {"file_path": "/tmp/x"}, principal=None)
    assert (read.permission, read.rule) == ("deny", "auth.principal_required")


def test_the_session_bucket_refills_with_time_and_other_sessions_are_not_affected(desk: Desk) -> None:
    now = [1000.0]
    engine = SafetyEngine([RateLimitLayer(clock=lambda: now[0])])
    desk.set(sessionCallsPerMinute=3)

    def call(session: str) -> str:
        return engine.evaluate(desk.request("Bash", {"command": "true"}, session=session)).permission

    assert [call("a") for _ in range(4)] == ["allow", "allow", "allow", "deny"]
    assert call("b") == "allow"
    now[0] += 20.0  # one token back (3 a minute)
    assert [call("a"), call("a")] == ["allow", "deny"]


def test_each_mcp_operation_has_its_own_bucket_per_session(desk: Desk) -> None:
    engine = SafetyEngine([RateLimitLayer(clock=lambda: 0.0)])
    desk.set(operationCallsPerMinute=2)
    quote = "mcp__alpaca__get_stock_latest_quote"
    results = [engine.evaluate(desk.request(quote, {"symbol_or_symbols": "AAPL"})) for _ in range(3)]
    assert [r.permission for r in results] == ["allow", "allow", "deny"]
    assert results[-1].rule == "rate_limit.operation"
    assert engine.evaluate(desk.request("mcp__alpaca__get_account_info", {})).permission == "allow"


def test_order_buckets_are_on_disk_so_a_restart_does_not_refill_them(desk: Desk) -> None:
    desk.set(orderRatePerMinute=2, orderRatePerDay=100)
    first = SafetyEngine([RateLimitLayer()])
    assert [first.evaluate(desk.request(CRYPTO, crypto())).permission for _ in range(2)] == ["allow", "allow"]
    SafetyStore.for_paths(desk.umx.paths).close()  # the daemon went away; an in-process hook starts afresh
    restarted = SafetyEngine([RateLimitLayer()])
    decision = restarted.evaluate(desk.request(CRYPTO, crypto()))
    assert (decision.permission, decision.rule) == ("deny", "rate_limit.orders_per_minute")
    assert "orderRatePerMinute" in decision.reason
    later = restarted.evaluate(desk.request(CRYPTO, crypto(), now=OPEN + timedelta(seconds=31)))
    assert later.permission == "allow"


def test_the_daily_order_limit_counts_across_sessions(desk: Desk) -> None:
    desk.set(orderRatePerMinute=0, orderRatePerDay=3)
    engine = SafetyEngine([RateLimitLayer()])
    decisions = [
        engine.evaluate(desk.request(STOCK, {"symbol": "AAPL", "side": "buy", "qty": "1"}, session=f"s{i}"))
        for i in range(4)
    ]
    assert [d.permission for d in decisions] == ["allow", "allow", "allow", "deny"]
    assert decisions[-1].rule == "rate_limit.orders_per_day"


def test_update_account_config_is_denied_in_every_mode(desk: Desk) -> None:
    for mode in ("development", "alphaforge", "state-of-witness"):
        decision = desk.call("mcp__alpaca__update_account_config", {"suspend_trade": False}, mode=mode)
        assert (decision.permission, decision.rule, decision.layer) == (
            "deny",
            "permission.privileged_tool",
            "permission",
        )


def test_an_unlisted_tool_of_the_trading_server_is_denied_in_trading_and_asked_about_elsewhere(desk: Desk) -> None:
    strict = desk.call("mcp__alpaca__transfer_funds", {"amount": "100"})
    assert (strict.permission, strict.rule) == ("deny", "permission.unlisted_trading_tool")
    lenient = desk.call("mcp__alpaca__transfer_funds", {"amount": "100"}, mode="development")
    assert (lenient.permission, lenient.rule, lenient.layer) == ("ask", "risk.critical", "risk_assessment")
    assert "ref c-" in lenient.reason


def test_creative_mode_blocks_trading_operations_but_not_market_data(desk: Desk) -> None:
    denied = desk.call(CRYPTO, crypto(), mode="state-of-witness")
    assert (denied.permission, denied.rule) == ("deny", "permission.mode_blocked")
    assert "trading_operation" in denied.reason or "financial_transaction" in denied.reason
    assert desk.call("mcp__alpaca__get_account_info", {}, mode="state-of-witness").permission == "allow"


def test_per_user_permissions_allow_listed_operations_only(desk: Desk) -> None:
    desk.set(userPermissions={"analyst": ["Read", "mcp__alpaca__get_*"], "trader": ["*"]})
    assert desk.call("mcp__alpaca__get_orders", {}, principal="analyst").permission == "allow"
    denied = desk.call(CRYPTO, crypto(), principal="analyst")
    assert (denied.permission, denied.rule) == ("deny", "permission.user_not_allowed")
    stranger = desk.call("Read", {"file_path": "/x"}, principal="stranger")
    assert (stranger.permission, stranger.rule) == ("deny", "permission.user_unknown")
    assert desk.call(CRYPTO, crypto(), principal="trader").permission == "allow"


def test_liquidating_everything_is_put_to_the_user_and_adds_risk(desk: Desk) -> None:
    decision = desk.call("mcp__alpaca__close_all_positions", {"cancel_orders": True})
    assert (decision.permission, decision.rule) == ("ask", "risk.critical")
    assert "liquidates every position" in decision.reason
    assert decision.risk > 0


@pytest.mark.parametrize(
    ("tool", "expect"),
    [
        ("mcp__alpaca__close_position", "ask"),
        ("mcp__alpaca__cancel_all_orders", "ask"),
        ("mcp__alpaca__cancel_order_by_id", "allow"),
        ("mcp__alpaca__get_positions", "allow"),
        ("mcp__alpaca__get_account_info", "allow"),
    ],
)
def test_real_money_actions_are_put_to_the_user_in_development_and_reads_run(
    desk: Desk, tool: str, expect: str
) -> None:
    decision = desk.call(tool, {"symbol_or_asset_id": "AAPL", "order_id": "o-1"}, mode="development")
    assert decision.permission == expect, decision.reason


@pytest.mark.parametrize("tool", ["Bash", "Edit", "Read", "Write", "Glob", "mcp__notes__search"])
def test_ordinary_tools_pass_every_core_layer_in_development(desk: Desk, tool: str) -> None:
    decision = desk.call(
        tool, {"command": "ls", "file_path": "/tmp/x", "old_string": "a", "new_string": "b"}, mode="development"
    )
    assert decision.permission == "allow", decision.reason


@pytest.mark.parametrize("tool", [CRYPTO, CRYPTO.replace("mcp__", "mcp__ultramax__", 1)], ids=["direct", "gateway"])
def test_an_order_reached_through_the_gateway_is_judged_as_the_same_order(desk: Desk, tool: str) -> None:
    decision = desk.call(tool, crypto(qty="NaN"), mode="alphaforge")
    assert (decision.permission, decision.rule) == ("deny", "input.order_invalid")
    unsigned = desk.call(tool, crypto(), principal=None)
    assert (unsigned.permission, unsigned.rule) == ("deny", "auth.principal_required")
