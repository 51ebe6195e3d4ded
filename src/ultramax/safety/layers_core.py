"""The seed's layers 1, 2, 3, 5 and 6: input validation, authentication, rate limit, permission, risk.

Each is a small object with warm state; each returns fast (no allocation, no I/O) for calls it does not
judge, so ordinary Bash and Edit calls are not slowed. Verdicts name the layer, a stable rule id and a
reason a user can act on. A layer that denies notes it on the request (``note_denial``) so that later
layers -- the confirmation gate -- do not offer to confirm something already refused.
"""

from __future__ import annotations

import hashlib
import math
import re
import threading
import time
from datetime import datetime
from typing import Any, Literal

from ultramax.audit import canonical_json
from ultramax.pipeline.middleware import RateLimiter
from ultramax.safety.engine import LayerVerdict, SafetyRequest
from ultramax.safety.mcp_risk import GuardClass, Operation, classify, matches
from ultramax.safety.store import SafetyStore

__all__ = [
    "AuthenticationLayer",
    "DurableBuckets",
    "InputValidationLayer",
    "PermissionLayer",
    "RateLimitLayer",
    "RiskAssessmentLayer",
    "call_digest",
    "denied_by",
    "dry_run",
    "failure",
    "note_ask",
    "note_denial",
    "request_time",
    "verdict",
]

DENIED_KEY = "ultramax.denied_by"
WAIVED_KEY = "ultramax.waived"
DIGEST_KEY = "ultramax.digest"
ASKED_KEY = "ultramax.asked_by"


# -- helpers shared by the layers ---------------------------------------------------------------------------
def note_denial(request: SafetyRequest, layer: str) -> None:
    request.metadata.setdefault(DENIED_KEY, []).append(layer)


def note_ask(request: SafetyRequest, layer: str) -> None:
    """A layer asks for a confirmation the gate (layer 14) can satisfy with a redeemed token."""
    request.metadata.setdefault(ASKED_KEY, []).append(layer)


def denied_by(request: SafetyRequest) -> list[str]:
    """Layers that denied this request so far and were not waived by the override."""
    denied: list[str] = request.metadata.get(DENIED_KEY) or []
    waived: set[str] = request.metadata.get(WAIVED_KEY) or set()
    return [name for name in denied if name not in waived]


def verdict(
    request: SafetyRequest,
    permission: Literal["allow", "ask", "deny"],
    reason: str,
    layer: str,
    rule: str,
    *,
    risk: float = 0.0,
) -> LayerVerdict:
    if permission == "deny":
        note_denial(request, layer)
    return LayerVerdict(permission, reason, layer, rule, risk)


def failure(request: SafetyRequest, reason: str, layer: str, rule: str) -> LayerVerdict:
    """The failure policy's verdict for something a layer cannot judge: deny in trading, ask elsewhere."""
    permission: Literal["ask", "deny"] = "deny" if request.mode.strict else "ask"
    return verdict(request, permission, f"{reason}; failure policy: {permission}", layer, rule)


def call_digest(request: SafetyRequest) -> str:
    """SHA-256 of the exact call: tool, input and project (what a confirmation or a judgement is bound to)."""
    cached = request.metadata.get(DIGEST_KEY)
    if cached is None:
        body = {"tool": request.tool, "input": request.input, "project": str(request.project_dir or "")}
        cached = hashlib.sha256(canonical_json(body).encode("utf-8", "surrogatepass")).hexdigest()
        request.metadata[DIGEST_KEY] = cached
    return str(cached)


def dry_run(request: SafetyRequest) -> bool:
    """An explanation (``ultramax safety check|eval``), not a call about to run: change no state."""
    return request.source == "cli"


def request_time(request: SafetyRequest) -> float:
    """The request's clock (``SafetyRequest.now`` fixes it in tests and replays), as a POSIX timestamp."""
    now: datetime | None = request.now
    return now.timestamp() if now is not None else time.time()


# -- layer 1 ------------------------------------------------------------------------------------------------
_TOOL_NAME = re.compile(r"^[A-Za-z0-9_.:\-]{1,256}$")
_MAX_DEPTH = 64
# The fields of Claude Code's own tools that the gate reads as text: a number, list or object there is input
# the gate cannot judge (it would see no command or no path and find nothing), so it goes to the failure policy.
_TEXT_FIELDS: dict[str, tuple[str, ...]] = {
    "Bash": ("command",),
    "Read": ("file_path",),
    "Write": ("file_path", "content"),
    "Edit": ("file_path", "old_string", "new_string"),
    "MultiEdit": ("file_path",),
    "NotebookEdit": ("notebook_path", "new_source"),
    "Glob": ("pattern", "path"),
    "Grep": ("pattern", "path"),
    "WebFetch": ("url",),
}
_REQUIRED_TEXT: dict[str, str] = {"Bash": "command"}


class _TooBig(Exception):
    pass


def _text_size(value: Any, limit: int, depth: int = 0) -> int:
    """Characters of text in a JSON value (strings and keys), stopping once past ``limit``."""
    if isinstance(value, str):
        return len(value)
    if depth > _MAX_DEPTH:
        raise _TooBig(f"nested deeper than {_MAX_DEPTH} levels")
    total = 0
    if isinstance(value, dict):
        for key, item in value.items():
            total += len(key) + _text_size(item, limit, depth + 1)
            if total > limit:
                return total
    elif isinstance(value, list):
        for item in value:
            total += _text_size(item, limit, depth + 1)
            if total > limit:
                return total
    elif isinstance(value, float) and not math.isfinite(value):
        raise _TooBig("holds a NaN or infinite number")
    return total


def _not_text(tool: str, data: object) -> str:
    """What is wrong with the text fields of one of Claude Code's own tools, or ""."""
    fields = _TEXT_FIELDS.get(tool)
    if fields is None or not isinstance(data, dict):
        return ""
    for name in fields:
        value = data.get(name)
        if value is not None and not isinstance(value, str):
            return f"{name} is {type(value).__name__ if not isinstance(value, bool) else 'a boolean'}, not text"
    required = _REQUIRED_TEXT.get(tool)
    if required is not None and not isinstance(data.get(required), str):
        return f"no {required} to check"
    return ""


class InputValidationLayer:
    """Layer 1: the call is well formed -- a sane tool name, input of bounded size and depth, valid orders."""

    name = "input_validation"
    order = 1

    def check(self, request: SafetyRequest) -> LayerVerdict | None:
        tool = request.tool
        if not _TOOL_NAME.match(tool):
            return verdict(request, "deny", f"malformed tool name {tool[:80]!r}", self.name, "input.tool_name")
        limit = int(request.settings.get("safety.maxInputBytes"))
        try:
            size = _text_size(request.input, limit)
        except _TooBig as exc:
            return failure(request, f"{tool} input {exc}", self.name, "input.shape")
        if size > limit:
            return failure(
                request,
                f"{tool} input holds more than {limit:,} characters of text (safety.maxInputBytes)",
                self.name,
                "input.too_large",
            )
        unreadable = _not_text(tool, request.input)
        if unreadable:
            return failure(request, f"{tool} input: {unreadable}", self.name, "input.field_type")
        if tool.startswith("mcp__"):
            op = classify(request)
            if op.order_error is not None:
                return verdict(
                    request,
                    "deny",
                    f"{op.mcp_tool}: invalid order ({op.order_error}); the broker would not read it as meant",
                    self.name,
                    "input.order_invalid",
                )
        return None


# -- layer 2 ------------------------------------------------------------------------------------------------
class AuthenticationLayer:
    """Layer 2: who asks. The configured principal (``ultramax.requireUser``) and ``safety.requireUser``."""

    name = "authentication"
    order = 2

    def check(self, request: SafetyRequest) -> LayerVerdict | None:
        principal = request.principal
        required = request.settings.get("ultramax.requireUser")
        if required and principal != required:
            who = repr(principal) if principal else "an unauthenticated caller"
            return verdict(
                request,
                "deny",
                f"{who} is not the configured principal {required!r} (ultramax.requireUser)",
                self.name,
                "auth.require_user",
            )
        if principal:
            return None
        if request.settings.get("safety.requireUser"):
            return verdict(
                request,
                "deny",
                f"the {request.source} call carries no authenticated principal (safety.requireUser)",
                self.name,
                "auth.principal_required",
            )
        if request.mode.strict and request.tool.startswith("mcp__"):
            op = classify(request)
            if op.trading and op.writes:
                return verdict(
                    request,
                    "deny",
                    f"{op.mcp_tool} changes the trading account but the call carries no authenticated principal; "
                    "trading mode requires one",
                    self.name,
                    "auth.principal_required",
                )
        return None


# -- layer 3 ------------------------------------------------------------------------------------------------
class DurableBuckets:
    """Token buckets kept in the safety database, for limits that must survive restarts (orders per day)."""

    def __init__(self, store: SafetyStore) -> None:
        self.store = store

    def take(self, key: str, capacity: float, per: float, now: float) -> tuple[bool, float]:
        """Take one token from ``key`` (``capacity`` tokens per ``per`` seconds); (ok, seconds until one is back)."""
        with self.store.write() as conn:
            row = conn.execute("SELECT tokens, updated_at FROM buckets WHERE key = ?", (key,)).fetchone()
            tokens = (
                capacity if row is None else min(capacity, row["tokens"] + (now - row["updated_at"]) * capacity / per)
            )
            ok = tokens >= 1.0
            if ok:
                tokens -= 1.0
            conn.execute(
                "INSERT INTO buckets (key, tokens, updated_at) VALUES (?,?,?) "
                "ON CONFLICT(key) DO UPDATE SET tokens=excluded.tokens, updated_at=excluded.updated_at",
                (key, tokens, now),
            )
        wait = 0.0 if ok else (1.0 - tokens) * per / capacity
        return ok, wait


class RateLimitLayer:
    """Layer 3: token buckets per session and per operation; orders also globally, on disk.

    In memory (warm in the daemon): every tool call takes a token from its session's bucket
    (``safety.sessionCallsPerMinute``) and every MCP call one from its (session, tool) bucket
    (``safety.operationCallsPerMinute``). Orders and order replacements of trading servers also take tokens
    from buckets shared by all sessions and kept in the safety database (``safety.orderRatePerMinute``,
    ``safety.orderRatePerDay``, ``safety.modifyRatePerMinute``), so restarting, or hooks running
    in-process, never refill them. Over a limit the call is refused, not queued (as Nautilus does).
    """

    name = "rate_limit"
    order = 3

    def __init__(self, clock: Any = time.monotonic) -> None:
        self._clock = clock
        self._limiters: dict[int, RateLimiter] = {}
        self._lock = threading.Lock()

    def _limiter(self, rate: int) -> RateLimiter:
        limiter = self._limiters.get(rate)
        if limiter is None:
            with self._lock:
                limiter = self._limiters.setdefault(rate, RateLimiter(rate, 60.0, clock=self._clock))
        return limiter

    def check(self, request: SafetyRequest) -> LayerVerdict | None:
        if dry_run(request):
            return None  # a rate depends on calls that really ran; an explanation has none
        settings = request.settings
        session = request.session_id or "-"
        per_session = int(settings.get("safety.sessionCallsPerMinute"))
        if per_session and not self._limiter(per_session).allow(f"s:{session}"):
            return verdict(
                request,
                "deny",
                f"rate limit: more than {per_session} tool calls a minute in this session "
                "(safety.sessionCallsPerMinute); slow down",
                self.name,
                "rate_limit.session",
            )
        if not request.tool.startswith("mcp__"):
            return None
        per_op = int(settings.get("safety.operationCallsPerMinute"))
        if per_op and not self._limiter(per_op).allow(f"o:{session}:{request.tool}"):
            return verdict(
                request,
                "deny",
                f"rate limit: more than {per_op} calls of {request.tool} a minute in this session "
                "(safety.operationCallsPerMinute)",
                self.name,
                "rate_limit.operation",
            )
        op = classify(request)
        if not op.places_order:
            return None
        return self._orders(request, op)

    def _orders(self, request: SafetyRequest, op: Operation) -> LayerVerdict | None:
        settings = request.settings
        buckets = DurableBuckets(SafetyStore.for_paths(request.paths))
        now = request_time(request)
        if op.guard is GuardClass.ORDER_MODIFY:
            limits = [("modify_per_minute", int(settings.get("safety.modifyRatePerMinute")), 60.0, "minute")]
        else:
            limits = [
                ("orders_per_minute", int(settings.get("safety.orderRatePerMinute")), 60.0, "minute"),
                ("orders_per_day", int(settings.get("safety.orderRatePerDay")), 86400.0, "day"),
            ]
        for rule, capacity, per, unit in limits:
            if capacity <= 0:
                continue
            ok, wait = buckets.take(f"{op.server}:{rule}", capacity, per, now)
            if not ok:
                setting = {"orders_per_minute": "orderRatePerMinute", "orders_per_day": "orderRatePerDay"}.get(
                    rule, "modifyRatePerMinute"
                )
                return verdict(
                    request,
                    "deny",
                    f"rate limit: more than {capacity} {'replacements' if 'modify' in rule else 'orders'} a {unit} "
                    f"on {op.server} (safety.{setting}); the next is possible in {math.ceil(wait)} s",
                    self.name,
                    f"rate_limit.{rule}",
                )
        return None


# -- layer 5 ------------------------------------------------------------------------------------------------
class PermissionLayer:
    """Layer 5: what this mode and this principal may do at all.

    Privileged broker tools (``update_account_config``) are never allowed through the agent; tools of a
    trading server missing from the risk table are refused in trading mode; the mode's
    ``blocked_operations`` (creative mode blocks ``trading_operation``) and ``safety.userPermissions`` apply.
    The manual override cannot lift these: change the configuration instead.
    """

    name = "permission"
    order = 5

    def check(self, request: SafetyRequest) -> LayerVerdict | None:
        mcp = request.tool.startswith("mcp__")
        blocked = request.mode.blocked_operations
        users: dict[str, list[str]] = request.settings.get("safety.userPermissions")
        if not mcp and not blocked and not users:
            return None
        op = classify(request)
        if op.guard is GuardClass.PRIVILEGED:
            note = op.spec.note if op.spec is not None else ""
            return verdict(
                request,
                "deny",
                f"{op.mcp_tool} is a privileged account tool ({note}); ultramax never lets the agent call it -- "
                "change account settings yourself in the broker's dashboard",
                self.name,
                "permission.privileged_tool",
            )
        if op.guard is GuardClass.UNLISTED_WRITE and request.mode.strict:
            return verdict(
                request,
                "deny",
                f"{op.mcp_tool} on trading server {op.server!r} is not in ultramax's risk table and looks like a "
                "write; trading mode refuses tools it cannot classify",
                self.name,
                "permission.unlisted_trading_tool",
            )
        if blocked:
            hit = matches(op.names, blocked)
            if hit is not None:
                return verdict(
                    request,
                    "deny",
                    f"{request.mode.name} mode blocks {hit} ({op.canonical}); switch the project's mode to do this",
                    self.name,
                    "permission.mode_blocked",
                )
        if users:
            principal = request.principal or ""
            allowed = users.get(principal, users.get("*"))
            if allowed is None:
                return verdict(
                    request,
                    "deny",
                    f"principal {principal or '(none)'!r} has no entry in safety.userPermissions",
                    self.name,
                    "permission.user_unknown",
                )
            if matches(op.names, allowed) is None:
                return verdict(
                    request,
                    "deny",
                    f"principal {principal or '(none)'!r} may not run {op.canonical} (safety.userPermissions)",
                    self.name,
                    "permission.user_not_allowed",
                )
        return None


# -- layer 6 ------------------------------------------------------------------------------------------------
CONFIRM_TOOLS: dict[str, str] = {
    "close_all_positions": "liquidates every position",
    "close_position": "sells (or buys back) a position at the market",
    "cancel_all_orders": "cancels every open order",
    "do_not_exercise_options_position": "lets an option expire unexercised",
    "exercise_options_position": "exercises an option contract",
}
"""Trading tools that reduce risk or are not priced as orders but move real positions: always confirmed."""


class RiskAssessmentLayer:
    """Layer 6: how risky the call is, from the risk table. Adds its risk to the decision; asks (never denies)
    for the calls that move positions without being priced as orders (``CONFIRM_TOOLS``: closing positions,
    cancelling every order, exercising options) and for a trading-server tool it cannot classify (outside
    trading mode, where the permission layer refuses it). A confirmation of the exact call lifts the ask.
    """

    name = "risk_assessment"
    order = 6

    def check(self, request: SafetyRequest) -> LayerVerdict | None:
        if not request.tool.startswith("mcp__"):
            return None
        op = classify(request)
        if op.guard is None or op.guard is GuardClass.READ:
            return None
        why = CONFIRM_TOOLS.get(op.mcp_tool or "") if op.trading else None
        if why is not None:
            why = f"{op.mcp_tool} {why}"
        elif op.guard is GuardClass.UNLISTED_WRITE:
            why = (
                f"{op.mcp_tool} on trading server {op.server!r} is not in ultramax's risk table and looks like a write"
            )
        if why is None:
            return LayerVerdict("allow", f"{op.canonical}: {op.guard.value}", self.name, "risk.assessed", op.risk)
        from ultramax.safety.confirm import confirmation_reason

        note_ask(request, self.name)
        return LayerVerdict("ask", confirmation_reason(request, why), self.name, "risk.critical", op.risk)
