"""Time ranges read from a query: "yesterday", "last week", "3 days ago", "since 2026-11-01", "in May 2025".

``parse_time_filter`` returns the range (UTC, half-open [start, end)) and the query with the phrase taken
out, so the words "last week" do not have to match any passage (a soft range keeps its words). Relative
phrases are relative to ``now``.
A phrase that is not understood is left alone: no range is better than a wrong one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

__all__ = ["TimeRange", "parse_time_filter"]

_MONTHS = {
    m: i
    for i, names in enumerate(
        (
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ),
        start=1,
    )
    for m in names
}
_UNITS = {"day": 1, "days": 1, "week": 7, "weeks": 7, "month": 30, "months": 30, "year": 365, "years": 365}
_NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "ten": 10}
_NUM = r"(\d{1,3}|a|an|one|two|three|four|five|six|seven|ten)"
_DATE = r"(\d{4})-(\d{2})-(\d{2})"
_MONTH_RE = "|".join(sorted(_MONTHS, key=len, reverse=True))


@dataclass(frozen=True, slots=True)
class TimeRange:
    """``hard``: a constraint on when a memory was stored ("yesterday", "last week", "since 2026-11-01").
    Otherwise a hint ("in March", "last year", "2 years ago" usually date the *event*, not when it was
    said), which search uses as a boost, never as a filter."""

    start: float | None
    end: float | None
    phrase: str
    hard: bool = True

    def contains(self, ts: float) -> bool:
        return (self.start is None or ts >= self.start) and (self.end is None or ts < self.end)


def _day(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def _date(y: str, m: str, d: str) -> datetime | None:
    try:
        return datetime(int(y), int(m), int(d), tzinfo=UTC)
    except ValueError:
        return None


def _month_start(year: int, month: int) -> datetime:
    return datetime(year, month, 1, tzinfo=UTC)


def _next_month(moment: datetime) -> datetime:
    return _month_start(moment.year + (moment.month == 12), moment.month % 12 + 1)


def parse_time_filter(query: str, now: float) -> tuple[TimeRange | None, str]:
    """The time range a query asks for (or None) and the query without the phrase that said so."""
    today = _day(datetime.fromtimestamp(now, UTC))
    lowered = query.lower()
    rules: list[tuple[str, object]] = [
        (rf"\b(?:since|after|from)\s+{_DATE}\b", "since"),
        (rf"\b(?:before|until)\s+{_DATE}\b", "before"),
        (rf"\b(?:on\s+)?{_DATE}\b", "on"),
        (r"\btoday\b", "today"),
        (r"\byesterday\b", "yesterday"),
        (r"\bthis\s+(week|month|year)\b", "this"),
        (r"\blast\s+(week|month|year)\b", "last"),
        (rf"\b(?:in\s+the\s+)?(?:last|past)\s+{_NUM}\s+(days?|weeks?|months?|years?)\b", "past"),
        (rf"\b{_NUM}\s+(days?|weeks?|months?|years?)\s+ago\b", "ago"),
        (rf"\bin\s+({_MONTH_RE})(?:\s+(\d{{4}}))?\b", "month"),
    ]
    for pattern, kind in rules:
        m = re.search(pattern, lowered)
        if m is None:
            continue
        start: datetime | None = None
        end: datetime | None = None
        if kind == "since":
            start = _date(*m.groups())
        elif kind == "before":
            end = _date(*m.groups())
        elif kind == "on":
            start = _date(*m.groups())
            end = start + timedelta(days=1) if start else None
        elif kind == "today":
            start, end = today, today + timedelta(days=1)
        elif kind == "yesterday":
            start, end = today - timedelta(days=1), today
        elif kind in ("this", "last"):
            unit = m.group(1)
            if unit == "week":
                start = today - timedelta(days=today.weekday())
                if kind == "last":
                    start -= timedelta(days=7)
                end = start + timedelta(days=7)
            elif unit == "month":
                start = _month_start(today.year, today.month)
                if kind == "last":
                    start = _month_start(start.year - (start.month == 1), (start.month - 2) % 12 + 1)
                end = _next_month(start)
            else:
                start = datetime(today.year - (kind == "last"), 1, 1, tzinfo=UTC)
                end = datetime(start.year + 1, 1, 1, tzinfo=UTC)
        elif kind == "past":
            n = _NUMBERS.get(m.group(1)) or int(m.group(1))
            start, end = today - timedelta(days=n * _UNITS[m.group(2)] - 1), today + timedelta(days=1)
        elif kind == "ago":
            n = _NUMBERS.get(m.group(1)) or int(m.group(1))
            span = _UNITS[m.group(2)]
            start = today - timedelta(days=n * span)
            end = start + timedelta(days=span)
        elif kind == "month":
            month = _MONTHS[m.group(1)]
            if m.group(1) == "may" and not m.group(2):
                continue  # "in may" is as often the verb as the month
            year = int(m.group(2)) if m.group(2) else today.year
            if not m.group(2) and month > today.month:
                year -= 1
            start = _month_start(year, month)
            end = _next_month(start)
        if start is None and end is None:
            continue
        hard = kind not in ("month",) and not (kind in ("this", "last", "ago", "past") and "year" in m.group(0))
        cleaned = " ".join((query[: m.start()] + " " + query[m.end() :]).split()) if hard else query
        return TimeRange(
            start.timestamp() if start else None, end.timestamp() if end else None, m.group(0), hard
        ), cleaned
    return None, query
