"""The safety gate in the gateway's call path: where a routing rule says ``require_safety_check``.

The safety engine decides each such call before it is forwarded, fail-closed: anything but allow refuses it
(an "ask" included: the gateway cannot ask), and so does any failure of the engine. Every decision is audited
(``McpGatewayCall``: tool, decision, rule, reason redacted, a digest of the arguments, never the arguments).

The engine is built once per gateway and stays warm, as in the daemon: its rate-limit buckets and anomaly
history carry over from call to call (a fresh engine per call would forget them, and every call would pass
its rate limit). The settings and the mode it decides with are read again whenever one of the settings files
changes (checked by size and modification time on each call), so an edited limit or mode applies to the next
call; file-based switches such as the kill switch are read by their layers on every call.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ultramax.audit import AuditLog, digest
from ultramax.config import Settings, load_settings, settings_files
from ultramax.errors import UltramaxError
from ultramax.mcp.config import RoutingRule
from ultramax.modes import ModeConfig, detect_mode
from ultramax.paths import Paths
from ultramax.redact import redact, redact_path

__all__ = ["Decide", "SafetyGate"]

log = logging.getLogger("ultramax.mcp")

Decide = Callable[[str, str, RoutingRule, dict[str, Any]], tuple[str, str, str | None]]
"""(namespace, tool, rule, arguments) -> (permission, reason, rule id)."""

_FileStamp = tuple[str, int, int] | tuple[str]


class SafetyGate:
    """Decides and audits the gated calls of one gateway (see the module docstring)."""

    def __init__(
        self, paths: Paths, project_dir: Path | None, *, name: str, prefix: bool, decide: Decide | None = None
    ) -> None:
        self.paths = paths
        self.project_dir = project_dir
        self.name = name
        self.prefix = prefix
        self._decide = decide or self._engine_decides
        self._engine: Any = None
        self._stamps: tuple[_FileStamp, ...] | None = None
        self._settings: Settings | None = None
        self._mode: ModeConfig | None = None
        self._audit: AuditLog | None = None

    def check(self, namespace: str, tool: str, rule: RoutingRule, arguments: dict[str, Any]) -> str | None:
        """None to forward the call, else the refusal text for the model."""
        permission, reason, rule_id = self._decide(namespace, tool, rule, arguments)
        if permission == "ask":
            reason = f"{reason} (needs confirmation, which the gateway cannot ask for: refused)"
        self._audit_decision(
            namespace,
            tool,
            arguments,
            permission=permission,
            reason=reason,
            rule_id=rule_id or f"routing:{rule.pattern}",
        )
        if permission == "allow":
            return None
        return f"ultramax safety gate refused {namespace}{'__' if self.prefix else ':'}{tool}: {reason}"

    def close(self) -> None:
        if self._audit is not None:
            self._audit.close()
            self._audit = None

    # -- the engine ---------------------------------------------------------------------------------------
    def _engine_decides(
        self, namespace: str, tool: str, rule: RoutingRule, arguments: dict[str, Any]
    ) -> tuple[str, str, str | None]:
        """(permission, reason, rule id) from the safety engine; any failure denies (fail-closed)."""
        try:
            from ultramax.pipeline.stages.auth import user_name
            from ultramax.safety.engine import SafetyRequest

            settings, mode = self._context()
            request = SafetyRequest(
                tool=f"mcp__{self.name}__{namespace}__{tool}",
                input=arguments,
                mode=mode,
                settings=settings,
                paths=self.paths,
                cwd=self.project_dir,
                project_dir=self.project_dir,
                source="gateway",
                # Claude Code starts the gateway as the user it runs as: that user is the caller, as a hook's
                # peer is for a direct call
                principal=user_name(os.getuid()),
                metadata={"server": namespace, "upstream_tool": tool, "rule": rule.pattern},
            )
            decision = self._warm_engine().evaluate(request)
            return decision.permission, decision.reason, decision.rule
        except Exception as exc:  # noqa: BLE001 -- fail closed on anything
            return "deny", f"safety check failed ({type(exc).__name__}: {exc}); the gateway fails closed", None

    def _warm_engine(self) -> Any:
        if self._engine is None:
            from ultramax.pipeline.stages.safety import default_layers
            from ultramax.safety.engine import SafetyEngine

            self._engine = SafetyEngine(default_layers())
        return self._engine

    def _context(self) -> tuple[Settings, ModeConfig]:
        """The settings and mode, read again only when a settings file changed since the last call."""
        stamps = tuple(_stamp(path) for path in settings_files(self.paths, self.project_dir))
        if stamps != self._stamps or self._settings is None or self._mode is None:
            settings = load_settings(self.paths, self.project_dir)
            self._settings, self._mode = settings, detect_mode(self.project_dir, settings).mode
            self._stamps = stamps
        return self._settings, self._mode

    # -- the audit trail ----------------------------------------------------------------------------------
    def _audit_decision(
        self, namespace: str, tool: str, arguments: dict[str, Any], *, permission: str, reason: str, rule_id: str
    ) -> None:
        try:
            if self._audit is None:
                self.paths.ensure_home()
                self._audit = AuditLog(self.paths.audit_log, self.paths.audit_head)
            entry = {
                "event": "McpGatewayCall",
                "tool": f"mcp__{self.name}__{namespace}__{tool}",
                "project": redact_path(str(self.project_dir)) if self.project_dir else None,
                "decision": "allow" if permission == "allow" else "deny",
                "stage": "gateway",
                "rule": rule_id,
                "reason": redact(reason) if reason else None,
                "input_sha256": digest(json.dumps(arguments, sort_keys=True, default=str)),
            }
            self._audit.append({k: v for k, v in entry.items() if v is not None})
        except (UltramaxError, OSError) as exc:
            log.error("mcp gateway: cannot audit a safety decision: %s", exc)


def _stamp(path: Path) -> _FileStamp:
    try:
        st = os.stat(path)
    except OSError:
        return (str(path),)
    return (str(path), st.st_mtime_ns, st.st_size)
