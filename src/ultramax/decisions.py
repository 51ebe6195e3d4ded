"""What a hook answers, rendered exactly the way Claude Code reads it.

Rules (reference: Claude Code hooks docs, "JSON output"): always exit 0 with one JSON object on stdout;
event-specific fields go inside ``hookSpecificOutput`` with a matching ``hookEventName`` (without it the
block is silently dropped); PreToolUse speaks ``permissionDecision``; blockable events use the top-level
``decision: "block"``; ``additionalContext`` is capped at 10,000 characters.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "CONTEXT_CAP",
    "CONTEXT_EVENTS",
    "Decision",
    "HookReply",
    "Permission",
    "render",
]

Permission = Literal["allow", "deny", "ask"]

CONTEXT_CAP = 10_000
"""Claude Code stores anything longer than this in a file and shows the model only a preview."""

CONTEXT_EVENTS = frozenset(
    {
        "SessionStart",
        "Setup",
        "SubagentStart",
        "UserPromptSubmit",
        "UserPromptExpansion",
        "PreToolUse",
        "PostToolUse",
        "PostToolUseFailure",
        "PostToolBatch",
        "Stop",
        "SubagentStop",
    }
)
"""Events whose ``hookSpecificOutput.additionalContext`` reaches the model."""

BLOCKABLE_EVENTS = frozenset(
    {
        "UserPromptSubmit",
        "UserPromptExpansion",
        "PostToolUse",
        "PostToolUseFailure",
        "PostToolBatch",
        "Stop",
        "SubagentStop",
        "ConfigChange",
        "PreCompact",
        "TaskCreated",
    }
)
"""Events with a top-level ``decision: "block"``."""

_TRUNCATION_NOTE = "\n[ultramax: context truncated to fit Claude Code's 10,000-character hook limit]"


@dataclass(slots=True)
class Decision:
    """The pipeline's verdict on one hook event; every field is optional."""

    permission: Permission | None = None
    reason: str | None = None
    block: bool = False
    additional_context: list[str] = field(default_factory=list)
    system_message: str | None = None
    stage: str | None = None
    rule: str | None = None

    @property
    def outcome(self) -> str:
        """One word for metrics and the audit log."""
        if self.permission is not None:
            return self.permission
        return "block" if self.block else "continue"


@dataclass(frozen=True, slots=True)
class HookReply:
    """Exactly what the hook process prints and how it exits."""

    exit_code: int = 0
    stdout: str = ""
    stderr: str = ""

    def encode(self) -> bytes:
        """Wire form used between the daemon and the stdlib hook client: ``exit len\\n`` stdout stderr."""
        out = self.stdout.encode()
        return f"{self.exit_code} {len(out)}\n".encode() + out + self.stderr.encode()


def cap_context(parts: list[str], cap: int = CONTEXT_CAP) -> str:
    """Join context parts, cutting at a line boundary so the whole fits within ``cap`` characters."""
    text = "\n\n".join(p for p in parts if p)
    if len(text) <= cap:
        return text
    room = cap - len(_TRUNCATION_NOTE)
    cut = text.rfind("\n", 0, room)
    return text[: cut if cut > room // 2 else room] + _TRUNCATION_NOTE


def render(event_name: str, decision: Decision) -> HookReply:
    """Turn a decision into the stdout JSON and exit code Claude Code honours for ``event_name``."""
    out: dict[str, Any] = {}
    specific: dict[str, Any] = {}
    reason = decision.reason or ""
    if decision.permission is not None:
        if event_name == "PreToolUse":
            specific["permissionDecision"] = decision.permission
            if reason:
                specific["permissionDecisionReason"] = reason
        elif event_name == "PermissionRequest" and decision.permission in ("allow", "deny"):
            behaviour: dict[str, Any] = {"behavior": decision.permission}
            if decision.permission == "deny" and reason:
                behaviour["message"] = reason
            specific["decision"] = behaviour
        elif decision.permission == "deny" and event_name in BLOCKABLE_EVENTS:
            out["decision"] = "block"
            out["reason"] = reason or "blocked by ultramax"
    if decision.block and event_name in BLOCKABLE_EVENTS:
        out["decision"] = "block"
        out["reason"] = reason or "blocked by ultramax"
    if decision.additional_context and event_name in CONTEXT_EVENTS:
        specific["additionalContext"] = cap_context(decision.additional_context)
    if decision.system_message:
        out["systemMessage"] = decision.system_message[:CONTEXT_CAP]
    if specific:
        out["hookSpecificOutput"] = {"hookEventName": event_name, **specific}
    if not out:
        return HookReply()
    return HookReply(stdout=json.dumps(out, ensure_ascii=False, separators=(",", ":")) + "\n")
