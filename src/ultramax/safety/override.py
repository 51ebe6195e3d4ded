"""Layer 13, the manual override: ``~/.claude/OVERRIDE`` lifts named layers' verdicts for named operations.

The file is JSON written by ``ultramax override set`` (or by hand)::

    {"allowed_operations": ["trade:place_stock_order"], "layers": ["market_hours"],
     "expires": "2026-11-27T21:00:00Z", "reason": "closing auction test", "set_by": "alice"}

``allowed_operations`` are globs over the call's operation names (see ``mcp_risk``); ``layers`` names the
layers whose verdicts are lifted for those calls (default: ``DEFAULT_LAYERS``). An override needs an
expiry no further away than ``safety.overrideMaxSeconds``; without one, expired, or unreadable, it is
ignored. It can never lift the kill switch, input validation, authentication, permissions, execution
isolation (paper trading) or post-execution verification -- those are not in ``WAIVABLE`` -- nor the
confirmation of a live order. Every call it applies to is written to the audit log (``event: override``), as
are ``set`` and ``clear``.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ultramax.audit import AuditLog, digest
from ultramax.errors import UltramaxError
from ultramax.fsutil import atomic_write_json
from ultramax.paths import Paths
from ultramax.safety.engine import LayerVerdict, SafetyRequest
from ultramax.safety.layers_core import WAIVED_KEY, dry_run, request_time
from ultramax.safety.mcp_risk import classify, matches

__all__ = [
    "DEFAULT_LAYERS",
    "WAIVABLE",
    "ManualOverrideLayer",
    "Override",
    "OverrideError",
    "audit_event",
    "clear_override",
    "read_override",
    "write_override",
]

WAIVABLE: tuple[str, ...] = (
    "rate_limit",
    "sanitisation",
    "risk_assessment",
    "position_limits",
    "market_hours",
    "circuit_breaker",
    "anomaly_detection",
    "confirmation_gate",
)
"""Layers an override may lift. Never: kill_switch, input_validation, authentication, permission,
execution_isolation, post_verification."""

DEFAULT_LAYERS: tuple[str, ...] = (
    "risk_assessment",
    "position_limits",
    "market_hours",
    "circuit_breaker",
    "anomaly_detection",
    "confirmation_gate",
)


class OverrideError(UltramaxError):
    """An override that cannot be written as asked."""


@dataclass(frozen=True, slots=True)
class Override:
    operations: tuple[str, ...]
    layers: tuple[str, ...]
    expires: float
    reason: str
    set_by: str
    sha256: str
    problem: str | None = None  # why it is ignored, if it is

    def active(self, now: float) -> bool:
        return self.problem is None and now < self.expires

    def to_dict(self) -> dict[str, Any]:
        return {
            "allowed_operations": list(self.operations),
            "layers": list(self.layers),
            "expires": datetime.fromtimestamp(self.expires, UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "reason": self.reason,
            "set_by": self.set_by,
        }


def _parse_time(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def parse_override(raw: bytes, *, written_at: float, max_seconds: float) -> Override:
    sha = digest(raw)
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        return Override((), (), 0.0, "", "", sha, f"not valid JSON ({exc})")
    if not isinstance(data, dict):
        return Override((), (), 0.0, "", "", sha, "not a JSON object")
    ops = data.get("allowed_operations")
    layers = data.get("layers", list(DEFAULT_LAYERS))
    expires = _parse_time(data.get("expires"))
    reason = str(data.get("reason") or "")
    set_by = str(data.get("set_by") or "")
    problem = None
    if not isinstance(ops, list) or not ops or not all(isinstance(o, str) and o for o in ops):
        problem = "allowed_operations must be a non-empty list of operation names or globs"
        ops = []
    if not isinstance(layers, list) or not all(isinstance(x, str) for x in layers):
        problem, layers = "layers must be a list of layer names", []
    bad = [x for x in layers if x not in WAIVABLE]
    if bad and problem is None:
        problem = f"cannot lift {', '.join(bad)} (an override may lift only: {', '.join(WAIVABLE)})"
    if expires is None and problem is None:
        problem = 'an override needs an expiry ("expires": ISO-8601 time)'
    elif expires is not None and expires - written_at > max_seconds and problem is None:
        problem = f"expires more than {int(max_seconds)} s after it was written (safety.overrideMaxSeconds)"
    return Override(tuple(ops), tuple(layers), expires or 0.0, reason, set_by, sha, problem)


def read_override(path: Path, *, max_seconds: float) -> Override | None:
    try:
        raw = path.read_bytes()
        written = path.stat().st_mtime
    except FileNotFoundError:
        return None
    except OSError as exc:  # a folder in its place, an I/O error: like a file that does not parse, it lifts nothing
        return Override((), (), 0.0, "", "", digest(b""), f"cannot read it ({exc.strerror or exc})")
    return parse_override(raw, written_at=written, max_seconds=max_seconds)


def write_override(paths: Paths, override: Override) -> None:
    # read back as the layer reads it: an override written only to be ignored would claim a lift that never happens
    raw = json.dumps(override.to_dict()).encode("utf-8")
    problem = parse_override(raw, written_at=time.time(), max_seconds=float("inf")).problem
    if problem is not None:
        raise OverrideError(f"this override would be ignored ({problem}); nothing was written")
    try:
        atomic_write_json(paths.override, override.to_dict(), mode=0o600)
    except OSError as exc:
        raise OverrideError(
            f"cannot write the override {paths.override} ({exc.strerror or exc}); nothing was lifted. "
            "Remove what is in its place, or make its folder writable"
        ) from exc
    audit_event(paths, {"event": "override.set", **override.to_dict(), "decision": "set"})


def clear_override(paths: Paths, *, by: str) -> bool:
    try:
        raw = paths.override.read_bytes()
        paths.override.unlink()
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise OverrideError(
            f"cannot remove the override {paths.override} ({exc.strerror or exc}); remove it by hand"
        ) from exc
    audit_event(paths, {"event": "override.clear", "override_sha256": digest(raw), "set_by": by, "decision": "clear"})
    return True


_AUDIT_LOGS: dict[Path, AuditLog] = {}
_AUDIT_LOCK = threading.Lock()


def audit_event(paths: Paths, entry: dict[str, Any]) -> None:
    """Append a safety event (override set/used/cleared, confirmation approved) to the hash-chained audit log."""
    with _AUDIT_LOCK:
        log = _AUDIT_LOGS.get(paths.audit_log)
        if log is None:
            log = _AUDIT_LOGS[paths.audit_log] = AuditLog(paths.audit_log, paths.audit_head)
    log.append(entry)


class ManualOverrideLayer:
    """Layer 13."""

    name = "manual_override"
    order = 13
    can_waive = WAIVABLE

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache: tuple[tuple[int, int, int], Override] | None = None

    def _current(self, request: SafetyRequest) -> Override | None:
        path = request.paths.override
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        with self._lock:
            if self._cache is not None and self._cache[0] == stamp:
                return self._cache[1]
        override = read_override(path, max_seconds=float(request.settings.get("safety.overrideMaxSeconds")))
        if override is not None:
            with self._lock:
                self._cache = (stamp, override)
        return override

    def check(self, request: SafetyRequest) -> LayerVerdict | None:
        override = self._current(request)
        if override is None or not override.active(request_time(request)):
            return None
        op = classify(request)
        hit = matches(op.names, override.operations)
        if hit is None:
            return None
        layers = override.layers
        kept = ""
        if op.places_order and request.settings.get("safety.tradingMode") == "live" and "confirmation_gate" in layers:
            # every live order is put to the user: an override (whose default lifts the gate) cannot take that away
            layers = tuple(name for name in layers if name != "confirmation_gate")
            kept = "; a live order is still confirmed"
            if not layers:
                return None
        request.metadata.setdefault(WAIVED_KEY, set()).update(layers)
        until = datetime.fromtimestamp(override.expires, UTC).isoformat(timespec="minutes")
        reason = (
            f"manual override ({request.paths.override}, until {until} UTC"
            + (f", {override.reason}" if override.reason else "")
            + f") lifts {', '.join(layers)} for {hit}{kept}"
        )
        if request.phase == "pre" and not dry_run(request):
            audit_event(
                request.paths,
                {
                    "event": "override",
                    "session": request.session_id,
                    "tool": request.tool,
                    "decision": "waive",
                    "rule": "override.active",
                    "reason": reason,
                    "layers": list(layers),
                    "override_sha256": override.sha256,
                    "input_sha256": digest(json.dumps(request.input, sort_keys=True, default=str)),
                    "at": time.time(),
                },
            )
        return LayerVerdict("allow", reason, self.name, "override.active", waives=layers)
