"""Hook payloads become typed events; anything wrong is a HookInputError that says what and where."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import PayloadFactory, hook_payload
from ultramax.errors import HookInputError
from ultramax.events import (
    EVENT_TYPES,
    HookEvent,
    PostToolUse,
    PreToolUse,
    SessionStart,
    Stop,
    SubagentStop,
    UserPromptSubmit,
    parse_event,
    parse_payload,
)


def test_every_captured_claude_code_payload_parses_to_its_typed_class(
    captured_payloads: list[dict[str, Any]],
) -> None:
    assert captured_payloads, "the capture holds payloads"
    for data in captured_payloads:
        event = parse_payload(json.dumps(data).encode(), data["hook_event_name"])
        assert type(event) is EVENT_TYPES[data["hook_event_name"]]
        assert event.session_id == data["session_id"]
        assert event.extra == {}, f"{data['hook_event_name']} has fields the model does not know: {event.extra}"


def test_every_captured_payload_round_trips_through_to_dict(captured_payloads: list[dict[str, Any]]) -> None:
    for data in captured_payloads:
        assert parse_event(data).to_dict() == data


def test_newer_fields_are_typed_attributes_not_extras(make_payload: PayloadFactory) -> None:
    pre = parse_event(make_payload("PreToolUse", effort={"level": "high"}))
    assert isinstance(pre, PreToolUse)
    assert pre.prompt_id == "2f09b7db-020c-4e48-becb-41d60d104045"
    assert pre.effort == {"level": "high"}
    assert pre.tool == "Bash"
    assert pre.tool_input["command"] == "npm test -- auth"

    post = parse_event(make_payload("PostToolUse", duration_ms=8123))
    assert isinstance(post, PostToolUse)
    assert post.duration_ms == 8123

    tasks = [{"id": "task-7", "type": "shell", "status": "running", "command": "npm run dev"}]
    crons = [{"id": "c1", "schedule": "*/5 * * * *"}]
    stop = parse_event(make_payload("Stop", last_assistant_message="done", background_tasks=tasks, session_crons=crons))
    assert isinstance(stop, Stop)
    assert (stop.last_assistant_message, stop.background_tasks, stop.session_crons) == ("done", tasks, crons)

    sub = parse_event(
        make_payload("SubagentStop", agent_id="a4d2", agent_type="Explore", last_assistant_message="found 12")
    )
    assert isinstance(sub, SubagentStop)
    assert (sub.agent_id, sub.agent_type, sub.last_assistant_message) == ("a4d2", "Explore", "found 12")
    for event in (pre, post, stop, sub):
        assert event.extra == {}


def test_a_fractional_duration_is_accepted_as_a_number(make_payload: PayloadFactory) -> None:
    post = parse_event(make_payload("PostToolUse", duration_ms=12.5))
    assert isinstance(post, PostToolUse)
    assert post.duration_ms == 12.5


def test_unknown_fields_are_kept_in_extra_and_come_back_from_to_dict(make_payload: PayloadFactory) -> None:
    data = make_payload("UserPromptSubmit", session_title="auth fixes", future_field={"nested": [1, None]})
    event = parse_event(data)
    assert isinstance(event, UserPromptSubmit)
    assert event.extra == {"session_title": "auth fixes", "future_field": {"nested": [1, None]}}
    assert event.to_dict() == data


def test_an_event_newer_than_ultramax_parses_as_a_generic_event_with_its_fields_kept() -> None:
    data = {"session_id": "s1", "hook_event_name": "ContextBudgetLow", "remaining": 1200}
    event = parse_event(data, "ContextBudgetLow")
    assert type(event) is HookEvent
    assert event.extra == {"remaining": 1200}
    assert event.to_dict() == data


def test_a_field_of_the_wrong_type_is_named_with_what_it_should_be(make_payload: PayloadFactory) -> None:
    with pytest.raises(HookInputError) as err:
        parse_event(make_payload("PreToolUse", tool_name=5))
    assert "PreToolUse" in str(err.value)
    assert "'tool_name'" in str(err.value)
    assert "must be a string" in str(err.value)
    assert "got 5" in str(err.value)


def test_true_is_not_accepted_where_a_number_is_expected(make_payload: PayloadFactory) -> None:
    with pytest.raises(HookInputError, match=r"'duration_ms' must be an integer or a number, got true"):
        parse_event(make_payload("PostToolUse", duration_ms=True))


def test_an_object_field_given_a_string_is_named(make_payload: PayloadFactory) -> None:
    with pytest.raises(HookInputError, match=r"'tool_input' must be an object"):
        parse_event(make_payload("PreToolUse", tool_input="ls"))


def test_a_missing_required_field_is_named(make_payload: PayloadFactory) -> None:
    data = make_payload("PreToolUse")
    del data["tool_name"]
    with pytest.raises(HookInputError, match=r"PreToolUse: required field 'tool_name' is missing"):
        parse_event(data)
    data = make_payload("SessionStart")
    del data["session_id"]
    with pytest.raises(HookInputError, match=r"'session_id' is missing"):
        parse_event(data)


def test_a_null_optional_field_is_treated_as_absent(make_payload: PayloadFactory) -> None:
    event = parse_event(make_payload("SessionStart", model=None))
    assert isinstance(event, SessionStart)
    assert event.model is None


def test_hook_event_name_that_disagrees_with_the_command_line_is_refused(make_payload: PayloadFactory) -> None:
    with pytest.raises(HookInputError) as err:
        parse_event(make_payload("PostToolUse"), "PreToolUse")
    message = str(err.value)
    assert "hook_event_name='PostToolUse'" in message
    assert "registered for 'PreToolUse'" in message
    assert "matcher" in message


def test_the_event_name_from_the_command_line_is_used_when_the_payload_has_none(
    make_payload: PayloadFactory,
) -> None:
    data = make_payload("SessionStart")
    del data["hook_event_name"]
    event = parse_event(data, "SessionStart")
    assert isinstance(event, SessionStart)
    with pytest.raises(HookInputError, match="no hook_event_name"):
        parse_event(data)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"", "hook input is empty"),
        (b"  \n\t", "hook input is empty"),
        (b'{"session_id": "s1", "hook_event_name": ', "not valid JSON (Expecting value at line 1 column 41)"),
        (b"{'single': 'quotes'}", "not valid JSON (Expecting property name enclosed in double quotes at line 1"),
        (b'["PreToolUse"]', "must be a JSON object, got list"),
    ],
    ids=["empty", "blank", "truncated", "python-literal", "array"],
)
def test_unusable_input_is_refused_with_a_clear_message(raw: bytes, expected: str) -> None:
    with pytest.raises(HookInputError) as err:
        parse_payload(raw, "PreToolUse")
    assert expected in str(err.value)
    assert "\n" not in str(err.value)


def test_an_oversized_payload_is_refused_before_it_is_decoded(make_payload: PayloadFactory) -> None:
    raw = json.dumps(make_payload("PreToolUse", tool_input={"command": "x" * 5000})).encode()
    with pytest.raises(HookInputError) as err:
        parse_payload(raw, "PreToolUse", max_bytes=4096)
    message = str(err.value)
    assert f"{len(raw):,} bytes" in message
    assert "4,096-byte limit" in message
    assert "ultramax.maxPayloadBytes" in message
    assert isinstance(parse_payload(raw, "PreToolUse", max_bytes=len(raw)), PreToolUse)


DOCUMENTED_EVENTS = [
    "SessionStart",
    "Setup",
    "InstructionsLoaded",
    "UserPromptSubmit",
    "UserPromptExpansion",
    "MessageDisplay",
    "PreToolUse",
    "PermissionRequest",
    "PermissionDenied",
    "PostToolUse",
    "PostToolUseFailure",
    "PostToolBatch",
    "Notification",
    "SubagentStart",
    "SubagentStop",
    "TaskCreated",
    "TaskCompleted",
    "Stop",
    "StopFailure",
    "TeammateIdle",
    "ConfigChange",
    "CwdChanged",
    "DirectoryAdded",
    "FileChanged",
    "WorktreeCreate",
    "WorktreeRemove",
    "PreCompact",
    "PostCompact",
    "Elicitation",
    "ElicitationResult",
    "SessionEnd",
]


def test_every_documented_event_has_a_typed_class_that_knows_its_own_name() -> None:
    assert set(EVENT_TYPES) == set(DOCUMENTED_EVENTS)
    for name, cls in EVENT_TYPES.items():
        assert cls.event_name == name
        assert issubclass(cls, HookEvent)


def test_input_nested_too_deeply_is_a_clear_hook_input_error() -> None:
    deep = '{"hook_event_name": "PreToolUse", "tool_input": ' + "[" * 5000 + "]" * 5000 + "}"
    with pytest.raises(HookInputError, match="nested too deeply"):
        parse_payload(deep)


def test_half_a_surrogate_pair_becomes_a_replacement_character_that_utf8_writers_accept() -> None:
    raw = json.dumps({**hook_payload("UserPromptSubmit"), "prompt": "PLACEHOLDER"}).replace(
        "PLACEHOLDER", "ship it \\ud83d today \\ud83d\\ude00"
    )
    event = parse_payload(raw, "UserPromptSubmit")
    assert isinstance(event, UserPromptSubmit)
    assert event.prompt == "ship it \ufffd today \U0001f600"
    event.prompt.encode("utf-8")  # would raise UnicodeEncodeError with the lone half kept
