"""Layer 12, anomaly detection: unusual call rates and call sequences are put to the user. It only escalates.

Two explainable detectors, warm in the layer object (the daemon keeps it), for calls that change something
on a known MCP server (orders, cancels, replacements, watchlist writes) -- never for ordinary coding tools,
whose bursts are normal:

* **rate**: calls of each operation are counted per minute; an EWMA of the per-minute counts (mean and
  variance, quiet minutes included) is the baseline. When this minute's count is at least ``MIN_COUNT``
  and its z-score over the baseline exceeds ``safety.anomalyThreshold`` the call is asked about. Minutes
  that were flagged are folded into the baseline clipped to the threshold, so a flood does not teach the
  detector that floods are normal.
* **sequence**: a first-order Markov model of the transitions between calls of known MCP servers in a
  session (reads included: they are what normally precedes an order). Once it has seen
  ``SEQUENCE_WARMUP`` transitions, a transition into an order that it has never seen (smoothed probability
  below ``NOVELTY_P``, from a state it has seen followed at least ``MIN_OUTGOING`` times) is asked about,
  e.g. an order straight after a cancel-all when every earlier order followed a quote or a position read.

The verdict is ``ask`` and never anything else, with the numbers in the reason; a confirmation of the exact
call (``ultramax confirm``) lifts it.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict, defaultdict
from dataclasses import dataclass
from typing import Any

from ultramax.safety.engine import LayerVerdict, SafetyRequest
from ultramax.safety.layers_core import dry_run, note_ask, request_time
from ultramax.safety.mcp_risk import GuardClass, classify

__all__ = ["AnomalyDetectionLayer", "RateBaseline", "TransitionModel"]

ALPHA = 0.3  # EWMA weight of the newest minute
WARMUP_MINUTES = 10
MIN_COUNT = 4
STD_FLOOR = 1.0
MAX_GAP_MINUTES = 120
SEQUENCE_WARMUP = 50
NOVELTY_P = 1e-3
MIN_OUTGOING = 5
MAX_SESSIONS = 1000


@dataclass(slots=True)
class RateBaseline:
    """EWMA mean and variance of one operation's calls per minute."""

    minute: int = -1
    count: int = 0
    mean: float = 0.0
    var: float = 0.0
    minutes: int = 0
    flagged: bool = False

    def _fold(self, x: float) -> None:
        if self.minutes == 0:
            self.mean, self.var = x, 0.0
        else:
            diff = x - self.mean
            self.mean += ALPHA * diff
            self.var = (1 - ALPHA) * (self.var + ALPHA * diff * diff)
        self.minutes += 1

    def add(self, minute: int, threshold: float) -> tuple[float | None, int]:
        """Count a call in ``minute``; (z-score once warm, this minute's count)."""
        if self.minute < 0:
            self.minute = minute
        elif minute > self.minute:
            x = float(self.count)
            if self.flagged:
                x = min(x, self.mean + threshold * max(math.sqrt(self.var), STD_FLOOR))
            self._fold(x)
            for _ in range(min(minute - self.minute - 1, MAX_GAP_MINUTES)):
                self._fold(0.0)
            self.minute, self.count, self.flagged = minute, 0, False
        self.count += 1
        if self.minutes < WARMUP_MINUTES:
            return None, self.count
        z = (self.count - self.mean) / max(math.sqrt(self.var), STD_FLOOR)
        return z, self.count


class TransitionModel:
    """Counts of operation -> operation transitions, with Laplace-smoothed probabilities."""

    def __init__(self) -> None:
        self.counts: dict[str, dict[str, int]] = defaultdict(dict)
        self.totals: dict[str, int] = defaultdict(int)
        self.states: set[str] = set()
        self.seen = 0

    def probability(self, prev: str, nxt: str) -> float:
        vocab = max(len(self.states), 1) + 1
        return (self.counts[prev].get(nxt, 0) + 1e-4) / (self.totals[prev] + 1e-4 * vocab)

    def learn(self, prev: str, nxt: str) -> None:
        row = self.counts[prev]
        row[nxt] = row.get(nxt, 0) + 1
        self.totals[prev] += 1
        self.states.update((prev, nxt))
        self.seen += 1


class AnomalyDetectionLayer:
    """Layer 12."""

    name = "anomaly_detection"
    order = 12

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rates: dict[str, RateBaseline] = {}
        self._model = TransitionModel()
        self._last: OrderedDict[str, str] = OrderedDict()  # session -> previous operation

    def check(self, request: SafetyRequest) -> LayerVerdict | None:
        tool = request.tool
        if not tool.startswith("mcp__") or dry_run(request):
            return None  # an explanation has no history to be unusual against
        session = request.session_id or "-"
        op = classify(request)
        if op.guard is None:
            return None  # only calls of known servers are states of the model
        state = op.canonical
        with self._lock:
            prev = self._last.get(session)
            self._remember(session, state)
            if op.guard is GuardClass.READ:
                if prev is not None:
                    self._model.learn(prev, state)
                return None
            findings = self._rate(request, state) + self._sequence(prev, state, op.places_order)
            if prev is not None:
                self._model.learn(prev, state)
        if not findings:
            return None
        from ultramax.safety.confirm import confirmation_reason

        note_ask(request, self.name)
        why = "unusual activity: " + "; ".join(findings)
        rule = "anomaly.rate" if findings[0].startswith("rate") else "anomaly.sequence"
        return LayerVerdict("ask", confirmation_reason(request, why), self.name, rule, 0.2)

    def _remember(self, session: str, state: str) -> None:
        last = self._last
        last[session] = state
        last.move_to_end(session)
        if len(last) > MAX_SESSIONS:
            last.popitem(last=False)

    def _rate(self, request: SafetyRequest, state: str) -> list[str]:
        threshold = float(request.settings.get("safety.anomalyThreshold"))
        baseline = self._rates.get(state)
        if baseline is None:
            baseline = self._rates[state] = RateBaseline()
        z, count = baseline.add(int(request_time(request) // 60), threshold)
        if z is None or count < MIN_COUNT or z <= threshold:
            return []
        baseline.flagged = True
        std = math.sqrt(baseline.var)
        return [
            f"rate: {count} calls of {state} this minute against a baseline of {baseline.mean:.1f}±{std:.1f} a minute "
            f"(z={z:.1f} > {threshold:g}, safety.anomalyThreshold)"
        ]

    def _sequence(self, prev: str | None, state: str, is_order: bool) -> list[str]:
        if not is_order or prev is None or self._model.seen < SEQUENCE_WARMUP:
            return []
        if self._model.totals[prev] < MIN_OUTGOING:
            return []  # too little known about what follows ``prev`` to call anything after it unusual
        p = self._model.probability(prev, state)
        if p >= NOVELTY_P:
            return []
        return [
            f"sequence: {prev} -> {state} has not been seen before (p={p:.1e} after {self._model.seen} transitions)"
        ]

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "rates": {k: {"mean": v.mean, "var": v.var, "minutes": v.minutes} for k, v in self._rates.items()},
                "transitions": self._model.seen,
            }
