"""The exposure ledger: positions from actual fills, durable, idempotent, shared by concurrent writers."""

from __future__ import annotations

import json
import sqlite3
import stat
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from tests.conftest import UltramaxEnv
from tests.trading.conftest import CRYPTO, STOCK, Desk, crypto, order_response, paper_mcp, stock
from ultramax.safety.ledger import Ledger, error_of, payload_of
from ultramax.safety.store import _MIGRATIONS, SafetyStore, _statements
from ultramax.safety.trading import ledger_for


def test_a_fill_in_an_order_response_becomes_a_position(desk: Desk) -> None:
    desk.fill(STOCK, stock(qty="2"), order_response("AAPL", "buy", "2", "189.50"))
    book = ledger_for(desk.umx.paths, desk.project).book()
    assert book.qty("AAPL") == Decimal(2)
    assert book.symbol_value("AAPL") == Decimal("379.00")
    assert book.gross == Decimal("379.00")


def test_seeing_the_same_order_again_never_counts_its_fill_twice(desk: Desk) -> None:
    response = order_response("AAPL", "buy", "2", "190", order_id="o-7")
    desk.fill(STOCK, stock(qty="2"), response)
    desk.fill("mcp__alpaca__get_orders", {"status": "all"}, json.dumps({"data": [json.loads(response)["data"]]}))
    desk.fill("mcp__alpaca__get_order_by_id", {"order_id": "o-7"}, response)
    assert ledger_for(desk.umx.paths, desk.project).book().qty("AAPL") == Decimal(2)


def test_a_partial_fill_counts_what_filled_and_keeps_the_rest_as_open_exposure(desk: Desk) -> None:
    desk.fill(
        STOCK, stock(qty="10", price="100"), order_response("AAPL", "buy", "10", "100", filled="4", limit_price="100")
    )
    book = ledger_for(desk.umx.paths, desk.project).book()
    assert book.qty("AAPL") == Decimal(4)
    assert book.open_orders["AAPL"] == Decimal(600)  # 6 more at the 100 limit
    later = order_response("AAPL", "buy", "10", "100", filled="10", limit_price="100")
    desk.fill("mcp__alpaca__get_order_by_id", {"order_id": "o-1"}, later)
    book = ledger_for(desk.umx.paths, desk.project).book()
    assert book.qty("AAPL") == Decimal(10) and "AAPL" not in book.open_orders


def test_sells_reduce_and_short_positions_are_negative(desk: Desk) -> None:
    desk.fill(STOCK, stock(qty="5"), order_response("AAPL", "buy", "5", "190", order_id="a"))
    desk.fill(STOCK, stock(qty="8", side="sell"), order_response("AAPL", "sell", "8", "191", order_id="b"))
    book = ledger_for(desk.umx.paths, desk.project).book()
    assert book.qty("AAPL") == Decimal(-3)
    assert book.symbol_value("AAPL") == Decimal(573)


def test_a_position_read_reconciles_the_book_outright(desk: Desk) -> None:
    desk.fill(STOCK, stock(qty="5"), order_response("AAPL", "buy", "5", "190", order_id="a"))
    desk.fill(STOCK, stock("MSFT", qty="1"), order_response("MSFT", "buy", "1", "410", order_id="b"))
    positions = [{"symbol": "AAPL", "qty": "3", "side": "long", "current_price": "200", "asset_class": "us_equity"}]
    desk.fill("mcp__alpaca__get_all_positions", {}, json.dumps({"data": positions}))
    book = ledger_for(desk.umx.paths, desk.project).book()
    assert book.qty("AAPL") == Decimal(3) and book.qty("MSFT") == 0
    assert book.gross == Decimal(600)


def test_a_position_read_of_an_empty_account_clears_the_book(desk: Desk) -> None:
    desk.fill(STOCK, stock(qty="5"), order_response("AAPL", "buy", "5", "190", order_id="a"))
    desk.fill("mcp__alpaca__get_all_positions", {}, "Service busy, try again shortly")
    assert ledger_for(desk.umx.paths, desk.project).book().gross == 950  # not an answer about positions
    desk.fill("mcp__alpaca__get_all_positions", {}, json.dumps({"data": []}))
    assert ledger_for(desk.umx.paths, desk.project).book().gross == 0


def test_a_fill_the_position_read_already_holds_is_not_booked_again(desk: Desk) -> None:
    desk.fill(STOCK, stock(qty="20"), order_response("AAPL", "buy", "20", "190", order_id="in"))
    sell = order_response("AAPL", "sell", "10", "", order_id="out", filled="0", status="accepted")
    desk.fill(STOCK, stock(qty="10", side="sell"), sell)
    positions = [{"symbol": "AAPL", "qty": "10", "side": "long", "current_price": "190", "asset_class": "us_equity"}]
    desk.fill("mcp__alpaca__get_all_positions", {}, json.dumps({"data": positions}))  # the sell filled meanwhile
    read_at = datetime.now(UTC)
    filled = json.loads(order_response("AAPL", "sell", "10", "190", order_id="out"))["data"]
    filled["updated_at"] = (read_at - timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
    desk.fill("mcp__alpaca__get_orders", {"status": "all"}, json.dumps({"data": [filled]}))
    book = ledger_for(desk.umx.paths, desk.project).book()
    assert book.qty("AAPL") == Decimal(10) and book.open_orders == {}
    later = json.loads(order_response("AAPL", "sell", "4", "190", order_id="later"))["data"]
    later["updated_at"] = (read_at + timedelta(minutes=1)).isoformat()
    desk.fill("mcp__alpaca__get_orders", {"status": "all"}, json.dumps({"data": [later]}))
    assert ledger_for(desk.umx.paths, desk.project).book().qty("AAPL") == Decimal(6)


def test_cancels_remove_open_order_exposure(desk: Desk) -> None:
    open_order = order_response("AAPL", "buy", "3", "100", order_id="x1", filled="0", limit_price="100")
    desk.fill(STOCK, stock(qty="3", price="100"), open_order)
    assert ledger_for(desk.umx.paths, desk.project).book().open_orders == {"AAPL": Decimal(300)}
    desk.fill("mcp__alpaca__cancel_order_by_id", {"order_id": "x1"}, json.dumps({"data": {"id": "x1", "status": 204}}))
    assert ledger_for(desk.umx.paths, desk.project).book().gross == 0


def test_an_error_answer_books_nothing(desk: Desk) -> None:
    desk.fill(CRYPTO, crypto(), json.dumps({"code": 40310000, "message": "insufficient buying power"}))
    assert ledger_for(desk.umx.paths, desk.project).book().gross == 0


def test_responses_are_read_from_text_content_blocks_and_structured_content_alike() -> None:
    order = {"id": "1", "symbol": "AAPL", "side": "buy"}
    wrapped = json.dumps({"_alpaca_mcp_security": {}, "data": order})
    assert payload_of(wrapped) == order
    assert payload_of([{"type": "text", "text": wrapped}]) == order
    assert payload_of({"content": [{"type": "text", "text": wrapped}]}) == order
    assert payload_of({"structuredContent": {"result": order}}) == order
    assert error_of(payload_of('{"error": {"message": "order MAY have been placed", "timeout": true}}'))
    assert error_of("Error: 403 forbidden")
    assert error_of(order) is None


def test_the_ledger_survives_a_restart_and_its_file_is_private(desk: Desk) -> None:
    desk.fill(CRYPTO, crypto(), order_response("BTC/USD", "buy", "0.01", "60000"))
    store = SafetyStore.for_paths(desk.umx.paths)
    store.close()
    fresh = Ledger(SafetyStore(store.path), project=str(desk.project))
    assert fresh.book().qty("BTC/USD") == Decimal("0.01")
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    wal = store.path.with_name(store.path.name + "-wal")
    if wal.exists():
        assert stat.S_IMODE(wal.stat().st_mode) == 0o600


def test_concurrent_writers_in_separate_processes_lose_no_fill(umx: UltramaxEnv) -> None:
    umx.paths.ensure_home()
    script = textwrap.dedent(
        """
        import sys
        from ultramax.paths import Paths
        from ultramax.safety.ledger import Ledger
        from ultramax.safety.store import _MIGRATIONS, SafetyStore, _statements
        worker = sys.argv[1]
        ledger = Ledger(SafetyStore.for_paths(Paths.from_env()))
        for i in range(25):
            order = {"id": f"{worker}-{i}", "symbol": "AAPL", "side": "buy", "qty": "1", "filled_qty": "1",
                     "filled_avg_price": "100", "status": "filled"}
            ledger.record_order(order, tool="place_stock_order")
        """
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(n)], env=umx.environ(), stderr=subprocess.PIPE)
        for n in range(4)
    ]
    errors = [proc.communicate(timeout=60)[1] for proc in procs]  # every worker ends before any assert
    for proc, err in zip(procs, errors, strict=True):
        assert proc.returncode == 0, err.decode()
    book = ledger_for(umx.paths).book()
    assert book.qty("AAPL") == Decimal(100)
    rows = SafetyStore.for_paths(umx.paths).query("SELECT COUNT(*) FROM fills")
    assert rows[0][0] == 100


def test_each_project_keeps_its_own_book_so_one_position_read_cannot_clear_another(desk: Desk) -> None:
    other = desk.umx.project("other-desk")
    paper_mcp(other)
    desk.set(positionLimits={"*": 1000.0})
    desk.execute(STOCK, stock(qty="5", price="190"), order_response("AAPL", "buy", "5", "190", order_id="a-1"))
    # the other project trades another account, which holds only MSFT
    desk.project, mine = other, desk.project
    msft = [{"symbol": "MSFT", "qty": "1", "side": "long", "current_price": "410", "asset_class": "us_equity"}]
    desk.fill("mcp__alpaca__get_all_positions", {}, json.dumps({"data": msft}))
    assert desk.call(STOCK, stock(qty="5", price="190")).permission == "allow"  # no AAPL in its own book
    desk.project = mine
    assert ledger_for(desk.umx.paths, mine).book().qty("AAPL") == Decimal(5)
    over = desk.call(STOCK, stock(qty="1", price="190"))
    assert (over.permission, over.rule) == ("deny", "position_limits.symbol")


def test_positions_booked_before_books_were_per_project_still_count(umx: UltramaxEnv) -> None:
    umx.paths.ensure_home()
    db = umx.paths.home / "safety.db"
    with sqlite3.connect(db) as conn:  # a version-1 database with a position in it
        for statement in _statements(_MIGRATIONS[0][1]):
            conn.execute(statement)
        conn.execute("INSERT INTO positions VALUES ('AAPL', '3', '190', 1, 0)")
        conn.execute("PRAGMA user_version=1")
    assert SafetyStore.for_paths(umx.paths).path == db
    assert ledger_for(umx.paths, "/some/project").book().qty("AAPL") == Decimal(3)
