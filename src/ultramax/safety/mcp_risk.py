"""What a tool call *is*, for the safety layers: its operation names, risk class and, for orders, the order.

MCP tools are named ``mcp__<server>__<tool>`` by Claude Code. For known servers an explicit table gives each
tool a guard class -- MCP annotations cannot be trusted for this: the Alpaca server (v2.4) leaves 58 of its 72
tools unannotated, ``cancel_*``/``close_*``/``update_account_config`` among them. Trading servers are the
ones named in ``safety.tradingServers`` (default ``alpaca``); they get the Alpaca table. Tools of a known
server that the table does not list are classified by their verb (``get_``/``list_`` read, anything else is
an unlisted write).

Every call gets operation names the mode and settings patterns match (``fnmatch``): the Claude Code tool
name, the bare MCP tool name, a canonical name (``trade:<tool>`` on trading servers, the seed's routing
pattern ``trade:*``) and the seed's operation words (``execute_trade``, ``market_order``, ``limit_order``,
``cancel_order``, ``modify_risk_limits``, ``trading_operation``, ``financial_transaction``).

Orders are parsed the way the broker will read them: every number is a string in the Alpaca v2 schema, so
amounts are ``Decimal``; NaN, infinities, negatives, both ``qty`` and ``notional``, or neither, are errors.

``KNOWN_SERVERS`` lets the unknown-MCP-tool default (in the rule packs) yield to this table.
"""

from __future__ import annotations

import enum
import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from ultramax.safety.engine import SafetyRequest

__all__ = [
    "ALPACA_TOOLS",
    "GATEWAY_NAME",
    "KNOWN_SERVERS",
    "MARKET_DATA_SERVERS",
    "ROUTING_RULES",
    "GuardClass",
    "Operation",
    "Order",
    "OrderError",
    "RoutingRule",
    "classify",
    "is_option_symbol",
    "matches",
    "parse_mcp_name",
    "requires_safety_check",
    "symbol_key",
]


class GuardClass(enum.StrEnum):
    ORDER_ENTRY = "order_entry"  # opens or adds exposure
    ORDER_MODIFY = "order_modify"  # replaces an open order
    RISK_REDUCING = "risk_reducing"  # cancels, closes
    PRIVILEGED = "privileged"  # changes the account itself: never through the agent
    HARMLESS_WRITE = "harmless_write"  # watchlists: audit only
    READ = "read"
    UNLISTED_WRITE = "unlisted_write"  # a known server's tool the table does not know


RISK_OF_CLASS: dict[GuardClass, float] = {
    GuardClass.READ: 0.0,
    GuardClass.HARMLESS_WRITE: 0.1,
    GuardClass.RISK_REDUCING: 0.3,
    GuardClass.ORDER_MODIFY: 0.5,
    GuardClass.ORDER_ENTRY: 0.6,
    GuardClass.UNLISTED_WRITE: 0.7,
    GuardClass.PRIVILEGED: 1.0,
}

TRADING_CLASSES = frozenset(
    {GuardClass.ORDER_ENTRY, GuardClass.ORDER_MODIFY, GuardClass.RISK_REDUCING, GuardClass.PRIVILEGED}
)


@dataclass(frozen=True, slots=True)
class ToolSpec:
    guard: GuardClass
    asset_class: str | None = None  # for order entry: us_equity | crypto | option
    note: str = ""


# The Alpaca MCP server's state-changing tools (alpaca-mcp-server 2.4.0; reference §1.3). Reads (get_*) and
# the docs tools are READ by the verb rule below.
ALPACA_TOOLS: dict[str, ToolSpec] = {
    "place_stock_order": ToolSpec(GuardClass.ORDER_ENTRY, "us_equity"),
    "place_crypto_order": ToolSpec(GuardClass.ORDER_ENTRY, "crypto"),
    "place_option_order": ToolSpec(GuardClass.ORDER_ENTRY, "option"),
    "exercise_options_position": ToolSpec(GuardClass.ORDER_ENTRY, "option", "creates the underlying position"),
    "create_locate": ToolSpec(GuardClass.ORDER_ENTRY, "us_equity", "short-sale locate"),
    "replace_order_by_id": ToolSpec(GuardClass.ORDER_MODIFY),
    "cancel_order_by_id": ToolSpec(GuardClass.RISK_REDUCING),
    "cancel_all_orders": ToolSpec(GuardClass.RISK_REDUCING),
    "close_position": ToolSpec(GuardClass.RISK_REDUCING, note="queues until the next open when the market is closed"),
    "close_all_positions": ToolSpec(GuardClass.RISK_REDUCING, note="liquidates every position"),
    "do_not_exercise_options_position": ToolSpec(GuardClass.RISK_REDUCING),
    "update_account_config": ToolSpec(
        GuardClass.PRIVILEGED, note="can flip the account's own kill switch (suspend_trade) and margin settings"
    ),
    "create_watchlist": ToolSpec(GuardClass.HARMLESS_WRITE),
    "update_watchlist_by_id": ToolSpec(GuardClass.HARMLESS_WRITE),
    "delete_watchlist_by_id": ToolSpec(GuardClass.HARMLESS_WRITE),
    "add_asset_to_watchlist_by_id": ToolSpec(GuardClass.HARMLESS_WRITE),
    "remove_asset_from_watchlist_by_id": ToolSpec(GuardClass.HARMLESS_WRITE),
    # v1 names (hand-written tools before the v2 rewrite) -- same classes
    "cancel_order": ToolSpec(GuardClass.RISK_REDUCING),
    "close_all_position": ToolSpec(GuardClass.RISK_REDUCING),
}

# Massive (ex-Polygon): read-only market data; rate-limited only.
MARKET_DATA_SERVERS = frozenset({"massive", "polygon"})

KNOWN_SERVERS: frozenset[str] = frozenset({"alpaca", *MARKET_DATA_SERVERS})
"""Server names whose tools this module classifies (plus any name in ``safety.tradingServers``)."""

_READ_VERBS = ("get_", "list_", "search_", "fetch_", "query_", "call_api", "describe_")

_MCP_NAME = re.compile(r"^mcp__(.+?)__(.+)$")


GATEWAY_NAME = "ultramax"
"""The name ``ultramax mcp activate`` registers the gateway under: its tools are ``mcp__ultramax__<server>__<tool>``."""


def parse_mcp_name(tool: str) -> tuple[str, str] | None:
    """``mcp__alpaca__place_stock_order`` -> ``("alpaca", "place_stock_order")``; None for other tools. A tool
    reached through ultramax's gateway (``mcp__ultramax__alpaca__place_stock_order``) is the upstream server's,
    so the trading guards and the user's ``mcp__alpaca__*`` rules see it as they would a direct call."""
    m = _MCP_NAME.match(tool)
    if not m:
        return None
    server, name = m.group(1), m.group(2)
    if server == GATEWAY_NAME and "__" in name.strip("_"):
        upstream, _, upstream_tool = name.partition("__")
        if upstream and upstream_tool:
            return upstream, upstream_tool
    return server, name


# -- the seed's routing rule ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RoutingRule:
    """A routing rule of the seed's MCP config (section 2): operations matching ``pattern`` go to ``servers``."""

    pattern: str
    servers: tuple[str, ...]
    require_safety_check: bool = False


ROUTING_RULES: tuple[RoutingRule, ...] = (
    RoutingRule("file:*", ("filesystem", "filesystem-backup")),
    RoutingRule("github:*", ("github",)),
    RoutingRule("trade:*", ("alpaca",), require_safety_check=True),
)


def requires_safety_check(operation: str, server: str | None = None) -> bool:
    """Whether the gateway must run the safety engine in the call path (fail-closed) for this call.

    True for an operation matching a rule with ``require_safety_check`` (``trade:*``) and for any call to a
    server such a rule routes to.
    """
    return any(
        rule.require_safety_check and (fnmatch.fnmatchcase(operation, rule.pattern) or server in rule.servers)
        for rule in ROUTING_RULES
    )


# -- orders -------------------------------------------------------------------------------------------------
_SYMBOL_NOISE = re.compile(r"[^A-Z0-9]")


_OCC_SYMBOL = re.compile(r"[A-Z]{1,6}\d?\d{6}[CP]\d{8}")  # root, YYMMDD, call/put, strike x 1000


def is_option_symbol(symbol: object) -> bool:
    """Whether ``symbol`` is an OCC option contract (``AAPL261218C00190000``, also with OSI padding spaces)."""
    return _OCC_SYMBOL.fullmatch(symbol_key(symbol)) is not None


def symbol_key(symbol: object) -> str:
    """The one spelling a symbol is booked and limited under: Alpaca orders say ``BTC/USD`` and its positions
    ``BTCUSD``, share classes come as ``BRK.B`` or ``BRK/B``; all of them must meet the same position."""
    return _SYMBOL_NOISE.sub("", str(symbol or "").upper())


MAX_MAGNITUDE = 12  # no quantity, price or notional reaches 10**13


class OrderError(ValueError):
    """An order's arguments are not what the broker would accept as meant."""


@dataclass(frozen=True, slots=True)
class Order:
    """An order (or a change of one) as the guard values it."""

    tool: str
    symbol: str
    side: str  # buy | sell ("" when unknown, e.g. a replace)
    asset_class: str  # us_equity | crypto | option
    qty: Decimal | None
    notional: Decimal | None
    type: str
    time_in_force: str
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    extended_hours: bool = False
    position_intent: str | None = None
    client_order_id: str | None = None
    legs: tuple[tuple[str, Decimal], ...] = ()

    @property
    def multiplier(self) -> Decimal:
        # an OCC contract symbol is an option whichever tool sends it: the broker's order endpoint reads the symbol
        return Decimal(100) if self.asset_class == "option" or is_option_symbol(self.symbol) else Decimal(1)

    @property
    def price(self) -> Decimal | None:
        """The price the order states (limit, else stop), if any."""
        return self.limit_price if self.limit_price is not None else self.stop_price

    def value(self, reference: Decimal | None = None) -> Decimal | None:
        """Order value in USD: notional, or qty x price x multiplier; None if it cannot be priced."""
        if self.notional is not None:
            return self.notional
        price = self.price if self.price is not None else reference
        if self.qty is None or price is None:
            return None
        return self.qty * abs(price) * self.multiplier

    def signed_qty(self, price: Decimal | None) -> Decimal | None:
        """Units this order adds to the position (sells negative); notional orders need ``price``."""
        qty = self.qty
        if qty is None and self.notional is not None and price:
            qty = self.notional / abs(price)
        if qty is None:
            return None
        return -qty if self.side == "sell" else qty

    def describe(self) -> str:
        amount = f"${self.notional}" if self.notional is not None else f"{self.qty}"
        px = f" @ {self.limit_price}" if self.limit_price is not None else ""
        return f"{self.side} {amount} {self.symbol} {self.type}{px}".strip()


def _decimal(args: Mapping[str, Any], key: str, *, positive: bool = True) -> Decimal | None:
    raw = args.get(key)
    if raw is None or raw == "":
        return None
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise OrderError(f"{key} must be a number in a string, got {type(raw).__name__}")
    try:
        value = Decimal(str(raw).strip())
    except InvalidOperation:
        raise OrderError(f"{key}={raw!r} is not a number") from None
    if not value.is_finite():
        raise OrderError(f"{key}={raw!r} is not a finite number")
    if value and value.adjusted() > MAX_MAGNITUDE:  # past any real order; its value would overflow Decimal's range
        raise OrderError(f"{key}={raw!r} is out of range (at most 1e{MAX_MAGNITUDE})")
    if positive and value <= 0:
        raise OrderError(f"{key}={raw!r} must be greater than zero")
    return value


def _text(args: Mapping[str, Any], key: str, default: str = "") -> str:
    raw = args.get(key, default)
    if raw is None:
        return default
    if not isinstance(raw, str):
        raise OrderError(f"{key} must be a string, got {type(raw).__name__}")
    return raw.strip()


def parse_order(tool: str, spec: ToolSpec, args: Mapping[str, Any]) -> Order | None:
    """The order an ORDER_ENTRY/ORDER_MODIFY call carries (None for tools that do not carry one)."""
    asset = spec.asset_class or "us_equity"
    if tool == "replace_order_by_id":
        if not _text(args, "order_id"):
            raise OrderError("order_id is required")
        return Order(
            tool, symbol="", side="", asset_class=asset, qty=_decimal(args, "qty"),
            notional=_decimal(args, "notional"), type="replace", time_in_force=_text(args, "time_in_force"),
            limit_price=_decimal(args, "limit_price"), stop_price=_decimal(args, "stop_price"),
            client_order_id=_text(args, "client_order_id") or None,
        )  # fmt: skip
    if tool not in ("place_stock_order", "place_crypto_order", "place_option_order", "create_locate"):
        return None
    qty = _decimal(args, "qty") if "qty" in args else _decimal(args, "quantity")  # v1 called it quantity
    notional = _decimal(args, "notional")
    if qty is not None and notional is not None:
        raise OrderError("qty and notional are mutually exclusive")
    legs: list[tuple[str, Decimal]] = []
    raw_legs = args.get("legs")
    if raw_legs:
        if not isinstance(raw_legs, list) or len(raw_legs) > 4:
            raise OrderError("legs must be a list of at most 4 legs")
        for leg in raw_legs:
            if not isinstance(leg, dict) or not isinstance(leg.get("symbol"), str):
                raise OrderError("each leg needs a symbol")
            legs.append((leg["symbol"], _decimal(leg, "ratio_qty") or Decimal(1)))
    symbol = _text(args, "symbol") or (legs[0][0] if legs else "")
    if not symbol:
        raise OrderError("symbol is required")
    side = _text(args, "side").lower()
    intent = _text(args, "position_intent").lower() or None
    if not side and intent:
        side = "buy" if intent.startswith("buy") else "sell"
    if not side and legs:
        side = "buy"
    if tool == "create_locate":
        side = "sell"
    if side not in ("buy", "sell"):
        raise OrderError(f"side must be buy or sell, got {side or 'nothing'!r}")
    if qty is None and notional is None:
        raise OrderError("one of qty or notional is required")
    kind = (
        _text(args, "type") or _text(args, "order_type") or ("limit" if tool == "create_locate" else "market")
    ).lower()
    limit = _decimal(args, "limit_price", positive=not legs)  # a multi-leg net credit is negative
    if kind in ("limit", "stop_limit") and limit is None:
        raise OrderError(f"a {kind} order needs limit_price")
    tif_default = "gtc" if asset == "crypto" else "day"
    extended = args.get("extended_hours", False)
    if not isinstance(extended, bool):
        raise OrderError("extended_hours must be true or false")
    return Order(
        tool, symbol=symbol.upper(), side=side, asset_class=asset, qty=qty, notional=notional, type=kind,
        time_in_force=(_text(args, "time_in_force") or tif_default).lower(), limit_price=limit,
        stop_price=_decimal(args, "stop_price"), extended_hours=extended, position_intent=intent,
        client_order_id=_text(args, "client_order_id") or None, legs=tuple(legs),
    )  # fmt: skip


# -- classification ---------------------------------------------------------------------------------------
@dataclass(slots=True)
class Operation:
    """A tool call, classified once per request (``classify`` caches it in ``request.metadata``)."""

    tool: str
    names: tuple[str, ...]  # every name mode/settings patterns may match
    server: str | None = None
    mcp_tool: str | None = None
    guard: GuardClass | None = None  # None: not a tool of a known server
    trading: bool = False  # a tool of a trading server
    spec: ToolSpec | None = None
    order: Order | None = None
    order_error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def canonical(self) -> str:
        return self.names[0]

    @property
    def risk(self) -> float:
        return RISK_OF_CLASS[self.guard] if self.guard is not None else 0.0

    @property
    def writes(self) -> bool:
        return self.guard not in (None, GuardClass.READ)

    @property
    def places_order(self) -> bool:
        return self.trading and self.guard in (GuardClass.ORDER_ENTRY, GuardClass.ORDER_MODIFY)


_CACHE_KEY = "ultramax.operation"
_BUILTIN: dict[str, Operation] = {}


def classify(request: SafetyRequest) -> Operation:
    """The request's operation (computed once per request)."""
    cached = request.metadata.get(_CACHE_KEY)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    op = _classify(request)
    request.metadata[_CACHE_KEY] = op
    return op


def _classify(request: SafetyRequest) -> Operation:
    tool = request.tool
    parsed = parse_mcp_name(tool) if tool.startswith("mcp__") else None
    if parsed is None:
        op = _BUILTIN.get(tool)
        if op is None:
            op = Operation(tool, (tool,))
            if len(_BUILTIN) < 512:
                _BUILTIN[tool] = op
        return op
    server, name = parsed
    trading_servers = request.settings.get("safety.tradingServers")
    if server in trading_servers:
        spec = ALPACA_TOOLS.get(name) or _by_verb(name)
        op = Operation(tool, _trade_names(tool, name, spec), server, name, spec.guard, True, spec)
        if spec.guard in (GuardClass.ORDER_ENTRY, GuardClass.ORDER_MODIFY):
            try:
                op.order = parse_order(name, spec, request.input)
            except OrderError as exc:
                op.order_error = str(exc)
            if op.order is not None:
                op.names = (*op.names, f"{op.order.type}_order")
        return op
    if server in MARKET_DATA_SERVERS:
        return Operation(tool, (tool, name, f"mcp:{server}:{name}"), server, name, GuardClass.READ, False)
    return Operation(tool, (tool, name, f"mcp:{server}:{name}"), server, name)


def _by_verb(name: str) -> ToolSpec:
    if name.startswith(_READ_VERBS) or name in ("search_alpaca_docs", "fetch_alpaca_doc"):
        return ToolSpec(GuardClass.READ)
    return ToolSpec(GuardClass.UNLISTED_WRITE)


def _trade_names(tool: str, name: str, spec: ToolSpec) -> tuple[str, ...]:
    names = [f"trade:{name}", tool, name]
    guard = spec.guard
    if guard in TRADING_CLASSES:
        names += ["trading_operation", "financial_transaction"]
    if guard is GuardClass.ORDER_ENTRY:
        names.append("execute_trade")
    elif guard is GuardClass.ORDER_MODIFY:
        names += ["execute_trade", "modify_order"]
    elif guard is GuardClass.RISK_REDUCING:
        names.append("cancel_order" if name.startswith("cancel") else "close_position")
    elif guard is GuardClass.PRIVILEGED:
        names.append("modify_risk_limits")
    return tuple(names)


def matches(names: Iterable[str], patterns: Iterable[str]) -> str | None:
    """The first pattern matching any of ``names`` (case-sensitive globs), or None."""
    names = tuple(names)
    for pattern in patterns:
        for name in names:
            if name == pattern or fnmatch.fnmatchcase(name, pattern):
                return pattern
    return None
