"""Stage 1: authentication and validation.

Authentication is real: the daemon learns the connecting process's uid from the Unix socket
(``SO_PEERCRED``); a different user is refused, and ``ultramax.requireUser`` pins the principal by name.
Validation checks the shape of the tool input Claude Code sent for the tools whose input ultramax judges,
and ``safety.allowedTools`` restricts which tools may run at all.
"""

from __future__ import annotations

import functools
import os
import pwd
from typing import Any, Literal

from ultramax.pipeline.stage import HookContext, StageOutput

__all__ = ["AuthValidationStage", "user_name"]

# tool -> (field, JSON type) pairs that must be present for ultramax to judge the call
_REQUIRED_INPUT: dict[str, tuple[tuple[str, type], ...]] = {
    "Bash": (("command", str),),
    "Write": (("file_path", str), ("content", str)),
    "Edit": (("file_path", str), ("old_string", str), ("new_string", str)),
    "MultiEdit": (("file_path", str), ("edits", list)),
    "Read": (("file_path", str),),
    "NotebookEdit": (("notebook_path", str),),
}


@functools.lru_cache(maxsize=64)
def user_name(uid: int) -> str:
    """The login name of ``uid`` (its number where it has none): the principal of a call from that user."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


class AuthValidationStage:
    name = "auth_validation"
    phase: Literal["decide", "record"] = "decide"
    critical = True

    def process(self, ctx: HookContext) -> StageOutput:
        uid = ctx.peer_uid
        if uid is not None and uid != os.getuid():
            return StageOutput.block(
                f"hook call from uid {uid} refused: the daemon serves only {user_name(os.getuid())}",
                rule="auth.peer_uid",
            )
        required = ctx.settings.get("ultramax.requireUser")
        principal = user_name(uid if uid is not None else os.getuid())
        if required and principal != required:
            return StageOutput.block(
                f"principal {principal!r} is not the configured user {required!r} (ultramax.requireUser)",
                rule="auth.require_user",
            )
        tool = ctx.event.tool
        if tool is None:
            return StageOutput(metadata={"principal": principal})
        allowed: list[str] = ctx.settings.get("safety.allowedTools")
        if allowed and ctx.event_name == "PreToolUse" and not _tool_allowed(tool, allowed):
            return StageOutput.block(f"tool {tool!r} is not in safety.allowedTools", rule="auth.allowed_tools")
        problem = _input_problem(tool, getattr(ctx.event, "tool_input", {}))
        if problem and ctx.event_name == "PreToolUse":
            verdict: Literal["deny", "ask"] = "deny" if ctx.mode.strict else "ask"
            return StageOutput.block(
                f"malformed {tool} input: {problem}", permission=verdict, rule="validation.tool_input"
            )
        return StageOutput(metadata={"principal": principal})


def _tool_allowed(tool: str, allowed: list[str]) -> bool:
    return any(
        tool == a
        or (a.endswith("*") and tool.startswith(a[:-1]))
        or (a.startswith("mcp__") and tool.startswith(a + "__"))
        for a in allowed
    )


def _input_problem(tool: str, tool_input: Any) -> str | None:
    if not isinstance(tool_input, dict):
        return "tool_input is not an object"
    for key, kind in _REQUIRED_INPUT.get(tool, ()):
        value = tool_input.get(key)
        if not isinstance(value, kind):
            return f"{key!r} must be {'a string' if kind is str else 'an array'}"
    return None
