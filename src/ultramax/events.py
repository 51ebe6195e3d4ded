"""Typed models of every Claude Code hook event (32 events as of Claude Code 2.1.24x).

Each event is a dataclass holding the common fields plus its own (treat it as read-only: it is not frozen
because generating the frozen methods of 31 classes costs the hook's in-process fallback ~30 ms at import).
Fields Claude Code added later (``prompt_id``, ``effort``, ``duration_ms``, ``last_assistant_message`` ...)
are typed too, and any field this module does not know is kept in ``extra`` rather than rejected, so a newer
Claude Code never breaks ultramax. ``parse_event`` checks the JSON types of the fields it knows and names
the field that is wrong.
"""

from __future__ import annotations

import json
import re
import types
import typing
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar, Union, get_args, get_origin, get_type_hints

from ultramax.errors import HookInputError, json_problem

__all__ = [
    "EVENT_TYPES",
    "TOOL_EVENTS",
    "ConfigChange",
    "CwdChanged",
    "DirectoryAdded",
    "Elicitation",
    "ElicitationResult",
    "FileChanged",
    "HookEvent",
    "InstructionsLoaded",
    "MessageDisplay",
    "Notification",
    "PermissionDenied",
    "PermissionRequest",
    "PostCompact",
    "PostToolBatch",
    "PostToolUse",
    "PostToolUseFailure",
    "PreCompact",
    "PreToolUse",
    "SessionEnd",
    "SessionStart",
    "Setup",
    "Stop",
    "StopFailure",
    "SubagentStart",
    "SubagentStop",
    "TaskCompleted",
    "TaskCreated",
    "TeammateIdle",
    "UserPromptExpansion",
    "UserPromptSubmit",
    "WorktreeCreate",
    "WorktreeRemove",
    "parse_event",
    "parse_payload",
]

JSONObject = dict[str, Any]


@dataclass(kw_only=True, eq=False)
class HookEvent:
    """Fields every hook payload may carry (``session_id`` and ``hook_event_name`` always do)."""

    event_name: ClassVar[str] = ""

    hook_event_name: str
    session_id: str
    transcript_path: str | None = None
    cwd: str | None = None
    permission_mode: str | None = None
    prompt_id: str | None = None
    effort: JSONObject | None = None
    agent_id: str | None = None
    agent_type: str | None = None
    extra: JSONObject = field(default_factory=dict)

    @property
    def tool(self) -> str | None:
        """The tool name for tool events, else None."""
        return None

    def to_dict(self) -> JSONObject:
        """The payload as Claude Code sent it (known fields that were present, plus unknown ones)."""
        out: JSONObject = {}
        for f in fields(self):
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            if value is not None:
                out[f.name] = value
        out.update(self.extra)
        return out


@dataclass(kw_only=True, eq=False)
class _ToolEvent(HookEvent):
    tool_name: str
    tool_input: JSONObject = field(default_factory=dict)

    @property
    def tool(self) -> str | None:
        return self.tool_name


@dataclass(kw_only=True, eq=False)
class SessionStart(HookEvent):
    event_name: ClassVar[str] = "SessionStart"
    source: str | None = None
    model: str | None = None
    session_title: str | None = None


@dataclass(kw_only=True, eq=False)
class Setup(HookEvent):
    event_name: ClassVar[str] = "Setup"
    trigger: str | None = None


@dataclass(kw_only=True, eq=False)
class InstructionsLoaded(HookEvent):
    event_name: ClassVar[str] = "InstructionsLoaded"
    file_path: str | None = None
    memory_type: str | None = None
    load_reason: str | None = None
    globs: list[Any] | None = None
    trigger_file_path: str | None = None
    parent_file_path: str | None = None


@dataclass(kw_only=True, eq=False)
class UserPromptSubmit(HookEvent):
    event_name: ClassVar[str] = "UserPromptSubmit"
    prompt: str = ""


@dataclass(kw_only=True, eq=False)
class UserPromptExpansion(HookEvent):
    event_name: ClassVar[str] = "UserPromptExpansion"
    expansion_type: str | None = None
    command_name: str | None = None
    command_args: str | None = None
    command_source: str | None = None
    prompt: str | None = None


@dataclass(kw_only=True, eq=False)
class MessageDisplay(HookEvent):
    event_name: ClassVar[str] = "MessageDisplay"
    turn_id: str | None = None
    message_id: str | None = None
    index: int | None = None
    final: bool | None = None
    delta: str | None = None


@dataclass(kw_only=True, eq=False)
class PreToolUse(_ToolEvent):
    event_name: ClassVar[str] = "PreToolUse"
    tool_use_id: str | None = None


@dataclass(kw_only=True, eq=False)
class PermissionRequest(_ToolEvent):
    event_name: ClassVar[str] = "PermissionRequest"
    permission_suggestions: list[Any] | None = None


@dataclass(kw_only=True, eq=False)
class PermissionDenied(_ToolEvent):
    event_name: ClassVar[str] = "PermissionDenied"
    tool_use_id: str | None = None
    reason: str | None = None


@dataclass(kw_only=True, eq=False)
class PostToolUse(_ToolEvent):
    event_name: ClassVar[str] = "PostToolUse"
    tool_response: Any = None
    tool_use_id: str | None = None
    duration_ms: int | float | None = None


@dataclass(kw_only=True, eq=False)
class PostToolUseFailure(_ToolEvent):
    event_name: ClassVar[str] = "PostToolUseFailure"
    tool_use_id: str | None = None
    error: str | None = None
    is_interrupt: bool | None = None
    duration_ms: int | float | None = None


@dataclass(kw_only=True, eq=False)
class PostToolBatch(HookEvent):
    event_name: ClassVar[str] = "PostToolBatch"
    tool_calls: list[Any] = field(default_factory=list)


@dataclass(kw_only=True, eq=False)
class Notification(HookEvent):
    event_name: ClassVar[str] = "Notification"
    message: str | None = None
    title: str | None = None
    notification_type: str | None = None


@dataclass(kw_only=True, eq=False)
class SubagentStart(HookEvent):
    event_name: ClassVar[str] = "SubagentStart"


@dataclass(kw_only=True, eq=False)
class SubagentStop(HookEvent):
    event_name: ClassVar[str] = "SubagentStop"
    stop_hook_active: bool | None = None
    agent_transcript_path: str | None = None
    last_assistant_message: str | None = None
    background_tasks: list[Any] | None = None
    session_crons: list[Any] | None = None


@dataclass(kw_only=True, eq=False)
class _TaskEvent(HookEvent):
    task_id: str | None = None
    task_subject: str | None = None
    task_description: str | None = None
    teammate_name: str | None = None
    team_name: str | None = None


@dataclass(kw_only=True, eq=False)
class TaskCreated(_TaskEvent):
    event_name: ClassVar[str] = "TaskCreated"


@dataclass(kw_only=True, eq=False)
class TaskCompleted(_TaskEvent):
    event_name: ClassVar[str] = "TaskCompleted"


@dataclass(kw_only=True, eq=False)
class Stop(HookEvent):
    event_name: ClassVar[str] = "Stop"
    stop_hook_active: bool | None = None
    last_assistant_message: str | None = None
    background_tasks: list[Any] | None = None
    session_crons: list[Any] | None = None


@dataclass(kw_only=True, eq=False)
class StopFailure(HookEvent):
    event_name: ClassVar[str] = "StopFailure"
    error: str | None = None
    error_details: str | None = None
    last_assistant_message: str | None = None


@dataclass(kw_only=True, eq=False)
class TeammateIdle(HookEvent):
    event_name: ClassVar[str] = "TeammateIdle"
    teammate_name: str | None = None
    team_name: str | None = None


@dataclass(kw_only=True, eq=False)
class ConfigChange(HookEvent):
    event_name: ClassVar[str] = "ConfigChange"
    source: str | None = None
    file_path: str | None = None


@dataclass(kw_only=True, eq=False)
class CwdChanged(HookEvent):
    event_name: ClassVar[str] = "CwdChanged"
    old_cwd: str | None = None
    new_cwd: str | None = None


@dataclass(kw_only=True, eq=False)
class DirectoryAdded(HookEvent):
    event_name: ClassVar[str] = "DirectoryAdded"
    directory: str | None = None
    source: str | None = None


@dataclass(kw_only=True, eq=False)
class FileChanged(HookEvent):
    event_name: ClassVar[str] = "FileChanged"
    file_path: str | None = None
    event: str | None = None


@dataclass(kw_only=True, eq=False)
class WorktreeCreate(HookEvent):
    event_name: ClassVar[str] = "WorktreeCreate"
    name: str | None = None


@dataclass(kw_only=True, eq=False)
class WorktreeRemove(HookEvent):
    event_name: ClassVar[str] = "WorktreeRemove"
    worktree_path: str | None = None


@dataclass(kw_only=True, eq=False)
class PreCompact(HookEvent):
    event_name: ClassVar[str] = "PreCompact"
    trigger: str | None = None
    custom_instructions: str | None = None


@dataclass(kw_only=True, eq=False)
class PostCompact(HookEvent):
    event_name: ClassVar[str] = "PostCompact"
    trigger: str | None = None
    compact_summary: str | None = None


@dataclass(kw_only=True, eq=False)
class Elicitation(HookEvent):
    event_name: ClassVar[str] = "Elicitation"
    mcp_server_name: str | None = None
    message: str | None = None
    mode: str | None = None
    url: str | None = None
    elicitation_id: str | None = None
    requested_schema: JSONObject | None = None


@dataclass(kw_only=True, eq=False)
class ElicitationResult(HookEvent):
    event_name: ClassVar[str] = "ElicitationResult"
    mcp_server_name: str | None = None
    action: str | None = None
    mode: str | None = None
    elicitation_id: str | None = None
    content: JSONObject | None = None


@dataclass(kw_only=True, eq=False)
class SessionEnd(HookEvent):
    event_name: ClassVar[str] = "SessionEnd"
    reason: str | None = None


EVENT_TYPES: dict[str, type[HookEvent]] = {
    cls.event_name: cls
    for cls in (
        SessionStart,
        Setup,
        InstructionsLoaded,
        UserPromptSubmit,
        UserPromptExpansion,
        MessageDisplay,
        PreToolUse,
        PermissionRequest,
        PermissionDenied,
        PostToolUse,
        PostToolUseFailure,
        PostToolBatch,
        Notification,
        SubagentStart,
        SubagentStop,
        TaskCreated,
        TaskCompleted,
        Stop,
        StopFailure,
        TeammateIdle,
        ConfigChange,
        CwdChanged,
        DirectoryAdded,
        FileChanged,
        WorktreeCreate,
        WorktreeRemove,
        PreCompact,
        PostCompact,
        Elicitation,
        ElicitationResult,
        SessionEnd,
    )
}

TOOL_EVENTS = frozenset({"PreToolUse", "PermissionRequest", "PermissionDenied", "PostToolUse", "PostToolUseFailure"})

_JSON_TYPE_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    dict: "an object",
    list: "an array",
}


def _allowed_types(hint: Any) -> tuple[type, ...] | None:
    """The JSON-level Python types a field hint admits (None means anything goes)."""
    if hint is Any:
        return None
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        out: list[type] = []
        for arg in get_args(hint):
            if arg is type(None):
                continue
            sub = _allowed_types(arg)
            if sub is None:
                return None
            out.extend(sub)
        return tuple(out)
    if origin is not None:
        return (typing.cast(type, origin),)
    return (typing.cast(type, hint),)


_SPECS: dict[type[HookEvent], dict[str, tuple[tuple[type, ...] | None, bool]]] = {}


def _spec(cls: type[HookEvent]) -> dict[str, tuple[tuple[type, ...] | None, bool]]:
    """Field name -> (allowed JSON types, required?) for one event class, computed once."""
    cached = _SPECS.get(cls)
    if cached is None:
        hints = get_type_hints(cls)
        cached = {}
        for f in fields(cls):
            if f.name == "extra":
                continue
            required = f.default is MISSING and f.default_factory is MISSING
            cached[f.name] = (_allowed_types(hints[f.name]), required)
        _SPECS[cls] = cached
    return cached


def _type_ok(value: Any, allowed: tuple[type, ...]) -> bool:
    if isinstance(value, bool):  # bool is an int subclass; only accept it where bool is allowed
        return bool in allowed
    if float in allowed and isinstance(value, int):
        return True
    return isinstance(value, allowed)


def parse_event(data: Any, expected: str | None = None) -> HookEvent:
    """Build the typed event for one decoded payload; ``expected`` is the event named on the command line.

    Raises HookInputError naming the field and what it should be.
    """
    if not isinstance(data, dict):
        raise HookInputError(f"hook input must be a JSON object, got {type(data).__name__}")
    name = data.get("hook_event_name", expected)
    if not isinstance(name, str) or not name:
        raise HookInputError("hook input has no hook_event_name (and none was given on the command line)")
    if expected and name != expected:
        raise HookInputError(
            f"hook input says hook_event_name={name!r} but the hook was registered for {expected!r}; "
            "check the matcher in settings.json"
        )
    cls = EVENT_TYPES.get(name, HookEvent)
    spec = _spec(cls)
    kwargs: dict[str, Any] = {"hook_event_name": name}
    extra: JSONObject = {}
    for key, value in data.items():
        if key == "hook_event_name":
            continue
        entry = spec.get(key)
        if entry is None or key == "extra":
            extra[key] = value
            continue
        allowed, _required = entry
        if value is None:
            continue
        if allowed is not None and not _type_ok(value, allowed):
            want = " or ".join(_JSON_TYPE_NAMES.get(t, t.__name__) for t in allowed)
            raise HookInputError(f"{name}: field {key!r} must be {want}, got {json.dumps(value)[:80]}")
        kwargs[key] = value
    for key, (_allowed, required) in spec.items():
        if required and key not in kwargs:
            raise HookInputError(f"{name}: required field {key!r} is missing")
    return cls(**kwargs, extra=extra)


def parse_payload(raw: bytes | str, expected: str | None = None, *, max_bytes: int | None = None) -> HookEvent:
    """Decode and type one hook payload exactly as read from stdin."""
    size = len(raw)
    if max_bytes is not None and size > max_bytes:
        raise HookInputError(
            f"hook input is {size:,} bytes, over the {max_bytes:,}-byte limit "
            "(raise ultramax.maxPayloadBytes if this is legitimate)"
        )
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    if not text.strip():
        raise HookInputError("hook input is empty: Claude Code sends one JSON object on stdin")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise HookInputError(f"hook input is not valid JSON ({json_problem(exc)})") from exc
    except RecursionError as exc:  # thousands of nested brackets: the decoder's recursion gives out
        raise HookInputError("hook input is nested too deeply to read") from exc
    if _SURROGATE_ESCAPE.search(text):
        data = _without_lone_surrogates(data)
    return parse_event(data, expected)


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _without_lone_surrogates(value: Any) -> Any:
    """JSON may spell half of a surrogate pair (\\ud83d alone), which no UTF-8 writer -- the audit log, the
    memory store, the tokenizer -- accepts: such halves become U+FFFD."""
    if isinstance(value, str):
        return "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in value) if _has_surrogate(value) else value
    if isinstance(value, dict):
        return {k: _without_lone_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_lone_surrogates(v) for v in value]
    return value


def _has_surrogate(text: str) -> bool:
    return any("\ud800" <= c <= "\udfff" for c in text)
