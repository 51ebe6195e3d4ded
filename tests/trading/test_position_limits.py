"""Layer 7: order size, per-symbol position and gross exposure limits, measured on the ledger of actual fills."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

from tests.trading.conftest import CRYPTO, OPEN, STOCK, Desk, crypto, order_response, stock
from ultramax.safety.trading import ledger_for


def test_an_order_within_every_limit_is_allowed(desk: Desk) -> None:
    decision = desk.call(CRYPTO, crypto(qty="0.01", price="60000"))
    assert decision.permission == "allow", decision.reason


def test_an_order_worth_more_than_the_per_order_limit_is_denied(desk: Desk) -> None:
    desk.set(maxOrderNotional=500.0)
    decision = desk.call(STOCK, stock(qty="3", price="190"))
    assert (decision.permission, decision.layer, decision.rule) == (
        "deny",
        "position_limits",
        "position_limits.order_notional",
    )
    assert "$570.00" in decision.reason and "$500.00" in decision.reason


def test_a_notional_order_is_valued_at_its_notional(desk: Desk) -> None:
    desk.set(maxOrderNotional=100.0)
    decision = desk.call(STOCK, {"symbol": "SPY", "side": "buy", "notional": "150"})
    assert decision.rule == "position_limits.order_notional"


def test_gross_exposure_counts_actual_fills_so_the_second_order_over_the_limit_is_denied(desk: Desk) -> None:
    desk.set(maxTotalExposure=1000.0)
    first = crypto(qty="0.01", price="60000")
    assert desk.call(CRYPTO, first).permission == "allow"
    desk.execute(CRYPTO, first, order_response("BTC/USD", "buy", "0.01", "59990"))
    second = desk.call(CRYPTO, crypto(qty="0.01", price="61000"))
    assert (second.permission, second.rule) == ("deny", "position_limits.total_exposure")
    assert "over the limit of $1,000.00" in second.reason and "maxTotalExposure" in second.reason


def test_an_order_the_model_only_asked_for_adds_no_exposure_until_it_fills(desk: Desk) -> None:
    desk.set(maxTotalExposure=1000.0)
    for _ in range(3):  # judged, never executed: the ledger must not count them
        assert desk.call(CRYPTO, crypto(qty="0.01", price="60000")).permission == "allow"


def test_the_per_symbol_limit_applies_after_the_order(desk: Desk) -> None:
    desk.set(positionLimits={"AAPL": 400.0, "*": 5000.0}, maxOrderNotional=10000.0)
    desk.execute(STOCK, stock(qty="2"), order_response("AAPL", "buy", "2", "190"))
    denied = desk.call(STOCK, stock(qty="1", price="190"))
    assert (denied.permission, denied.rule) == ("deny", "position_limits.symbol")
    assert "AAPL position to $570.00" in denied.reason
    assert desk.call(STOCK, stock("MSFT", qty="1", price="410")).permission == "allow"


def test_an_order_that_reduces_exposure_passes_even_above_the_limits(desk: Desk) -> None:
    desk.set(maxTotalExposure=9000.0, maxOrderNotional=10000.0, positionLimits={"*": 9000.0})
    desk.execute(STOCK, stock(qty="40", price="190"), order_response("AAPL", "buy", "40", "190"))
    desk.set(maxTotalExposure=1000.0, positionLimits={"*": 1000.0})  # limits tightened after the fact
    assert desk.call(STOCK, stock(qty="10", side="sell", price="190")).permission == "allow"
    assert desk.call(STOCK, stock(qty="1", price="190")).rule == "position_limits.symbol"


def test_a_market_order_by_quantity_is_valued_at_the_last_fill_and_refused_when_no_price_is_known(desk: Desk) -> None:
    market = {"symbol": "AAPL", "side": "buy", "qty": "1"}
    unpriced = desk.call(STOCK, market)
    assert (unpriced.permission, unpriced.rule) == ("deny", "position_limits.unpriced")
    lenient = desk.call(STOCK, market, mode="development")
    assert (lenient.permission, lenient.rule) == ("ask", "position_limits.unpriced")
    desk.execute(STOCK, stock(qty="1"), order_response("AAPL", "buy", "1", "190", order_id="a"))
    assert desk.call(STOCK, market).permission == "allow"
    desk.set(maxOrderNotional=300.0)
    assert desk.call(STOCK, {**market, "qty": "2"}).rule == "position_limits.order_notional"


def test_the_same_order_executed_seconds_ago_is_refused_as_a_duplicate(desk: Desk) -> None:
    order = crypto(qty="0.001", price="60000")
    desk.execute(CRYPTO, order, order_response("BTC/USD", "buy", "0.001", "60000"))
    duplicate = desk.call(CRYPTO, order)
    assert (duplicate.permission, duplicate.rule) == ("deny", "position_limits.duplicate_order")
    assert desk.call(CRYPTO, {**order, "client_order_id": "second-on-purpose"}).permission == "allow"


def test_duplicates_are_judged_on_the_request_clock(desk: Desk) -> None:
    order = crypto(qty="0.001", price="60000")
    desk.execute(CRYPTO, order, order_response("BTC/USD", "buy", "0.001", "60000"))
    desk.set(duplicateOrderSeconds=0)
    assert desk.call(CRYPTO, order, now=OPEN + timedelta(seconds=5)).permission == "allow"


def test_a_replacement_is_valued_from_the_order_it_replaces(desk: Desk) -> None:
    resting = order_response("AAPL", "buy", "2", "150", order_id="r-1", filled="0", limit_price="150")
    desk.execute(STOCK, stock(qty="2", price="150"), resting)
    desk.set(maxOrderNotional=500.0)
    replace = "mcp__alpaca__replace_order_by_id"
    assert desk.call(replace, {"order_id": "r-1", "limit_price": "200"}).permission == "allow"
    too_big = desk.call(replace, {"order_id": "r-1", "qty": "3", "limit_price": "200"})
    assert (too_big.permission, too_big.rule) == ("deny", "position_limits.order_notional")
    unknown = desk.call(replace, {"order_id": "nope", "limit_price": "1"})
    assert (unknown.permission, unknown.rule) == ("deny", "position_limits.unknown_order")


def test_every_spelling_of_a_symbol_meets_the_same_position_and_the_same_limit(desk: Desk) -> None:
    desk.set(positionLimits={"BTC/USD": 1000.0, "brk.b": 1000.0, "*": 50000.0}, maxOrderNotional=5000.0)
    desk.execute(CRYPTO, crypto(qty="0.01", price="60000"), order_response("BTC/USD", "buy", "0.01", "60000"))
    # Alpaca reports the crypto position as BTCUSD though the order said BTC/USD
    positions = [{"symbol": "BTCUSD", "qty": "0.01", "side": "long", "current_price": "60000", "asset_class": "crypto"}]
    desk.fill("mcp__alpaca__get_all_positions", {}, json.dumps({"data": positions}))
    for spelling in ("BTC/USD", "BTCUSD", "btc/usd"):
        more = desk.call(CRYPTO, crypto(qty="0.01", price="60000", symbol=spelling, client_order_id="more"))
        assert (more.permission, more.rule) == ("deny", "position_limits.symbol"), spelling
        assert "$1,200.00" in more.reason and "$1,000.00" in more.reason
    desk.execute(STOCK, stock("BRK.B", qty="2", price="450"), order_response("BRK.B", "buy", "2", "450", order_id="b"))
    assert desk.call(STOCK, stock("BRK/B", qty="1", price="450")).rule == "position_limits.symbol"


def test_a_crypto_pair_not_quoted_in_dollars_cannot_pass_the_dollar_limits(desk: Desk) -> None:
    # 100 ETH at 0.035 BTC each is worth about $210,000, not $3.50
    cross = desk.call(CRYPTO, crypto(qty="100", price="0.035", symbol="ETH/BTC"))
    assert (cross.permission, cross.rule) == ("deny", "position_limits.currency")
    assert "ETH/BTC" in cross.reason and "US dollars" in cross.reason
    by_notional = desk.call(CRYPTO, {"symbol": "ETHBTC", "side": "buy", "notional": "5"}, mode="development")
    assert (by_notional.permission, by_notional.rule) == ("ask", "position_limits.currency")
    for pair in ("BTC/USD", "BTC/USDT", "BTCUSDC"):
        assert desk.call(CRYPTO, crypto(qty="0.001", price="60000", symbol=pair)).permission == "allow", pair
    for pair in ("ETH/BTC", "ETHBTC"):  # the broker's order endpoint takes a pair from the stock tool as well
        assert desk.call(STOCK, stock(pair, qty="100", price="0.035")).rule == "position_limits.currency", pair
    for share_class in ("BRK/B", "BRK.B", "GBTC"):
        assert desk.call(STOCK, stock(share_class, qty="1", price="450")).permission == "allow", share_class


def test_an_order_whose_call_failed_without_a_broker_refusal_counts_until_the_broker_reports_it(desk: Desk) -> None:
    desk.set(maxTotalExposure=1000.0)
    first = crypto(qty="0.01", price="60000", client_order_id="mine-1")
    assert desk.call(CRYPTO, first).permission == "allow"
    timeout = "HTTPSConnectionPool(host='paper-api.alpaca.markets', port=443): Read timed out. (read timeout=30)"
    desk.call(CRYPTO, first, phase="post", error=timeout)
    second = desk.call(CRYPTO, crypto(qty="0.01", price="60000", client_order_id="mine-2"))
    assert (second.permission, second.rule) == ("deny", "position_limits.total_exposure")
    assert "$600.00 of it from order calls that failed" in second.reason
    retry = desk.call(CRYPTO, first, mode="development")  # the same call again may place it twice
    assert retry.rule == "position_limits.duplicate_order"
    # the broker did take it: the order read replaces the placeholder instead of adding to it
    placed = json.loads(order_response("BTC/USD", "buy", "0.01", "59990", order_id="b-9"))["data"]
    desk.fill(
        "mcp__alpaca__get_orders", {"status": "all"}, json.dumps({"data": [{**placed, "client_order_id": "mine-1"}]})
    )
    book = ledger_for(desk.umx.paths, desk.project).book()
    assert book.gross == Decimal("599.9000") and book.open_orders == {}


def test_an_order_the_broker_refused_adds_no_exposure(desk: Desk) -> None:
    desk.set(maxTotalExposure=1000.0)
    order = crypto(qty="0.01", price="60000")
    desk.call(CRYPTO, order, phase="post", error='Error: APIError {"code":40310000,"message":"insufficient balance"}')
    desk.call(CRYPTO, order, phase="post", error="The user doesn't want to proceed with this tool use.")
    too_many = 'APIError {"code":40310000,"message":"insufficient qty available (requested: 500, available: 0)"}'
    desk.call(CRYPTO, {**order, "client_order_id": "c"}, phase="post", error=too_many)
    assert ledger_for(desk.umx.paths, desk.project).book().gross == 0
    assert desk.call(CRYPTO, {**order, "client_order_id": "d"}).permission == "allow"  # no breaker tripped either


def test_market_orders_split_on_a_flat_symbol_count_while_they_wait_to_fill(desk: Desk) -> None:
    desk.set(positionLimits={"*": 1000.0})
    desk.execute(STOCK, stock(qty="2"), order_response("AAPL", "buy", "2", "190", order_id="in"))
    desk.execute(STOCK, stock(qty="2", side="sell"), order_response("AAPL", "sell", "2", "190", order_id="out"))
    for n in range(2):  # the broker accepts each one; the fill comes after its answer
        market = {"symbol": "AAPL", "side": "buy", "qty": "2", "client_order_id": f"m-{n}"}
        accepted = order_response("AAPL", "buy", "2", "", order_id=f"m-{n}", filled="0", status="accepted")
        desk.execute(STOCK, market, accepted)
    third = desk.call(STOCK, {"symbol": "AAPL", "side": "buy", "qty": "2", "client_order_id": "m-2"})
    assert (third.permission, third.rule) == ("deny", "position_limits.symbol")
    assert "held now: 0 ($0.00), open orders $760.00" in third.reason


def test_a_sell_limit_or_buy_stop_far_below_the_market_is_valued_at_the_market(desk: Desk) -> None:
    desk.set(maxOrderNotional=1000.0, positionLimits={"*": 5000.0})
    desk.execute(STOCK, stock(qty="1"), order_response("AAPL", "buy", "1", "190", order_id="in"))
    dump = desk.call(STOCK, stock(qty="100", side="sell", price="0.01"))  # fills at ~190: a $19,000 short
    assert (dump.permission, dump.rule) == ("deny", "position_limits.order_notional")
    assert "$19,000.00 at the last known price 190" in dump.reason
    assert desk.call(STOCK, stock(qty="1", side="sell", price="0.01")).permission == "allow"  # closing the 1 held
    buy_stop = {"symbol": "AAPL", "side": "buy", "qty": "100", "type": "stop", "stop_price": "0.01"}  # triggers now
    assert desk.call(STOCK, buy_stop).rule == "position_limits.order_notional"


def test_an_absurdly_large_order_is_denied_with_a_readable_amount(desk: Desk) -> None:
    decision = desk.call(STOCK, stock(qty="1e12", price="1e12"))
    assert (decision.permission, decision.rule) == ("deny", "position_limits.order_notional")
    assert "$1.000E+24" in decision.reason and len(decision.reason) < 300
    overflowing = desk.call(STOCK, stock(qty="9e999999", price="9e999999"), mode="development")
    assert (overflowing.permission, overflowing.rule) == ("deny", "input.order_invalid")
    assert "qty='9e999999' is out of range" in overflowing.reason


def test_a_replacement_that_grows_an_order_past_the_position_limit_is_denied(desk: Desk) -> None:
    desk.set(positionLimits={"AAPL": 1000.0}, maxOrderNotional=1000.0)
    desk.execute(STOCK, stock(qty="3", price="150"), order_response("AAPL", "buy", "3", "150", order_id="held"))
    resting = order_response("AAPL", "buy", "2", "150", order_id="r-1", filled="0", limit_price="150")
    desk.execute(STOCK, stock(qty="2", price="150"), resting)
    replace = "mcp__alpaca__replace_order_by_id"
    grown = desk.call(replace, {"order_id": "r-1", "qty": "6", "limit_price": "160"})  # 9 x 160 = 1,440
    assert (grown.permission, grown.rule) == ("deny", "position_limits.symbol")
    assert "$1,440.00" in grown.reason
    assert desk.call(replace, {"order_id": "r-1", "qty": "3", "limit_price": "155"}).permission == "allow"  # 930


def test_a_sell_by_notional_that_reduces_a_position_passes_even_above_the_limits(desk: Desk) -> None:
    desk.set(maxTotalExposure=9000.0, maxOrderNotional=10000.0, positionLimits={"*": 9000.0})
    desk.execute(STOCK, stock(qty="40", price="190"), order_response("AAPL", "buy", "40", "190"))
    desk.set(maxTotalExposure=1000.0, positionLimits={"*": 1000.0})  # limits tightened after the fact
    assert desk.call(STOCK, {"symbol": "AAPL", "side": "sell", "notional": "1900"}).permission == "allow"
    assert desk.call(STOCK, {"symbol": "AAPL", "side": "buy", "notional": "190"}).rule == "position_limits.symbol"


def test_an_option_contract_is_valued_at_one_hundred_shares_whichever_tool_sends_it(desk: Desk) -> None:
    contract = "AAPL261218C00190000"
    via_stock_tool = desk.call(STOCK, stock(contract, qty="10", price="5"))  # 10 contracts at $5: $5,000
    assert (via_stock_tool.permission, via_stock_tool.rule) == ("deny", "position_limits.order_notional")
    assert "$5,000.00" in via_stock_tool.reason
    # and its fill is booked as contracts, whatever asset class the answer names
    desk.fill(STOCK, stock(contract, qty="1", price="5"), order_response(contract, "buy", "1", "5", order_id="opt"))
    assert ledger_for(desk.umx.paths, desk.project).book().symbol_value(contract) == Decimal(500)
