"""The exposure ledger: positions and open orders, kept from what the broker actually reported.

Nothing here trusts what the model *asked* for. Fills are taken from PostToolUse responses of the trading
server: an order tool's answer (the order object, with ``filled_qty`` and ``filled_avg_price``), order reads
(``get_orders``, ``get_order_by_id``, ``get_order_by_client_id``) that show later fills, and position reads
(``get_all_positions``, ``get_open_position``) that reconcile the book outright. An order's cumulative
``filled_qty`` is remembered, so seeing the same order twice never counts a fill twice. Cancels close the
open-order exposure they name.

The ledger lives in the safety database (``safety.db`` in ULTRAMAX_HOME, WAL): it survives restarts and is
shared by the daemon and in-process hooks. Each project keeps its own book (``project``): two projects may
trade two accounts, and one's position read must not reconcile away the other's positions. The book is
cached in memory and re-read only when the database changed (``PRAGMA data_version``), so a check costs one
pragma when nothing moved.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from ultramax.safety.mcp_risk import Order, is_option_symbol, symbol_key
from ultramax.safety.store import SafetyStore

__all__ = ["Book", "Ledger", "Position", "error_of", "in_doubt", "outcome_unknown", "payload_of"]

OPEN_STATUSES = frozenset(
    {"new", "accepted", "pending_new", "partially_filled", "accepted_for_bidding", "held", "pending_replace", "open"}
)
STALE_OPEN_ORDER_SECONDS = 24 * 3600  # an open order not heard of for a day no longer counts as exposure


@dataclass(frozen=True, slots=True)
class Position:
    symbol: str
    qty: Decimal  # signed
    last_price: Decimal | None
    multiplier: Decimal

    def value(self, price: Decimal | None = None) -> Decimal:
        px = price if price is not None else self.last_price
        return abs(self.qty) * abs(px) * self.multiplier if px is not None else Decimal(0)


@dataclass(frozen=True, slots=True)
class Book:
    """Positions and open-order exposure at one moment."""

    positions: dict[str, Position]  # by ``symbol_key``
    open_orders: dict[str, Decimal]  # symbol key -> value of the unfilled remainder of open orders
    in_doubt: Decimal = Decimal(0)  # the part of open_orders from calls that failed without the broker's answer

    def symbol_value(self, symbol: str) -> Decimal:
        pos = self.positions.get(symbol_key(symbol))
        return pos.value() if pos is not None else Decimal(0)

    @property
    def gross(self) -> Decimal:
        return sum((p.value() for p in self.positions.values()), Decimal(0)) + sum(
            self.open_orders.values(), Decimal(0)
        )

    def pending(self, symbol: str) -> Decimal:
        return self.open_orders.get(symbol_key(symbol), Decimal(0))

    def qty(self, symbol: str) -> Decimal:
        pos = self.positions.get(symbol_key(symbol))
        return pos.qty if pos is not None else Decimal(0)


# -- reading tool responses --------------------------------------------------------------------------------
def payload_of(response: Any) -> Any:
    """The data inside a tool response: JSON text parsed, MCP content blocks joined, the Alpaca envelope removed."""
    value = response
    if isinstance(value, dict) and isinstance(value.get("structuredContent"), dict):
        value = value["structuredContent"]
    elif isinstance(value, dict) and isinstance(value.get("content"), list):
        value = value["content"]
    if isinstance(value, list) and value and all(isinstance(b, dict) and b.get("type") == "text" for b in value):
        value = "".join(str(b.get("text", "")) for b in value)
    if isinstance(value, str):
        text = value.strip()
        if text[:1] in ("{", "["):
            try:
                value = json.loads(text)
            except ValueError:
                return value
    if isinstance(value, dict) and "data" in value and set(value) <= {"_alpaca_mcp_security", "data"}:
        value = value["data"]  # the Alpaca v2 security envelope
    if isinstance(value, dict) and set(value) == {"result"}:  # some servers wrap a structured result
        value = value["result"]
    return value


def error_of(payload: Any) -> str | None:
    """The broker's error in a response payload, or None if it looks like a success."""
    if isinstance(payload, dict):
        err = payload.get("error")
        if err:
            if isinstance(err, dict):
                return str(err.get("message") or err)[:300]
            return str(err)[:300]
        if "code" in payload and "message" in payload and "id" not in payload:
            return f"{payload.get('code')}: {payload.get('message')}"[:300]
        return None
    if isinstance(payload, str):
        head = payload.strip()[:200]
        if head.lower().startswith(("error", "http error", "failed")):
            return head
    return None


# what a broker says when it refused an order outright (HTTP 4xx, Alpaca's 4xxxxxxx codes, its wording); any
# other failure -- a timeout, a 5xx, a dropped connection, an exception in the server -- leaves it unknown
_REJECTED = re.compile(
    r"\b(?:4\d\d|4\d{7})\b|insufficient|rejected|invalid|forbidden|not allowed|not permitted|not found|"
    r"unprocessable|not tradable|doesn't want to proceed|user rejected",
    re.IGNORECASE,
)


# ...but a timeout says nothing of the kind (``in_doubt``), even when it quotes a number such as port=443
_IN_DOUBT = re.compile(
    r"timed? ?out|timeout|may have been|connection (?:reset|aborted|closed|lost)|remote ?disconnected|broken pipe|"
    r"internal server error|bad gateway|service unavailable|temporarily unavailable|\b(?:status|http)[ _:=]*5\d\d\b",
    re.IGNORECASE,
)


def outcome_unknown(problem: str, payload: Any) -> bool:
    """Whether an order call that failed with ``problem`` may still have placed the order."""
    if isinstance(payload, dict) and isinstance(payload.get("error"), dict) and payload["error"].get("timeout"):
        return True
    return in_doubt(problem) or _REJECTED.search(problem) is None


def in_doubt(problem: str) -> bool:
    """Whether ``problem`` is a timeout or a lost connection: the broker may have acted and not said so."""
    return _IN_DOUBT.search(problem) is not None


def _dec(value: Any) -> Decimal | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        result = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return result if result.is_finite() else None


def _multiplier(asset_class: str | None, symbol: str) -> Decimal:
    if asset_class in ("us_option", "option") or is_option_symbol(symbol):
        return Decimal(100)
    return Decimal(1)


def _looks_like_order(obj: Any) -> bool:
    return isinstance(obj, dict) and isinstance(obj.get("symbol"), str) and "side" in obj and "id" in obj


class Ledger:
    """Positions and orders from actual broker responses, in the safety database."""

    def __init__(self, store: SafetyStore, clock: Any = time.time, *, project: str = "") -> None:
        self.store = store
        self.clock = clock
        self.project = project  # rows of project '' (booked before books were per project) count in every book
        self._lock = threading.Lock()
        self._book: Book | None = None
        self._key: tuple[tuple[int, int], int] | None = None
        self._epoch = 0  # bumped by this process's own writes (which do not change data_version)

    # -- reading ------------------------------------------------------------------------------------------
    def book(self) -> Book:
        """The current book (cached until the database changes)."""
        version = self.store.data_version()
        with self._lock:
            key = (version, self._epoch)
            if self._book is not None and self._key == key:
                return self._book
        book = self._load()
        with self._lock:
            self._book, self._key = book, key  # a write during the load changed the epoch: no stale hit
        return book

    def _invalidate(self) -> None:
        with self._lock:
            self._epoch += 1
            self._book = None

    def _load(self) -> Book:
        positions: dict[str, Position] = {}
        # the last price known per symbol, flat ones too: an open market order on a symbol now flat is valued at it
        prices: dict[str, Decimal] = {}
        for r in self.store.query(
            "SELECT symbol, price FROM fills WHERE project IN (?, '') AND id IN "
            "(SELECT MAX(id) FROM fills WHERE project IN (?, '') GROUP BY symbol)",
            (self.project, self.project),
        ):
            price = _dec(r["price"])
            if price is not None:
                prices[symbol_key(r["symbol"])] = price
        for r in self.store.query(
            "SELECT * FROM positions WHERE project IN (?, '') ORDER BY updated_at", (self.project,)
        ):
            price = _dec(r["last_price"])
            if price is not None:
                prices[symbol_key(r["symbol"])] = price
            if Decimal(r["qty"]) == 0:
                continue
            key = symbol_key(r["symbol"])  # rows booked before keys were canonical fold into one position
            pos = positions.get(key)
            qty = Decimal(r["qty"]) + (pos.qty if pos is not None else Decimal(0))
            positions[key] = Position(key, qty, _dec(r["last_price"]), Decimal(str(r["multiplier"])))
        cutoff = self.clock() - STALE_OPEN_ORDER_SECONDS
        open_orders: dict[str, Decimal] = {}
        rows = self.store.query(
            f"SELECT * FROM orders WHERE status IN ({','.join('?' * len(OPEN_STATUSES))}) AND updated_at >= ? "
            "AND project IN (?, '')",
            (*sorted(OPEN_STATUSES), cutoff, self.project),
        )
        in_doubt = Decimal(0)
        for r in rows:
            value = self._remaining_value(r, prices)
            if value:
                key = symbol_key(r["symbol"])
                open_orders[key] = open_orders.get(key, Decimal(0)) + value
                if str(r["order_id"]).startswith("pending:"):
                    in_doubt += value
        return Book(positions, open_orders, in_doubt)

    @staticmethod
    def _remaining_value(row: Any, prices: Mapping[str, Decimal]) -> Decimal:
        filled = _dec(row["filled_qty"]) or Decimal(0)
        mult = Decimal(str(row["multiplier"]))
        qty = _dec(row["qty"])
        price = _dec(row["limit_price"])
        if price is None:
            price = prices.get(symbol_key(row["symbol"]))
        if qty is not None and price is not None:
            return max(qty - filled, Decimal(0)) * abs(price) * mult
        notional = _dec(row["notional"])
        if notional is not None:
            done = filled * (_dec(row["filled_avg_price"]) or Decimal(0)) * mult
            return max(notional - done, Decimal(0))
        return Decimal(0)

    def reference_price(self, symbol: str) -> Decimal | None:
        """The last price the broker reported for ``symbol`` (a fill or a position read), if any."""
        symbol = symbol_key(symbol)
        pos = self.book().positions.get(symbol)
        if pos is not None and pos.last_price is not None:
            return pos.last_price
        rows = self.store.query(
            "SELECT last_price FROM positions WHERE symbol = ? AND project IN (?, '') AND last_price IS NOT NULL "
            "UNION ALL SELECT price FROM (SELECT price FROM fills WHERE symbol = ? AND project IN (?, '') "
            "ORDER BY ts DESC LIMIT 1)",
            (symbol, self.project, symbol, self.project),
        )
        return _dec(rows[0][0]) if rows else None

    def executed_recently(self, digest: str, seconds: float) -> float | None:
        """When an order with this call digest was last executed, if within ``seconds``."""
        rows = self.store.query(
            "SELECT MAX(created_at) FROM orders WHERE digest = ? AND created_at >= ? AND status NOT IN "
            "('rejected', 'canceled', 'expired')",
            (digest, self.clock() - seconds),
        )
        value = rows[0][0] if rows else None
        return float(value) if value is not None else None

    def open_value(self, order_id: str) -> Decimal:
        """What an open order of this book adds to its exposure now (0 if it is not open)."""
        row = self.order(order_id)
        if row is None or row["status"] not in OPEN_STATUSES:
            return Decimal(0)
        price = self.reference_price(row["symbol"])
        return self._remaining_value(row, {symbol_key(row["symbol"]): price} if price is not None else {})

    def order(self, order_id: str) -> dict[str, Any] | None:
        rows = self.store.query(
            "SELECT * FROM orders WHERE order_id = ? AND project IN (?, '')", (order_id, self.project)
        )
        return dict(rows[0]) if rows else None

    # -- writing ------------------------------------------------------------------------------------------
    def record_order(
        self,
        obj: Mapping[str, Any],
        *,
        tool: str,
        digest: str | None = None,
        session: str | None = None,
        source: str = "order_response",
    ) -> Decimal:
        """Store an order object the broker returned; book any new fill. Returns the newly filled quantity."""
        symbol = symbol_key(obj.get("symbol"))
        side = str(obj.get("side") or "").lower()
        if not symbol or side not in ("buy", "sell"):
            return Decimal(0)
        order_id = str(obj.get("id") or obj.get("client_order_id") or f"anon:{digest}:{self.clock()}")
        asset = str(obj.get("asset_class") or "")
        mult = _multiplier(asset or None, symbol)
        cum = _dec(obj.get("filled_qty")) or Decimal(0)
        price = _dec(obj.get("filled_avg_price"))
        status = str(obj.get("status") or "new").lower()
        now = self.clock()
        with self.store.write(durable=True) as conn:
            row = conn.execute("SELECT filled_qty FROM orders WHERE order_id = ?", (order_id,)).fetchone()
            before = _dec(row["filled_qty"]) if row else Decimal(0)
            delta = cum - (before or Decimal(0))
            if row is None and obj.get("client_order_id"):
                # the broker now reports an order a failed call left in doubt: it replaces the placeholder
                conn.execute(
                    "DELETE FROM orders WHERE order_id LIKE 'pending:%' AND client_order_id = ? AND project = ?",
                    (str(obj.get("client_order_id")), self.project),
                )
            if row is None:
                conn.execute(
                    "INSERT INTO orders (order_id, client_order_id, tool, symbol, side, asset_class, multiplier, qty, "
                    "notional, limit_price, status, filled_qty, filled_avg_price, digest, session, created_at, "
                    "updated_at, project) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        order_id, obj.get("client_order_id"), tool, symbol, side, asset or "us_equity", float(mult),
                        _s(obj.get("qty")), _s(obj.get("notional")), _s(obj.get("limit_price")), status, str(cum),
                        _s(price), digest, session, now, now, self.project,
                    ),
                )  # fmt: skip
            else:
                conn.execute(
                    "UPDATE orders SET status = ?, filled_qty = ?, filled_avg_price = COALESCE(?, filled_avg_price), "
                    "updated_at = ? WHERE order_id = ?",
                    (status, str(max(cum, before or Decimal(0))), _s(price), now, order_id),
                )
            if delta > 0 and price is not None:
                conn.execute(
                    "INSERT INTO fills (order_id, symbol, side, qty, price, multiplier, ts, source, project) "
                    "VALUES (?,?,?,?,?,?,?,?,?)",
                    (order_id, symbol, side, str(delta), str(price), float(mult), now, source, self.project),
                )
                signed = delta if side == "buy" else -delta
                current = conn.execute(
                    "SELECT qty, read_at FROM positions WHERE project = ? AND symbol = ?", (self.project, symbol)
                ).fetchone()
                if current is not None and _filled_before(obj, current["read_at"]):
                    signed = Decimal(
                        0
                    )  # the position read already holds this fill: booking it again would count it twice
                qty = (Decimal(current["qty"]) if current else Decimal(0)) + signed
                conn.execute(
                    "INSERT INTO positions (project, symbol, qty, last_price, multiplier, updated_at) "
                    "VALUES (?,?,?,?,?,?) ON CONFLICT(project, symbol) DO UPDATE SET qty=excluded.qty, "
                    "last_price=excluded.last_price, multiplier=excluded.multiplier, updated_at=excluded.updated_at",
                    (self.project, symbol, str(qty), str(price), float(mult), now),
                )
        self._invalidate()
        return delta if delta > 0 else Decimal(0)

    def record_positions(self, items: Iterable[Mapping[str, Any]], *, complete: bool) -> int:
        """Reconcile with a position read; ``complete`` (get_all_positions) also zeroes symbols not listed."""
        now = self.clock()
        seen: set[str] = set()
        with self.store.write(durable=True) as conn:
            for item in items:
                symbol = symbol_key(item.get("symbol"))
                qty = _dec(item.get("qty"))
                if not symbol or qty is None:
                    continue
                if str(item.get("side") or "").lower() == "short" and qty > 0:
                    qty = -qty
                price = _dec(item.get("current_price")) or _dec(item.get("avg_entry_price"))
                mult = _multiplier(str(item.get("asset_class") or "") or None, symbol)
                conn.execute(
                    "INSERT INTO positions (project, symbol, qty, last_price, multiplier, updated_at, read_at) "
                    "VALUES (?,?,?,?,?,?,?) ON CONFLICT(project, symbol) DO UPDATE SET qty=excluded.qty, "
                    "last_price=COALESCE(excluded.last_price, positions.last_price), "
                    "multiplier=excluded.multiplier, updated_at=excluded.updated_at, read_at=excluded.read_at",
                    (self.project, symbol, str(qty), _s(price), float(mult), now, now),
                )
                seen.add(symbol)
            if complete:
                # the read is the whole account: it replaces this book and the unowned rows from before
                # ``NOT IN (NULL)`` is never true: an empty account must zero the book, not leave it as it was
                unlisted = f" AND symbol NOT IN ({','.join('?' * len(seen))})" if seen else ""
                conn.execute(
                    f"UPDATE positions SET qty = '0', updated_at = ?, read_at = ? WHERE project = ?{unlisted}",
                    (now, now, self.project, *sorted(seen)),
                )
                if self.project:
                    conn.execute("UPDATE positions SET qty = '0', updated_at = ? WHERE project = ''", (now,))
        self._invalidate()
        return len(seen)

    def mark_canceled(self, order_id: str | None) -> None:
        """A cancel went through: one order (or, with None, every open order) no longer adds exposure."""
        now = self.clock()
        statuses = sorted(OPEN_STATUSES)
        with self.store.write(durable=True) as conn:
            if order_id is None:
                conn.execute(
                    "UPDATE orders SET status='canceled', updated_at=? "
                    f"WHERE status IN ({','.join('?' * len(statuses))}) AND project IN (?, '')",
                    (now, *statuses, self.project),
                )
            else:
                conn.execute(
                    "UPDATE orders SET status='canceled', updated_at=? WHERE order_id=? AND project IN (?, '')",
                    (now, order_id, self.project),
                )
        self._invalidate()

    def record_response(self, tool: str, payload: Any, *, digest: str | None, session: str | None) -> list[str]:
        """Book whatever a trading tool's response reports; returns a line per thing recorded."""
        notes: list[str] = []
        if tool in ("get_all_positions", "get_open_position"):
            items = payload if isinstance(payload, list) else [payload] if isinstance(payload, dict) else []
            # only a list is the whole account: text such as a notice must not zero the book
            complete = tool == "get_all_positions" and isinstance(payload, list)
            n = self.record_positions([i for i in items if isinstance(i, dict)], complete=complete)
            notes.append(f"reconciled {n} position(s)")
            return notes
        if tool in {"cancel_order_by_id", "cancel_order"}:
            oid = payload.get("id") if isinstance(payload, dict) else None
            if isinstance(oid, str) and oid:
                self.mark_canceled(oid)
            return notes
        if tool == "cancel_all_orders":
            self.mark_canceled(None)
            return ["open orders canceled"]
        objects: list[Mapping[str, Any]] = []
        if _looks_like_order(payload):
            objects.append(payload)
        elif isinstance(payload, list):
            for item in payload:
                if _looks_like_order(item):
                    objects.append(item)
                elif isinstance(item, dict) and _looks_like_order(item.get("body")):
                    objects.append(item["body"])  # close_all_positions: [{symbol, status, body: order}]
        elif isinstance(payload, dict) and isinstance(payload.get("orders"), list):
            objects.extend(o for o in payload["orders"] if _looks_like_order(o))
        for obj in objects:
            filled = self.record_order(obj, tool=tool, digest=digest if len(objects) == 1 else None, session=session)
            if filled:
                notes.append(f"fill {obj.get('side')} {filled} {obj.get('symbol')} @ {obj.get('filled_avg_price')}")
        return notes

    def record_pending(self, order: Order, *, digest: str, session: str | None, value: Decimal | None) -> None:
        """An order call ran but its answer showed no order (e.g. a timeout): keep its exposure as open."""
        now = self.clock()
        with self.store.write(durable=True) as conn:
            conn.execute(
                "INSERT OR REPLACE INTO orders (order_id, client_order_id, tool, symbol, side, asset_class, "
                "multiplier, qty, notional, limit_price, status, filled_qty, digest, session, created_at, updated_at, "
                "project) VALUES (?,?,?,?,?,?,?,?,?,?,'open','0',?,?,?,?,?)",
                (
                    f"pending:{digest}", order.client_order_id, order.tool, symbol_key(order.symbol), order.side,
                    order.asset_class, float(order.multiplier), _s(order.qty),
                    _s(order.notional if order.notional is not None else value if order.limit_price is None else None),
                    _s(order.limit_price), digest, session, now, now, self.project,
                ),
            )  # fmt: skip
        self._invalidate()


READ_SKEW_SECONDS = 5.0  # the broker's clock and ours may differ: only a fill clearly before a read is in it


def _filled_before(obj: Mapping[str, Any], read_at: float | None) -> bool:
    """Whether every fill the order object reports happened before a position read at ``read_at``: its last
    change (``updated_at``, else ``filled_at``), by the broker's clock, is clearly earlier."""
    if read_at is None:
        return False
    stamp = obj.get("updated_at") or obj.get("filled_at")
    if not isinstance(stamp, str) or not stamp:
        return False
    try:
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return False
    if when.tzinfo is None:
        return False
    return when.timestamp() < float(read_at) - READ_SKEW_SECONDS


def _s(value: Any) -> str | None:
    return None if value is None else str(value)
