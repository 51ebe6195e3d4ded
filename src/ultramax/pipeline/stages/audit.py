"""Stage 5: audit. Appends the decision to the hash-chained log before the hook answers.

Inputs are recorded as a SHA-256 digest plus a short redacted summary -- never the raw input. Paths (the
edited file, the project directory) are redacted as paths: a secret can be a file or folder name.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from ultramax.audit import AuditLog
from ultramax.pipeline.stage import HookContext, StageOutput
from ultramax.redact import redact, redact_path

__all__ = ["AuditStage", "summarize"]

SUMMARY_CHARS = 200
_PATH_KEYS = frozenset({"file_path", "notebook_path"})
safety_log = logging.getLogger("ultramax.safety")


def summarize(ctx: HookContext) -> str:
    """A short, redacted description of what the event was about."""
    event = ctx.event
    name = ctx.event_name
    tool_input: Any = getattr(event, "tool_input", None)
    text: str
    if isinstance(tool_input, dict):
        for key in ("command", "file_path", "notebook_path", "url", "pattern", "query", "prompt"):
            value = tool_input.get(key)
            if isinstance(value, str):
                text = f"{event.tool} {key}={redact_path(value) if key in _PATH_KEYS else value}"
                break
        else:
            text = f"{event.tool} " + ",".join(sorted(tool_input))
    elif name == "UserPromptSubmit":
        text = "prompt: " + str(getattr(event, "prompt", ""))
    elif name in ("Stop", "SubagentStop"):
        text = "answer: " + str(getattr(event, "last_assistant_message", "") or "")
    else:
        detail = next(
            (
                redact_path(str(v)) if k in _PATH_KEYS else str(v)
                for k, v in event.to_dict().items()
                if k in ("source", "reason", "trigger", "notification_type", "error", "file_path")
            ),
            "",
        )
        text = f"{name} {detail}".strip()
    text = redact(" ".join(text.split()))
    return text if len(text) <= SUMMARY_CHARS else text[: SUMMARY_CHARS - 1] + "…"


class AuditStage:
    name = "audit"
    phase: Literal["decide", "record"] = "record"

    def __init__(self, log: AuditLog) -> None:
        self.log = log

    def process(self, ctx: HookContext) -> StageOutput:
        d = ctx.decision
        entry: dict[str, Any] = {
            "event": ctx.event_name,
            "session": ctx.event.session_id,
            "tool": ctx.event.tool,
            "mode": ctx.mode.name,
            "project": redact_path(str(ctx.project_dir)) if ctx.project_dir else None,
            "decision": d.outcome,
            "stage": d.stage,
            "rule": d.rule,
            "reason": redact(d.reason) if d.reason else None,
            "input_sha256": ctx.input_digest,
            "summary": summarize(ctx),
            "stages": [f"{r.stage}:{r.result}" for r in ctx.trace],
            # with tracing on, the record also carries each stage's time: a trace of the run, kept with it
            "stage_ms": {r.stage: round(r.ms, 3) for r in ctx.trace}
            if ctx.settings.get("observability.tracingEnabled")
            else None,
        }
        if ctx.errors:
            entry["errors"] = [redact(e) for e in ctx.errors]
        if ctx.fallback is not None:  # decided by the hook client in-process: the daemon did not answer
            entry["fallback"] = redact(ctx.fallback)
        record = self.log.append({k: v for k, v in entry.items() if v is not None})
        if d.permission in ("deny", "ask") or d.block:
            safety_log.warning(
                "decision",
                extra={
                    "fields": {k: record[k] for k in ("seq", "event", "decision", "summary") if k in record}
                    | {"reason": entry["reason"]}
                },
            )
        return StageOutput(metadata={"audit_seq": record["seq"]})
