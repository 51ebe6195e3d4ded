"""Layer 14, the confirmation gate: Claude Code's ``ask``, and one-time tokens for headless runs.

An operation needs confirmation when its names match the mode's ``require_confirmation`` or the setting
``safety.requireConfirmation`` (``execute_trade``, ``market_order``, ``delete_*`` ...), when it is a live
order (always), or when an earlier layer asks (risk assessment, anomaly detection). The gate then answers
``ask``: an interactive user approves in Claude Code's prompt. A headless run (``claude -p``) cannot
prompt, so every confirmation is also stored as a pending record with a one-time token
(``secrets.token_urlsafe``) bound to the SHA-256 digest of the exact call (tool, input, project) and an
expiry (``safety.confirmationTtlSeconds``). The reason shown names only a short reference; the token
itself is never shown to the model or logged: the user lists pending confirmations with
``ultramax confirm`` in a terminal and approves one with ``ultramax confirm TOKEN``. The retried call with
the same digest is then allowed once -- the token is spent -- and the asks of the risk and anomaly layers
are lifted with it (they only ever ask, so lifting them lifts nothing else).

Records live in the safety database (0600) in ULTRAMAX_HOME. A call that ran after an interactive approval
voids its pending record, so a token cannot be used later for a second run.
"""

from __future__ import annotations

import fnmatch
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

from ultramax.errors import UltramaxError
from ultramax.paths import Paths
from ultramax.redact import redact, redact_path
from ultramax.safety.engine import LayerVerdict, SafetyRequest
from ultramax.safety.layers_core import ASKED_KEY, call_digest, denied_by, dry_run, request_time
from ultramax.safety.mcp_risk import Operation, classify
from ultramax.safety.store import SafetyStore

__all__ = [
    "ConfirmError",
    "ConfirmationGateLayer",
    "Confirmations",
    "Pending",
    "confirmation_reason",
    "confirmations_for",
    "operation_summary",
]

CONFIRMABLE_LAYERS = ("risk_assessment", "anomaly_detection")
RETAIN_SECONDS = 7 * 86400  # spent and expired records are kept a week (the audit log keeps approvals for good)
"""Layers whose verdicts are only ever ``ask``: a confirmation of the exact call lifts them."""


class ConfirmError(UltramaxError):
    """A token that cannot be redeemed (unknown, expired, spent)."""


@dataclass(frozen=True, slots=True)
class Pending:
    token: str
    ref: str
    digest: str
    tool: str
    summary: str
    reasons: tuple[str, ...]
    project: str | None
    status: str
    created_at: float
    expires_at: float
    approved_at: float | None = None
    approved_by: str | None = None

    def public(self) -> dict[str, Any]:
        """Everything but the token."""
        return {
            "ref": self.ref,
            "tool": self.tool,
            "summary": self.summary,
            "reasons": list(self.reasons),
            "project": self.project,
            "status": self.status,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "approved_at": self.approved_at,
            "approved_by": self.approved_by,
        }


def _pending(row: Any) -> Pending:
    return Pending(
        token=row["token"], ref=row["ref"], digest=row["digest"], tool=row["tool"], summary=row["summary"],
        reasons=tuple(json.loads(row["reasons"])), project=row["project"], status=row["status"],
        created_at=row["created_at"], expires_at=row["expires_at"], approved_at=row["approved_at"],
        approved_by=row["approved_by"],
    )  # fmt: skip


class Confirmations:
    """Pending and approved confirmations in the safety database."""

    def __init__(self, store: SafetyStore) -> None:
        self.store = store

    def request(
        self, *, digest: str, tool: str, summary: str, reason: str, project: str | None, ttl: float, now: float
    ) -> Pending:
        """The live record for ``digest`` (pending or approved), created if there is none; adds ``reason``."""
        with self.store.write() as conn:
            row = conn.execute(
                "SELECT * FROM confirmations WHERE digest = ? AND status IN ('pending', 'approved') "
                "AND expires_at > ? ORDER BY created_at DESC LIMIT 1",
                (digest, now),
            ).fetchone()
            if row is not None:
                reasons = json.loads(row["reasons"])
                if reason not in reasons:
                    reasons.append(reason)
                    conn.execute(
                        "UPDATE confirmations SET reasons = ? WHERE token = ?", (json.dumps(reasons), row["token"])
                    )
                return _pending(conn.execute("SELECT * FROM confirmations WHERE token = ?", (row["token"],)).fetchone())
            conn.execute(
                "UPDATE confirmations SET status = 'void' WHERE status = 'pending' AND expires_at <= ?", (now,)
            )
            conn.execute("DELETE FROM confirmations WHERE expires_at < ?", (now - RETAIN_SECONDS,))
            while True:
                # a leading "-" would make `ultramax confirm TOKEN` read the token as an option
                token, ref = "ct_" + secrets.token_urlsafe(24), "c-" + secrets.token_hex(3)
                if conn.execute("SELECT 1 FROM confirmations WHERE ref = ?", (ref,)).fetchone() is None:
                    break
            conn.execute(
                "INSERT INTO confirmations (token, ref, digest, tool, summary, reasons, project, status, created_at, "
                "expires_at) VALUES (?,?,?,?,?,?,?, 'pending', ?, ?)",
                (token, ref, digest, tool, summary, json.dumps([reason]), project, now, now + ttl),
            )
            return _pending(conn.execute("SELECT * FROM confirmations WHERE token = ?", (token,)).fetchone())

    def approved(self, digest: str, now: float) -> Pending | None:
        """The approved confirmation for ``digest`` without spending it (for explanations)."""
        rows = self.store.query(
            "SELECT * FROM confirmations WHERE digest = ? AND status = 'approved' AND expires_at > ? "
            "ORDER BY approved_at DESC LIMIT 1",
            (digest, now),
        )
        return _pending(rows[0]) if rows else None

    def take_approved(self, digest: str, now: float) -> Pending | None:
        """Spend the approved confirmation for ``digest``, if there is one (single use, atomically)."""
        with self.store.write() as conn:
            row = conn.execute(
                "SELECT * FROM confirmations WHERE digest = ? AND status = 'approved' AND expires_at > ? "
                "ORDER BY approved_at DESC LIMIT 1",
                (digest, now),
            ).fetchone()
            if row is None:
                return None
            conn.execute("UPDATE confirmations SET status = 'used', used_at = ? WHERE token = ?", (now, row["token"]))
            return _pending(row)

    def void(self, digest: str) -> int:
        """The call ran (approved in the prompt): its open records can no longer be used."""
        live = "digest = ? AND status IN ('pending', 'approved')"
        if not self.store.query(f"SELECT 1 FROM confirmations WHERE {live} LIMIT 1", (digest,)):
            return 0
        with self.store.write() as conn:
            return conn.execute(f"UPDATE confirmations SET status = 'void' WHERE {live}", (digest,)).rowcount

    def approve(self, token: str, *, by: str, ttl: float, now: float | None = None) -> Pending:
        """Redeem ``token`` (``ultramax confirm TOKEN``): the exact call may now run once within ``ttl``."""
        now = time.time() if now is None else now
        with self.store.write(durable=True) as conn:
            row = conn.execute("SELECT * FROM confirmations WHERE token = ?", (token,)).fetchone()
            if row is None:
                raise ConfirmError("unknown confirmation token (run `ultramax confirm` to list pending ones)")
            if row["status"] == "approved":
                raise ConfirmError(f"{row['ref']} is already approved; retry the call")
            if row["status"] != "pending":
                raise ConfirmError(f"{row['ref']} can no longer be approved (it is {row['status']})")
            if row["expires_at"] <= now:
                conn.execute("UPDATE confirmations SET status = 'void' WHERE token = ?", (token,))
                raise ConfirmError(f"{row['ref']} expired; ask Claude to retry the call for a new one")
            conn.execute(
                "UPDATE confirmations SET status = 'approved', approved_at = ?, approved_by = ?, expires_at = ? "
                "WHERE token = ?",
                (now, by, max(row["expires_at"], now + ttl), token),
            )
            return _pending(conn.execute("SELECT * FROM confirmations WHERE token = ?", (token,)).fetchone())

    def open(self, now: float | None = None) -> list[Pending]:
        """Pending and approved (not yet used) confirmations that have not expired, newest first."""
        now = time.time() if now is None else now
        rows = self.store.query(
            "SELECT * FROM confirmations WHERE status IN ('pending', 'approved') AND expires_at > ? "
            "ORDER BY created_at DESC",
            (now,),
        )
        return [_pending(r) for r in rows]


_INSTANCES: dict[int, Confirmations] = {}
_INSTANCES_LOCK = threading.Lock()


def confirmations_for(paths: Paths) -> Confirmations:
    store = SafetyStore.for_paths(paths)
    with _INSTANCES_LOCK:
        conf = _INSTANCES.get(id(store))
        if conf is None or conf.store is not store:
            conf = _INSTANCES[id(store)] = Confirmations(store)
        return conf


def operation_summary(request: SafetyRequest, op: Operation | None = None) -> str:
    """One line a user can recognise the call by (orders spelled out, other input redacted and cut)."""
    op = op or classify(request)
    if op.order is not None:
        return f"{op.mcp_tool} on {op.server}: {op.order.describe()}"
    body = redact(json.dumps(request.input, ensure_ascii=False, sort_keys=True, default=str))
    if len(body) > 160:
        body = body[:159] + "…"
    return f"{request.tool} {body}"


def confirmation_reason(request: SafetyRequest, why: str) -> str:
    """``why`` plus how to confirm; records the pending confirmation unless the call is refused anyway."""
    if request.phase != "pre" or denied_by(request):
        return f"{why}: needs your confirmation"
    if dry_run(request):
        return f"{why}: needs your confirmation (Claude Code would ask; headless, `ultramax confirm` approves it)"
    ttl = float(request.settings.get("safety.confirmationTtlSeconds"))
    pending = confirmations_for(request.paths).request(
        digest=call_digest(request),
        tool=request.tool,
        summary=operation_summary(request),
        reason=redact(why),  # stored: the reason may quote a path or a command with a secret in it
        project=redact_path(str(request.project_dir)) if request.project_dir else None,
        ttl=ttl,
        now=request_time(request),
    )
    return (
        f"{why}: needs your confirmation (ref {pending.ref}). Approve it in Claude Code's prompt; in a headless run, "
        f"have the user run `ultramax confirm` in a terminal to review {pending.ref} and `ultramax confirm TOKEN` to "
        f"approve it, then retry exactly the same call within {int(ttl)} s."
    )


class _Patterns:
    """Confirmation patterns compiled once per distinct list (one regex match per operation name)."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, ...], re.Pattern[str] | None] = {}

    def compiled(self, patterns: tuple[str, ...]) -> re.Pattern[str] | None:
        if patterns not in self._cache:
            if len(self._cache) > 64:
                self._cache.clear()
            self._cache[patterns] = (
                re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns)) if patterns else None
            )
        return self._cache[patterns]


class ConfirmationGateLayer:
    """Layer 14."""

    name = "confirmation_gate"
    order = 14
    can_waive = CONFIRMABLE_LAYERS

    def __init__(self) -> None:
        self._patterns = _Patterns()

    def _pattern_hit(self, request: SafetyRequest, op: Operation) -> str | None:
        patterns = (*request.mode.require_confirmation, *request.settings.get("safety.requireConfirmation"))
        compiled = self._patterns.compiled(tuple(patterns))
        if compiled is None:
            return None
        for name in op.names:
            if compiled.match(name):
                return next((p for p in patterns if fnmatch.fnmatchcase(name, p)), name)
        return None

    def _why(self, request: SafetyRequest, op: Operation) -> str | None:
        if op.places_order:
            live = request.settings.get("safety.tradingMode") == "live"
            if live:
                return f"live order {operation_summary(request, op)}"
            if not request.settings.get("safety.confirmPaperOrders"):
                return None
            hit = self._pattern_hit(request, op)
            if hit is not None:
                return f"paper order {operation_summary(request, op)} (confirmation required for {hit})"
            return None
        hit = self._pattern_hit(request, op)
        if hit is not None:
            return (
                f"{op.canonical} needs confirmation (it matches {hit!r} in {request.mode.name} mode's "
                "require_confirmation or safety.requireConfirmation)"
            )
        return None

    def check(self, request: SafetyRequest) -> LayerVerdict | None:
        op = classify(request)
        why = self._why(request, op)
        asked = request.metadata.get(ASKED_KEY) or ()
        if why is None and not asked:
            return None
        if denied_by(request):
            return None  # refused anyway: offering a confirmation would only mislead
        now = request_time(request)
        confirmations = confirmations_for(request.paths)
        digest = call_digest(request)
        approved = confirmations.approved(digest, now) if dry_run(request) else confirmations.take_approved(digest, now)
        if approved is not None:
            return LayerVerdict(
                "allow",
                f"confirmed by {approved.approved_by or 'the user'} ({approved.ref}): {approved.summary}",
                self.name,
                "confirm.token_redeemed",
                waives=CONFIRMABLE_LAYERS,
            )
        if why is None:
            return None  # only the risk/anomaly layers ask; their reasons already carry the reference
        return LayerVerdict("ask", confirmation_reason(request, why), self.name, "confirm.required", 0.0)

    def observe(self, request: SafetyRequest) -> LayerVerdict | None:
        if request.error is None and request.tool.startswith("mcp__") and SafetyStore.for_paths(request.paths).exists():
            confirmations_for(request.paths).void(call_digest(request))  # it ran: approved in Claude Code's prompt
        return None
