"""Layer 9, the circuit breaker: a trading server that keeps failing is given a rest.

Breakers are kept per scope -- ``mcp:<server>`` for each trading server, ``files`` for file writes -- in the
safety database, so an in-process hook sees what the daemon saw. They are fed by PostToolUse failures
(``PostToolUseFailure``, or an error in the server's answer; calls the user interrupted do not count) and
tripped outright by post-execution mismatches and by an order left in an unknown state (a timeout that "MAY
have placed" it). ``safety.breakerFailures`` consecutive failures open one; open, it refuses new orders and
replacements -- deny in trading mode, ask elsewhere for other writes -- while reads (to reconcile) and
cancels and closes (to reduce risk) still run. After ``safety.breakerCooldownSeconds`` one call probes: a
success closes the breaker, a failure re-opens it at once. ``ultramax override`` can lift it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from ultramax.paths import Paths
from ultramax.redact import redact
from ultramax.safety.engine import LayerVerdict, SafetyRequest
from ultramax.safety.layers_core import request_time, verdict
from ultramax.safety.ledger import error_of, in_doubt, payload_of
from ultramax.safety.mcp_risk import GuardClass, Operation, classify
from ultramax.safety.store import SafetyStore

__all__ = ["FILE_TOOLS", "BreakerState", "Breakers", "CircuitBreakerLayer", "breakers_for"]

FILE_TOOLS = frozenset({"Write", "Edit", "MultiEdit", "NotebookEdit"})

_STATE_LOCK = threading.Lock()
_BREAKERS: dict[int, Breakers] = {}


def breakers_for(paths: Paths) -> Breakers:
    store = SafetyStore.for_paths(paths)
    with _STATE_LOCK:
        breakers = _BREAKERS.get(id(store))
        if breakers is None or breakers.store is not store:
            breakers = _BREAKERS[id(store)] = Breakers(store)
        return breakers


@dataclass(frozen=True, slots=True)
class BreakerState:
    scope: str
    failures: int
    opened_at: float | None
    reason: str | None
    rule: str | None

    def open_until(self, cooldown: float) -> float | None:
        return None if self.opened_at is None else self.opened_at + cooldown


class Breakers:
    """Circuit breakers per scope (``mcp:<server>``, ``files``) in the safety database, cached until it changes."""

    def __init__(self, store: SafetyStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._cache: dict[str, BreakerState] | None = None
        self._key: tuple[tuple[int, int], int] | None = None
        self._epoch = 0  # bumped by this process's own writes (which do not change data_version)

    def _all(self) -> dict[str, BreakerState]:
        version = self.store.data_version()
        with self._lock:
            key = (version, self._epoch)
            if self._cache is not None and self._key == key:
                return self._cache
        rows = self.store.query("SELECT scope, failures, opened_at, reason, rule FROM breakers")
        cache = {
            r["scope"]: BreakerState(r["scope"], r["failures"], r["opened_at"], r["reason"], r["rule"]) for r in rows
        }
        with self._lock:
            self._cache, self._key = cache, key  # a write during the load changed the epoch: no stale hit
        return cache

    def get(self, scope: str) -> BreakerState | None:
        return self._all().get(scope)

    def any_open(self) -> bool:
        return any(s.opened_at is not None for s in self._all().values())

    def _invalidate(self) -> None:
        with self._lock:
            self._epoch += 1
            self._cache = None

    def failure(self, scope: str, reason: str, *, threshold: int, now: float) -> BreakerState:
        """Count a failure; open the breaker at ``threshold`` consecutive ones (re-open a probing one at once)."""
        reason = redact(reason)  # stored and shown later: it may quote a path or an error with a secret in it
        with self.store.write(durable=True) as conn:
            row = conn.execute("SELECT failures, opened_at FROM breakers WHERE scope = ?", (scope,)).fetchone()
            failures = (row["failures"] if row else 0) + 1
            opened = row["opened_at"] if row else None
            if failures >= threshold or opened is not None:
                opened = now
            conn.execute(
                "INSERT INTO breakers (scope, failures, opened_at, reason, rule, updated_at) VALUES (?,?,?,?,?,?) "
                "ON CONFLICT(scope) DO UPDATE SET failures=excluded.failures, opened_at=excluded.opened_at, "
                "reason=excluded.reason, rule=excluded.rule, updated_at=excluded.updated_at",
                (scope, failures, opened, reason[:500], "circuit_breaker.failures", now),
            )
        self._invalidate()
        return BreakerState(scope, failures, opened, reason, "circuit_breaker.failures")

    def trip(self, scope: str, reason: str, rule: str, now: float) -> None:
        """Open at once (a post-execution mismatch, an order in an unknown state)."""
        reason = redact(reason)
        with self.store.write(durable=True) as conn:
            conn.execute(
                "INSERT INTO breakers (scope, failures, opened_at, reason, rule, updated_at) VALUES (?,?,?,?,?,?) "
                "ON CONFLICT(scope) DO UPDATE SET failures=breakers.failures + 1, opened_at=excluded.opened_at, "
                "reason=excluded.reason, rule=excluded.rule, updated_at=excluded.updated_at",
                (scope, 1, now, reason[:500], rule, now),
            )
        self._invalidate()

    def success(self, scope: str, *, closes: bool) -> None:
        """A call succeeded: the consecutive count restarts; ``closes`` (a probing write) also closes it."""
        state = self.get(scope)
        if state is None or (state.failures == 0 and state.opened_at is None):
            return
        if state.opened_at is not None and not closes:
            return
        with self.store.write() as conn:
            conn.execute(
                "UPDATE breakers SET failures = 0, opened_at = NULL, reason = NULL, rule = NULL, updated_at = ? "
                "WHERE scope = ?",
                (time.time(), scope),
            )
        self._invalidate()

    def reset(self, scope: str | None = None) -> int:
        with self.store.write() as conn:
            if scope is None:
                count = conn.execute("DELETE FROM breakers").rowcount
            else:
                count = conn.execute("DELETE FROM breakers WHERE scope = ?", (scope,)).rowcount
        self._invalidate()
        return count

    def states(self) -> list[BreakerState]:
        return sorted(self._all().values(), key=lambda s: s.scope)


# -- layer 9 ------------------------------------------------------------------------------------------------
def _scope(request: SafetyRequest, op: Operation) -> str | None:
    if op.server is not None:
        return f"mcp:{op.server}"
    if request.tool in FILE_TOOLS:
        return "files"
    return None


class CircuitBreakerLayer:
    """Layer 9 (see the module docstring)."""

    name = "circuit_breaker"
    order = 9

    def check(self, request: SafetyRequest) -> LayerVerdict | None:
        tool = request.tool
        if not tool.startswith("mcp__") and tool not in FILE_TOOLS:
            return None
        if not SafetyStore.for_paths(request.paths).exists():
            return None
        op = classify(request)
        if op.guard in (GuardClass.READ, GuardClass.RISK_REDUCING):
            return None  # reads reconcile and cancels reduce risk: both pass an open breaker
        if op.server is not None and op.guard is None:
            return None  # an unknown server's errors say nothing about its health (the rule packs judge it)
        scope = _scope(request, op)
        state = breakers_for(request.paths).get(scope) if scope else None
        if state is None or state.opened_at is None:
            return None
        cooldown = float(request.settings.get("safety.breakerCooldownSeconds"))
        now = request_time(request)
        until = state.opened_at + cooldown
        if now >= until:
            return None  # half-open: this call probes; a failure re-opens at once
        what = f"MCP server {op.server!r}" if op.server else "file writes"
        reason = (
            f"circuit breaker open for {what} ({state.rule or 'failures'}: {state.reason}); "
            f"new calls refused for {int(until - now)} more s (safety.breakerCooldownSeconds). Reads and cancels "
            "still run; `ultramax override` can lift it."
        )
        if request.mode.strict or op.places_order:
            return verdict(request, "deny", reason, self.name, "circuit_breaker.open")
        return verdict(request, "ask", reason, self.name, "circuit_breaker.open")

    def observe(self, request: SafetyRequest) -> LayerVerdict | None:
        if not request.tool.startswith("mcp__"):
            return None
        op = classify(request)
        if op.server is None or not op.trading:
            return None  # breakers are kept for trading servers (and file writes, by verification)
        scope = f"mcp:{op.server}"
        breakers = breakers_for(request.paths)
        if request.error is not None and _interrupted(request):
            return None  # the user stopped the call: not a failure of the server
        payload = None if request.error is not None else payload_of(request.response)
        problem = request.error or error_of(payload)
        now = request_time(request)
        if problem is None:
            # only a probe -- a call the open breaker would hold back, run after the cooldown -- closes it: a
            # cancel or close that ran during the cooldown says nothing about whether new orders are safe again
            state = breakers.get(scope)
            cooldown = float(request.settings.get("safety.breakerCooldownSeconds"))
            probe = op.guard not in (GuardClass.READ, GuardClass.RISK_REDUCING) and (
                state is None or state.opened_at is None or now >= state.opened_at + cooldown
            )
            breakers.success(scope, closes=probe)
            return None
        timed_out = (
            isinstance(payload, dict) and isinstance(payload.get("error"), dict) and payload["error"].get("timeout")
        )
        if timed_out or (op.places_order and request.error is not None and in_doubt(request.error)):
            breakers.trip(
                scope,
                f"{op.mcp_tool} timed out and the order MAY have been placed; reconcile with get_orders before "
                "placing another",
                "circuit_breaker.unknown_order_state",
                now,
            )
            return None
        threshold = int(request.settings.get("safety.breakerFailures"))
        breakers.failure(scope, f"{op.mcp_tool}: {str(problem)[:200]}", threshold=threshold, now=now)
        return None


def _interrupted(request: SafetyRequest) -> bool:
    if request.metadata.get("is_interrupt"):
        return True
    text = (request.error or "").lower()
    return "interrupted by user" in text or "doesn't want to proceed" in text
