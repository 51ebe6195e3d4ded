"""Layer 8, market hours: orders only when the market they go to is open, from real exchange calendars.

Sessions, holidays and early closes come from ``exchange_calendars`` (``safety.exchange``, default XNYS),
never from fixed UTC hours: 2026-11-26 (Thanksgiving) is closed, 2026-11-27 closes at 13:00 New York time,
DST is the calendar's business. Crypto orders (``place_crypto_order``) use the ``24/7`` calendar. Stock
orders may also run in pre-market (04:00) and after-hours (until 20:00, or four hours after an early
close) when ``safety.extendedHours`` is on *and* the order qualifies as Alpaca requires (limit,
``extended_hours=true``, time in force day or gtc). Auction orders (``opg``/``cls``) are accepted while
closed -- they wait for the auction. Risk-reducing calls (cancel, close) are never held back: a close while
the market is closed queues for the open. An order while closed is denied in trading mode and put to the
user elsewhere (the broker would queue it for the open). The time is ``SafetyRequest.now`` when given.

``exchange_calendars`` costs ~0.5 s to import, so it is imported on the first order judged, not before;
calendars are built for a window around the date asked and cached.
"""

from __future__ import annotations

import threading
import warnings
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from ultramax.safety.engine import LayerVerdict, SafetyRequest
from ultramax.safety.layers_core import failure, verdict
from ultramax.safety.mcp_risk import GuardClass, Order, classify

__all__ = ["MarketClock", "MarketHoursLayer", "MarketStatus"]

WINDOW_DAYS = 62  # a calendar covers the month asked about and two months either side


class MarketStatus:
    """Whether the market is open at an instant, and what to tell the user if not."""

    __slots__ = ("detail", "next_open", "open", "session")

    def __init__(self, open_: bool, session: str, detail: str, next_open: datetime | None) -> None:
        self.open = open_
        self.session = session  # regular | pre | post | closed | 24/7
        self.detail = detail
        self.next_open = next_open


class MarketClock:
    """Exchange calendars, built lazily and cached per (exchange, month window)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._query_lock = threading.Lock()
        self._calendars: dict[tuple[str, int, int], Any] = {}

    def calendar(self, code: str, when: datetime) -> Any:
        key = (code, when.year, when.month)
        with self._lock:
            cal = self._calendars.get(key)
        if cal is not None:
            return cal
        import exchange_calendars as xcals  # ~0.5 s: only when an order is judged

        start = (when - timedelta(days=WINDOW_DAYS)).date().isoformat()
        end = (when + timedelta(days=WINDOW_DAYS)).date().isoformat()
        cal = xcals.get_calendar(code, start=start, end=end)
        with self._lock:
            if len(self._calendars) > 32:
                self._calendars.clear()
            self._calendars[key] = cal
        return cal

    def status(self, code: str, when: datetime, *, extended: bool) -> MarketStatus:
        # exchange_calendars 4.13 trips pandas 3.x deprecation warnings; they are its business, not the user's
        with self._query_lock, warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            return self._status(code, when, extended=extended)

    def _status(self, code: str, when: datetime, *, extended: bool) -> MarketStatus:
        import pandas as pd

        cal = self.calendar(code, when)
        ts = pd.Timestamp(when.astimezone(UTC))
        minute = ts.floor("min")
        if cal.is_open_on_minute(minute):
            return MarketStatus(True, "regular", "regular session", None)
        tz = cal.tz
        local = ts.tz_convert(tz)
        day = local.tz_localize(None).normalize()
        session_day = cal.is_session(day)
        detail = "not a trading day (weekend)" if day.weekday() >= 5 else f"not a trading day ({_holiday(cal, day)})"
        if session_day:
            open_, close = cal.session_open_close(day)
            if ts < open_:
                detail = f"before the open at {open_.tz_convert(tz):%H:%M} {local:%Z}"
                pre_start = pd.Timestamp(day.date().isoformat() + " 04:00", tz=tz)
                if extended and ts >= pre_start:
                    return MarketStatus(True, "pre", "pre-market", None)
            else:
                early = close.tz_convert(tz).hour < 16
                detail = f"after the {'early ' if early else ''}close at {close.tz_convert(tz):%H:%M} {local:%Z}"
                post_end = min(pd.Timestamp(day.date().isoformat() + " 20:00", tz=tz), close + pd.Timedelta(hours=4))
                if extended and ts < post_end:
                    return MarketStatus(True, "post", "after-hours", None)
        try:
            nxt = cal.next_open(minute)
            next_open: datetime | None = nxt.to_pydatetime()
        except ValueError:  # beyond the calendar window
            next_open = None
        return MarketStatus(False, "closed", detail, next_open)


def _holiday(cal: Any, day: Any) -> str:
    try:
        names = cal.regular_holidays.holidays(day, day, return_name=True)
        if len(names):
            return f"{names.iloc[0]} holiday"
    except Exception:  # noqa: BLE001 -- a calendar without named holidays
        pass
    return "holiday"


_CLOCK = MarketClock()


def _extended_ok(order: Order) -> bool:
    return (
        order.asset_class == "us_equity"
        and order.extended_hours
        and order.type == "limit"
        and order.time_in_force in ("day", "gtc")
    )


class MarketHoursLayer:
    """Layer 8."""

    name = "market_hours"
    order = 8

    def __init__(self, clock: MarketClock | None = None) -> None:
        self.clock = clock or _CLOCK

    def check(self, request: SafetyRequest) -> LayerVerdict | None:
        if not request.tool.startswith("mcp__"):
            return None
        op = classify(request)
        if not op.trading or op.guard is not GuardClass.ORDER_ENTRY or op.order is None:
            return None
        order = op.order
        if order.asset_class == "crypto":
            return None  # 24/7
        if order.time_in_force in ("opg", "cls"):
            return None  # auction orders wait for the auction
        code = str(request.settings.get("safety.exchange"))
        when = request.now or datetime.now(UTC)
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        extended = bool(request.settings.get("safety.extendedHours")) and _extended_ok(order)
        try:
            status = self.clock.status(code, when, extended=extended)
        except Exception as exc:  # noqa: BLE001 -- an unknown exchange code, a date the calendars cannot cover
            return failure(
                request,
                f"cannot tell whether {code} is open at {when.isoformat(timespec='minutes')} ({type(exc).__name__}: "
                f"{exc}); check safety.exchange",
                self.name,
                "market_hours.unknown",
            )
        if status.open:
            return None
        hint = ""
        if order.asset_class == "us_equity" and not extended:
            hint = (
                "; extended hours need safety.extendedHours and a limit order with extended_hours=true"
                if request.settings.get("safety.extendedHours") or order.extended_hours
                else ""
            )
        nxt = f"; next open {status.next_open.isoformat(timespec='minutes')}" if status.next_open else ""
        permission: Literal["ask", "deny"] = "deny" if request.mode.strict else "ask"
        return verdict(
            request,
            permission,
            f"{code} is closed at {when.astimezone(UTC):%Y-%m-%d %H:%M} UTC: {status.detail}{nxt}{hint}. "
            f"{order.describe()} would wait for the next open"
            + ("" if request.mode.strict else " -- confirm only if that is what you want"),
            self.name,
            "market_hours.closed",
        )
