"""Layer 8: real exchange calendars -- holidays, early closes, DST, extended hours, crypto 24/7."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime

import pytest

from tests.conftest import UltramaxEnv
from tests.trading.conftest import CRYPTO, OPEN, STOCK, THANKSGIVING, Desk, crypto, stock


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_a_stock_order_in_the_regular_session_is_allowed(desk: Desk) -> None:
    assert desk.call(STOCK, stock(), now=OPEN).permission == "allow"


def test_thanksgiving_is_closed_and_the_reason_names_the_holiday_and_the_next_open(desk: Desk) -> None:
    decision = desk.call(STOCK, stock(), now=THANKSGIVING)
    assert (decision.permission, decision.layer, decision.rule) == ("deny", "market_hours", "market_hours.closed")
    assert "Thanksgiving" in decision.reason
    assert "next open 2026-11-27T14:30" in decision.reason


@pytest.mark.parametrize(
    ("when", "permission"),
    [
        ("2026-11-27 17:59", "allow"),  # the day after Thanksgiving closes at 13:00 New York time
        ("2026-11-27 18:00", "deny"),
        ("2026-11-28 15:00", "deny"),  # Saturday
        ("2026-03-06 14:30", "allow"),  # 09:30 EST
        ("2026-03-09 13:30", "allow"),  # 09:30 EDT, after the DST change
        ("2026-03-09 13:29", "deny"),
        ("2026-07-03 15:00", "deny"),  # Independence Day observed on Friday
    ],
)
def test_sessions_follow_the_exchange_calendar_not_fixed_utc_hours(desk: Desk, when: str, permission: str) -> None:
    assert desk.call(STOCK, stock(), now=at(when)).permission == permission


def test_an_early_close_is_named_as_such(desk: Desk) -> None:
    decision = desk.call(STOCK, stock(), now=at("2026-11-27 19:00"))
    assert "after the early close at 13:00" in decision.reason


def test_extended_hours_need_the_setting_and_an_order_that_qualifies(desk: Desk) -> None:
    pre_market = at("2026-11-24 12:00")  # 07:00 in New York
    qualifying = stock(extended_hours=True, time_in_force="day")
    assert desk.call(STOCK, qualifying, now=pre_market).permission == "deny"
    desk.set(extendedHours=True)
    assert desk.call(STOCK, qualifying, now=pre_market).permission == "allow"
    market = {"symbol": "AAPL", "side": "buy", "notional": "100", "extended_hours": True}
    refused = desk.call(STOCK, market, now=pre_market)
    assert refused.rule == "market_hours.closed" and "limit order with extended_hours=true" in refused.reason
    assert desk.call(STOCK, qualifying, now=at("2026-11-25 00:30")).permission == "allow"  # 19:30, after-hours
    assert desk.call(STOCK, qualifying, now=at("2026-11-25 01:30")).permission == "deny"  # 20:30: overnight
    assert desk.call(STOCK, qualifying, now=at("2026-11-27 21:59")).permission == "allow"  # 4 h after an early close
    assert desk.call(STOCK, qualifying, now=at("2026-11-27 22:00")).permission == "deny"


def test_options_trade_only_in_the_regular_session(desk: Desk) -> None:
    desk.set(extendedHours=True)
    option = {
        "symbol": "AAPL261218C00200000",
        "side": "buy",
        "qty": "1",
        "type": "limit",
        "limit_price": "2.00",
        "extended_hours": True,
    }
    assert desk.call("mcp__alpaca__place_option_order", option, now=at("2026-11-24 12:00")).permission == "deny"
    assert desk.call("mcp__alpaca__place_option_order", option, now=OPEN).permission == "allow"


def test_crypto_trades_around_the_clock_and_risk_reducing_calls_are_never_held_back(desk: Desk) -> None:
    assert desk.call(CRYPTO, crypto(), now=THANKSGIVING).permission == "allow"
    assert desk.call(CRYPTO, crypto(), now=at("2026-11-29 03:00")).permission == "allow"  # Sunday night
    for tool in ("mcp__alpaca__close_position", "mcp__alpaca__cancel_all_orders", "mcp__alpaca__cancel_order_by_id"):
        decision = desk.call(tool, {"symbol_or_asset_id": "AAPL", "order_id": "o-1"}, now=THANKSGIVING)
        assert [r.outcome for r in decision.trace if r.layer == "market_hours"] == ["allow"]
        assert decision.permission != "deny"


def test_outside_trading_mode_an_order_while_closed_is_put_to_the_user(desk: Desk) -> None:
    decision = desk.call(STOCK, stock(), now=THANKSGIVING, mode="development")
    assert (decision.permission, decision.rule) == ("ask", "market_hours.closed")
    assert "would wait for the next open" in decision.reason


def test_auction_orders_are_accepted_while_closed(desk: Desk) -> None:
    assert desk.call(STOCK, stock(time_in_force="opg"), now=at("2026-11-24 13:00")).permission == "allow"


def test_an_unknown_exchange_follows_the_failure_policy(desk: Desk) -> None:
    desk.set(exchange="NOPE")
    strict = desk.call(STOCK, stock())
    assert (strict.permission, strict.rule) == ("deny", "market_hours.unknown")
    assert desk.call(STOCK, stock(), mode="development").permission == "ask"


def test_judging_ordinary_tools_never_imports_the_calendars(umx: UltramaxEnv) -> None:
    script = textwrap.dedent(
        """
        import sys
        from ultramax.config import Settings
        from ultramax.modes import get_mode
        from ultramax.paths import Paths
        from ultramax.pipeline.stages.safety import default_layers
        from ultramax.safety.engine import SafetyEngine, SafetyRequest
        engine = SafetyEngine(default_layers())
        for tool, data in [("Bash", {"command": "ls"}), ("Edit", {"file_path": "/tmp/a", "old_string": "a",
                           "new_string": "b"}), ("mcp__alpaca__get_account_info", {})]:
            engine.evaluate(SafetyRequest(tool=tool, input=data, mode=get_mode("alphaforge"),
                            settings=Settings.defaults(), paths=Paths.from_env(), principal="dev"))
        print("exchange_calendars" in sys.modules, "pandas" in sys.modules)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], env=umx.environ(), capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]
