"""The risk table and order parsing: what a call is, before any layer judges it."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tests.trading.conftest import Desk
from ultramax.safety.mcp_risk import (
    ALPACA_TOOLS,
    KNOWN_SERVERS,
    GuardClass,
    OrderError,
    classify,
    parse_mcp_name,
    parse_order,
    requires_safety_check,
)


def op_of(desk: Desk, tool: str, tool_input: dict[str, Any] | None = None) -> Any:
    return classify(desk.request(tool, tool_input or {}))


@pytest.mark.parametrize(
    ("tool", "guard"),
    [
        ("place_stock_order", GuardClass.ORDER_ENTRY),
        ("place_crypto_order", GuardClass.ORDER_ENTRY),
        ("place_option_order", GuardClass.ORDER_ENTRY),
        ("exercise_options_position", GuardClass.ORDER_ENTRY),
        ("create_locate", GuardClass.ORDER_ENTRY),
        ("replace_order_by_id", GuardClass.ORDER_MODIFY),
        ("cancel_order_by_id", GuardClass.RISK_REDUCING),
        ("cancel_all_orders", GuardClass.RISK_REDUCING),
        ("close_position", GuardClass.RISK_REDUCING),
        ("close_all_positions", GuardClass.RISK_REDUCING),
        ("do_not_exercise_options_position", GuardClass.RISK_REDUCING),
        ("update_account_config", GuardClass.PRIVILEGED),
        ("delete_watchlist_by_id", GuardClass.HARMLESS_WRITE),
    ],
)
def test_the_alpaca_tools_that_change_state_have_the_reference_guard_class(tool: str, guard: GuardClass) -> None:
    assert ALPACA_TOOLS[tool].guard is guard


def test_reads_and_docs_tools_of_the_alpaca_server_are_reads_and_unknown_verbs_are_unlisted_writes(desk: Desk) -> None:
    assert op_of(desk, "mcp__alpaca__get_account_info").guard is GuardClass.READ
    assert op_of(desk, "mcp__alpaca__get_orders").guard is GuardClass.READ
    assert op_of(desk, "mcp__alpaca__search_alpaca_docs").guard is GuardClass.READ
    assert op_of(desk, "mcp__alpaca__transfer_funds").guard is GuardClass.UNLISTED_WRITE


def test_massive_and_polygon_are_read_only_known_servers_and_unknown_servers_are_left_to_the_rule_packs(
    desk: Desk,
) -> None:
    assert {"alpaca", "massive", "polygon"} <= KNOWN_SERVERS
    assert op_of(desk, "mcp__massive__call_api", {"path": "/v2/aggs"}).guard is GuardClass.READ
    unknown = op_of(desk, "mcp__notes__delete_note")
    assert unknown.guard is None and "delete_note" in unknown.names


def test_a_renamed_trading_server_gets_the_table_when_named_in_safety_trading_servers(desk: Desk) -> None:
    assert op_of(desk, "mcp__broker__place_stock_order").guard is None
    desk.set(tradingServers=["alpaca", "broker"])
    op = op_of(desk, "mcp__broker__place_stock_order", {"symbol": "AAPL", "side": "buy", "qty": "1"})
    assert op.guard is GuardClass.ORDER_ENTRY and op.trading
    assert op.names[0] == "trade:place_stock_order"
    assert {"execute_trade", "market_order", "trading_operation"} <= set(op.names)


def test_the_seed_routing_rule_trade_star_requires_a_safety_check_for_the_alpaca_server() -> None:
    assert requires_safety_check("trade:place_stock_order")
    assert requires_safety_check("anything", server="alpaca")
    assert not requires_safety_check("file:read", server="filesystem")
    assert parse_mcp_name("mcp__alpaca__place_stock_order") == ("alpaca", "place_stock_order")
    assert parse_mcp_name("mcp__my__server__tool") == ("my", "server__tool")
    assert parse_mcp_name("Bash") is None


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        ({"symbol": "AAPL", "side": "buy", "qty": "NaN"}, "not a finite number"),
        ({"symbol": "AAPL", "side": "buy", "qty": "Infinity"}, "not a finite number"),
        ({"symbol": "AAPL", "side": "buy", "qty": "-5"}, "greater than zero"),
        ({"symbol": "AAPL", "side": "buy", "qty": "1e2x"}, "not a number"),
        ({"symbol": "AAPL", "side": "buy", "qty": "9e999999"}, "out of range"),
        ({"symbol": "AAPL", "side": "buy", "qty": "1", "type": "limit", "limit_price": "1e13"}, "out of range"),
        ({"symbol": "AAPL", "side": "buy", "qty": "1", "notional": "100"}, "mutually exclusive"),
        ({"symbol": "AAPL", "side": "buy"}, "one of qty or notional"),
        ({"symbol": "AAPL", "side": "hold", "qty": "1"}, "side must be buy or sell"),
        ({"side": "buy", "qty": "1"}, "symbol is required"),
        ({"symbol": "AAPL", "side": "buy", "qty": "1", "type": "limit"}, "needs limit_price"),
        ({"symbol": "AAPL", "side": "buy", "qty": True}, "must be a number in a string"),
    ],
)
def test_orders_the_broker_would_misread_are_rejected_with_the_field_named(args: dict[str, Any], problem: str) -> None:
    with pytest.raises(OrderError, match=problem):
        parse_order("place_stock_order", ALPACA_TOOLS["place_stock_order"], args)


def test_option_orders_are_valued_at_one_hundred_shares_a_contract_and_multi_leg_credits_may_be_negative() -> None:
    single = parse_order(
        "place_option_order",
        ALPACA_TOOLS["place_option_order"],
        {"symbol": "AAPL250321C00150000", "side": "buy", "qty": "2", "type": "limit", "limit_price": "1.50"},
    )
    assert single is not None and single.value() == Decimal("300.00")
    spread = parse_order(
        "place_option_order",
        ALPACA_TOOLS["place_option_order"],
        {
            "qty": "1",
            "type": "limit",
            "limit_price": "-0.40",
            "legs": [{"symbol": "AAPL250321C00150000", "ratio_qty": "1"}, {"symbol": "AAPL250321C00160000"}],
        },
    )
    assert spread is not None and spread.value() == Decimal("40.00") and spread.side == "buy"


def test_v1_argument_names_are_understood_and_a_notional_order_has_no_quantity() -> None:
    v1 = parse_order(
        "place_stock_order", ALPACA_TOOLS["place_stock_order"], {"symbol": "aapl", "side": "Buy", "quantity": 3}
    )
    assert v1 is not None and v1.qty == 3 and v1.symbol == "AAPL" and v1.side == "buy"
    notional = parse_order(
        "place_stock_order", ALPACA_TOOLS["place_stock_order"], {"symbol": "SPY", "side": "buy", "notional": "250"}
    )
    assert notional is not None and notional.qty is None and notional.value() == Decimal(250)


def test_classification_is_computed_once_per_request(desk: Desk) -> None:
    request = desk.request("mcp__alpaca__place_crypto_order", {"symbol": "BTC/USD", "side": "buy", "notional": "50"})
    assert classify(request) is classify(request)
