"""Trading layers: 7 position limits, 9 circuit breaker, 15 execution isolation, 16 post-execution verification.

Layers 9 and 15 live in ``breaker`` and ``isolation`` and are re-exported here.

* **7 position limits** value every order (``Decimal``; options x100) and refuse one that is larger than
  ``safety.maxOrderNotional``, that would take a symbol's position past ``safety.positionLimits`` or the
  gross exposure past ``safety.maxTotalExposure`` -- measured on the exposure ledger, which it keeps from
  the broker's actual answers after each call -- or that repeats an order executed seconds ago. An order
  that only reduces exposure always passes the exposure checks.
* **16 post-execution verification** records what was judged before a trading call and, after it, compares
  what the broker did with it: the order's symbol, side, size and limit, the fill price against the limit,
  the fill's value and the exposure after it against the limits; a call it never judged (a hook that failed
  open) is a mismatch too. For file tools it checks the file written is the one approved and did not land
  outside the project through a symlink. A mismatch trips the breaker and is fed back as a block.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from ultramax.paths import Paths
from ultramax.safety.breaker import FILE_TOOLS, Breakers, CircuitBreakerLayer, breakers_for
from ultramax.safety.engine import LayerVerdict, SafetyRequest
from ultramax.safety.isolation import ExecutionIsolationLayer, paper_value, server_env
from ultramax.safety.layers_core import call_digest, denied_by, dry_run, failure, request_time, verdict
from ultramax.safety.ledger import Ledger, error_of, outcome_unknown, payload_of
from ultramax.safety.mcp_risk import GuardClass, Operation, Order, classify, symbol_key
from ultramax.safety.store import SafetyStore

__all__ = [
    "FILE_TOOLS",
    "Breakers",
    "CircuitBreakerLayer",
    "ExecutionIsolationLayer",
    "PositionLimitLayer",
    "PostExecutionVerificationLayer",
    "breakers_for",
    "ledger_for",
    "paper_value",
    "server_env",
]

USD_QUOTES = ("USD", "USDT", "USDC")  # the pegged stablecoins count as dollars
FILL_TOLERANCE = Decimal("1.05")  # market orders may fill a little worse than the price they were valued at


def _usd(value: Decimal) -> str:
    if abs(value) >= Decimal("1e15"):  # qty="1e400" is a valid number: say so in a line, not in 400 digits
        return f"${value:.3E}"
    return f"${value:,.2f}"


# -- shared state -------------------------------------------------------------------------------------------
_STATE_LOCK = threading.Lock()
_LEDGERS: dict[tuple[int, str], Ledger] = {}


def ledger_for(paths: Paths, project: Path | str | None = None) -> Ledger:
    """The exposure ledger of ``project`` (each project keeps its own book: it may trade its own account)."""
    store = SafetyStore.for_paths(paths)
    book = str(project or "")
    with _STATE_LOCK:
        ledger = _LEDGERS.get((id(store), book))
        if ledger is None or ledger.store is not store:
            if len(_LEDGERS) > 64:
                _LEDGERS.clear()
            ledger = _LEDGERS[(id(store), book)] = Ledger(store, project=book)
        return ledger


# -- layer 7 ------------------------------------------------------------------------------------------------
def _priced_in_another_currency(order: Order) -> bool:
    """A crypto pair whose quote is not the dollar, whichever order tool carries it (Alpaca's order endpoint
    takes ``ETH/BTC`` from ``place_stock_order`` too); ``BRK/B``-style share classes have a short suffix."""
    if order.asset_class == "crypto":
        return not symbol_key(order.symbol).endswith(USD_QUOTES)
    base, slash, quote = order.symbol.rpartition("/")
    if slash and base and len(quote) >= 3:
        return symbol_key(quote) not in USD_QUOTES
    key = symbol_key(order.symbol)
    return len(key) >= 6 and key.endswith(("BTC", "ETH"))


def _limit_for(limits: Mapping[str, float], symbol: str) -> Decimal | None:
    # a limit written ``BTC/USD`` or ``brk.b`` binds every spelling of that symbol; the strictest of two wins
    key = symbol_key(symbol)
    named = [Decimal(str(v)) for k, v in limits.items() if k != "*" and symbol_key(k) == key]
    if named:
        return min(named)
    value = limits.get("*")
    return Decimal(str(value)) if value is not None else None


class PositionLimitLayer:
    """Layer 7 (see the module docstring). Its ``observe`` keeps the exposure ledger."""

    name = "position_limits"
    order = 7

    def check(self, request: SafetyRequest) -> LayerVerdict | None:
        if not request.tool.startswith("mcp__"):
            return None
        op = classify(request)
        if not op.places_order or op.order is None:
            return None
        order = op.order
        ledger = ledger_for(request.paths, request.project_dir)
        settings = request.settings
        if op.guard is GuardClass.ORDER_MODIFY:
            return self._replacement(request, op, order, ledger)
        if _priced_in_another_currency(order):
            # ETH/BTC is priced and sized in BTC: its limit price or notional read as dollars would be ~1/60000th
            return failure(
                request,
                f"cannot value {order.describe()} in US dollars: {order.symbol} is not quoted in "
                f"{', '.join(USD_QUOTES)}, and the limits (safety.maxOrderNotional, safety.positionLimits, "
                "safety.maxTotalExposure) are in dollars; trade the dollar pair instead",
                self.name,
                "position_limits.currency",
            )
        known = ledger.reference_price(order.symbol)
        reference = known if order.price is None and order.notional is None else None
        value = order.value(reference)
        note = ""
        # an order whose price is below the market -- a sell limit, or a buy stop, which triggers at once -- fills
        # at the market: its own price would undervalue it
        at_market = order.side == "sell" or (order.type == "stop" and order.limit_price is None)
        if (
            at_market
            and order.price is not None
            and order.qty is not None
            and not order.legs
            and known is not None
            and abs(known) > abs(order.price)
        ):
            reference = abs(known)
            value = order.qty * reference * order.multiplier
            note = f" at the last known price {reference} (priced below it, the order fills at the market)"
        if value is None:
            return failure(
                request,
                f"cannot value {order.describe()}: a market order by quantity needs a price and the ledger has none "
                f"for {order.symbol}; give a limit price or a notional",
                self.name,
                "position_limits.unpriced",
            )
        cap = Decimal(str(settings.get("safety.maxOrderNotional")))
        if value > cap:
            return verdict(
                request,
                "deny",
                f"order {order.describe()} is worth {_usd(value)}{note}, over the per-order limit of {_usd(cap)} "
                "(safety.maxOrderNotional)",
                self.name,
                "position_limits.order_notional",
            )
        window = int(settings.get("safety.duplicateOrderSeconds"))
        if window:
            seen = ledger.executed_recently(call_digest(request), window)
            if seen is not None:
                ago = max(0, int(request_time(request) - seen))
                return verdict(
                    request,
                    "deny",
                    f"duplicate order: the same {order.describe()} was executed {ago} s ago "
                    f"(safety.duplicateOrderSeconds={window}); if you mean a second order, change the client_order_id",
                    self.name,
                    "position_limits.duplicate_order",
                )
        # a notional order's units come from the last known price, so a sell by notional is seen to reduce
        price = reference or order.price or known or (value / order.qty / order.multiplier if order.qty else None)
        return self._exposure(request, order, price, value, ledger)

    def _exposure(
        self,
        request: SafetyRequest,
        order: Order,
        price: Decimal | None,
        value: Decimal,
        ledger: Ledger,
        *,
        replaces: Decimal = Decimal(0),
    ) -> LayerVerdict | None:
        """``replaces``: the open-order value a replacement takes the place of (it leaves the book as it comes)."""
        settings = request.settings
        book = ledger.book()
        signed = order.signed_qty(price)
        symbol = order.symbol
        held = book.qty(symbol)
        mult = order.multiplier
        pending = book.pending(symbol)
        remaining = max(pending - replaces, Decimal(0))
        if signed is None or price is None:
            before_sym, after_sym = book.symbol_value(symbol) + pending, book.symbol_value(symbol) + remaining + value
        else:
            before_sym = abs(held) * abs(price) * mult + pending
            after_sym = abs(held + signed) * abs(price) * mult + remaining
        gross_before = book.gross - book.symbol_value(symbol) - pending + before_sym
        gross_after = gross_before - before_sym + after_sym
        limit = _limit_for(settings.get("safety.positionLimits"), symbol)
        if limit is not None and after_sym > limit and after_sym > before_sym:
            return verdict(
                request,
                "deny",
                f"order {order.describe()} would take the {symbol} position to {_usd(after_sym)}, over its limit of "
                f"{_usd(limit)} (safety.positionLimits); held now: {held} ({_usd(before_sym - pending)}), open orders "
                f"{_usd(pending)}, per the exposure ledger",
                self.name,
                "position_limits.symbol",
            )
        cap = Decimal(str(settings.get("safety.maxTotalExposure")))
        if gross_after > cap and gross_after > gross_before:
            doubt = (
                f", {_usd(book.in_doubt)} of it from order calls that failed without the broker's answer (a get_orders "
                "read that lists them by client_order_id, or cancel_all_orders, settles them)"
                if book.in_doubt
                else ""
            )
            return verdict(
                request,
                "deny",
                f"order {order.describe()} ({_usd(value)}) would take gross exposure to {_usd(gross_after)}, over the "
                f"limit of {_usd(cap)} (safety.maxTotalExposure); exposure now {_usd(gross_before)} from actual fills "
                f"and open orders in the exposure ledger{doubt}",
                self.name,
                "position_limits.total_exposure",
            )
        return None

    def _replacement(self, request: SafetyRequest, op: Operation, order: Order, ledger: Ledger) -> LayerVerdict | None:
        order_id = str(request.input.get("order_id") or "")
        known = ledger.order(order_id)
        if known is None:
            return failure(
                request,
                f"replace_order_by_id {order_id}: the exposure ledger has not seen that order, so the replacement "
                "cannot be valued",
                self.name,
                "position_limits.unknown_order",
            )
        qty = order.qty if order.qty is not None else Decimal(known["qty"]) if known["qty"] else None
        price = order.limit_price or (Decimal(known["limit_price"]) if known["limit_price"] else None)
        new = Order(
            op.mcp_tool or "", symbol=known["symbol"], side=known["side"], asset_class=known["asset_class"], qty=qty,
            notional=order.notional, type="limit" if price else "market", time_in_force=order.time_in_force,
            limit_price=price,
        )  # fmt: skip
        value = new.value(ledger.reference_price(new.symbol))
        if value is None:
            return failure(
                request, f"cannot value the replacement of {order_id}", self.name, "position_limits.unpriced"
            )
        cap = Decimal(str(request.settings.get("safety.maxOrderNotional")))
        if value > cap:
            return verdict(
                request,
                "deny",
                f"replacement of {order_id} ({new.describe()}) is worth {_usd(value)}, over the per-order limit of "
                f"{_usd(cap)} (safety.maxOrderNotional)",
                self.name,
                "position_limits.order_notional",
            )
        # a replacement can grow an order as much as a new one: judge the position and gross exposure after it,
        # with the open order it replaces taken out of the book
        reference = ledger.reference_price(new.symbol)
        replaces = ledger.open_value(order_id)
        return self._exposure(request, new, new.price or reference, value, ledger, replaces=replaces)

    def observe(self, request: SafetyRequest) -> LayerVerdict | None:
        if not request.tool.startswith("mcp__"):
            return None
        op = classify(request)
        if not op.trading or op.mcp_tool is None:
            return None
        payload = None if request.error is not None else payload_of(request.response)
        problem = request.error if request.error is not None else error_of(payload)
        if problem is not None:
            if op.guard is GuardClass.ORDER_ENTRY and op.order is not None and outcome_unknown(problem, payload):
                # a timeout or a dropped connection may have placed the order: count it until the broker says
                ledger = ledger_for(request.paths, request.project_dir)
                value = op.order.value(ledger.reference_price(op.order.symbol))
                ledger.record_pending(op.order, digest=call_digest(request), session=request.session_id, value=value)
            return None
        ledger = ledger_for(request.paths, request.project_dir)
        notes = ledger.record_response(op.mcp_tool, payload, digest=call_digest(request), session=request.session_id)
        if op.guard is GuardClass.ORDER_ENTRY and op.order is not None and not notes and not _has_order(payload):
            ledger.record_pending(
                op.order, digest=call_digest(request), session=request.session_id, value=op.order.value()
            )
        return None


def _has_order(payload: Any) -> bool:
    return isinstance(payload, dict) and "symbol" in payload and "id" in payload


# -- layer 16 -----------------------------------------------------------------------------------------------
JUDGEMENT_MAX_AGE = 3600.0


def _norm_symbol(symbol: Any) -> str:
    return symbol_key(symbol)


class PostExecutionVerificationLayer:
    """Layer 16 (see the module docstring)."""

    name = "post_verification"
    order = 16

    def check(self, request: SafetyRequest) -> LayerVerdict | None:
        if not request.tool.startswith("mcp__"):
            return None
        op = classify(request)
        if not op.places_order or denied_by(request) or dry_run(request):
            return None
        store = SafetyStore.for_paths(request.paths)
        params = json.dumps(request.input, sort_keys=True, default=str)
        now = request_time(request)
        with store.write() as conn:
            conn.execute("DELETE FROM judgements WHERE judged_at < ?", (now - JUDGEMENT_MAX_AGE,))
            conn.execute(
                "INSERT INTO judgements (digest, tool, session, params, judged_at) VALUES (?,?,?,?,?)",
                (call_digest(request), request.tool, request.session_id, params, now),
            )
        return None

    def observe(self, request: SafetyRequest) -> LayerVerdict | None:
        tool = request.tool
        if tool in FILE_TOOLS:
            return self._files(request)
        if not tool.startswith("mcp__") or request.error is not None:
            return None
        op = classify(request)
        if not op.places_order or op.order is None:
            return None
        payload = payload_of(request.response)
        if error_of(payload) is not None:
            return None
        problems = self._order_problems(request, op, op.order, payload)
        if not problems:
            return None
        scope = f"mcp:{op.server}"
        reason = f"post-execution check of {op.mcp_tool}: " + "; ".join(problems)
        breakers_for(request.paths).trip(scope, reason, "post_verification.mismatch", request_time(request))
        cooldown = int(request.settings.get("safety.breakerCooldownSeconds"))
        return verdict(
            request,
            "deny",
            f"{reason}. The circuit breaker for {op.server!r} is now open for {cooldown} s: no new orders; "
            "reconcile with get_orders / get_all_positions",
            self.name,
            "post_verification.mismatch",
        )

    def _order_problems(self, request: SafetyRequest, op: Operation, order: Order, payload: Any) -> list[str]:
        problems: list[str] = []
        store = SafetyStore.for_paths(request.paths)
        since = request_time(request) - JUDGEMENT_MAX_AGE
        if not store.query(
            "SELECT 1 FROM judgements WHERE digest = ? AND judged_at >= ? LIMIT 1", (call_digest(request), since)
        ):
            problems.append("it ran without a pre-trade judgement by ultramax (did the PreToolUse hook fail open?)")
        if not isinstance(payload, dict) or "symbol" not in payload:
            return problems
        if op.guard is GuardClass.ORDER_ENTRY:
            if _norm_symbol(payload.get("symbol")) != _norm_symbol(order.symbol):
                problems.append(f"symbol {payload.get('symbol')} differs from the approved {order.symbol}")
            side = str(payload.get("side") or "").lower()
            if side and side != order.side:
                problems.append(f"side {side} differs from the approved {order.side}")
        qty = _dec(payload.get("qty"))
        filled = _dec(payload.get("filled_qty")) or Decimal(0)
        price = _dec(payload.get("filled_avg_price"))
        if order.qty is not None and qty is not None and qty != order.qty:
            problems.append(f"quantity {qty} differs from the approved {order.qty}")
        if order.qty is not None and filled > order.qty:
            problems.append(f"filled {filled}, more than the approved {order.qty}")
        if price is not None and order.limit_price is not None and filled > 0:
            if order.side == "buy" and price > order.limit_price:
                problems.append(f"bought at {price}, above the limit {order.limit_price}")
            if order.side == "sell" and price < order.limit_price:
                problems.append(f"sold at {price}, below the limit {order.limit_price}")
        if price is not None and filled > 0:
            fill_value = filled * price * order.multiplier
            cap = Decimal(str(request.settings.get("safety.maxOrderNotional")))
            if fill_value > cap * FILL_TOLERANCE:
                problems.append(f"the fill is worth {_usd(fill_value)}, over the per-order limit {_usd(cap)}")
            book = ledger_for(request.paths, request.project_dir).book()
            gross_cap = Decimal(str(request.settings.get("safety.maxTotalExposure")))
            if book.gross > gross_cap * FILL_TOLERANCE:
                problems.append(
                    f"gross exposure after the fill is {_usd(book.gross)}, over the limit {_usd(gross_cap)}"
                )
            limit = _limit_for(request.settings.get("safety.positionLimits"), order.symbol)
            held = book.symbol_value(order.symbol)
            if limit is not None and held > limit * FILL_TOLERANCE:
                problems.append(f"the {order.symbol} position is now {_usd(held)}, over its limit {_usd(limit)}")
        return problems

    def _files(self, request: SafetyRequest) -> LayerVerdict | None:
        if request.error is not None:
            return None
        wanted = request.input.get("file_path") or request.input.get("notebook_path")
        response = request.response
        if not isinstance(wanted, str) or not isinstance(response, dict):
            return None
        reported = response.get("filePath") or response.get("file_path") or response.get("notebook_path")
        problem: str | None = None
        if isinstance(reported, str) and os.path.normpath(reported) != os.path.normpath(wanted):
            problem = f"{request.tool} was approved for {wanted} but wrote {reported}"
        project = request.project_dir
        if problem is None and project is not None:
            path = str(Path(request.cwd or project) / wanted)  # an absolute ``wanted`` replaces the base
            inside = _inside(os.path.normpath(path), str(project))
            if inside:
                real = os.path.realpath(path)
                if not _inside(real, os.path.realpath(project)):
                    problem = f"{request.tool} of {wanted} landed outside the project, at {real} (through a symlink)"
        if problem is None:
            return None
        breakers_for(request.paths).trip("files", problem, "post_verification.file_mismatch", request_time(request))
        return verdict(
            request,
            "deny",
            f"post-execution check: {problem}. File writes are paused (circuit breaker); check the file",
            self.name,
            "post_verification.file_mismatch",
        )


def _inside(path: str, root: str) -> bool:
    root = root.rstrip("/") or "/"
    return path == root or path.startswith(root + "/")


def _dec(value: Any) -> Decimal | None:
    from ultramax.safety.ledger import _dec as dec

    return dec(value)
