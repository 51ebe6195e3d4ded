"""Decisions are rendered exactly the way Claude Code reads hook output."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ultramax.decisions import (
    BLOCKABLE_EVENTS,
    CONTEXT_CAP,
    CONTEXT_EVENTS,
    Decision,
    HookReply,
    Permission,
    cap_context,
    render,
)


def rendered(event: str, decision: Decision) -> dict[str, Any]:
    reply = render(event, decision)
    assert reply.exit_code == 0
    assert reply.stdout.endswith("\n")
    assert reply.stdout.count("\n") == 1, "one JSON object on one line"
    value = json.loads(reply.stdout)
    assert isinstance(value, dict)
    return value


@pytest.mark.parametrize("permission", ["deny", "ask", "allow"])
def test_a_pre_tool_use_permission_goes_inside_hook_specific_output_with_its_event_name(
    permission: Permission,
) -> None:
    out = rendered("PreToolUse", Decision(permission=permission, reason="rm -rf outside the project"))
    assert out == {
        "hookSpecificOutput": {
            "hookEventName": "PreToolUse",
            "permissionDecision": permission,
            "permissionDecisionReason": "rm -rf outside the project",
        }
    }


def test_a_pre_tool_use_permission_without_a_reason_has_no_reason_field() -> None:
    out = rendered("PreToolUse", Decision(permission="allow"))
    assert out == {"hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision": "allow"}}


def test_a_permission_request_denial_is_a_decision_behaviour_with_the_message() -> None:
    out = rendered("PermissionRequest", Decision(permission="deny", reason="kill switch is on"))
    assert out == {
        "hookSpecificOutput": {
            "hookEventName": "PermissionRequest",
            "decision": {"behavior": "deny", "message": "kill switch is on"},
        }
    }


def test_a_permission_request_approval_is_a_bare_allow_behaviour() -> None:
    out = rendered("PermissionRequest", Decision(permission="allow", reason="read-only"))
    assert out == {"hookSpecificOutput": {"hookEventName": "PermissionRequest", "decision": {"behavior": "allow"}}}


def test_asking_on_a_permission_request_leaves_the_prompt_to_the_user() -> None:
    assert render("PermissionRequest", Decision(permission="ask", reason="unsure")) == HookReply()


@pytest.mark.parametrize("event", sorted(BLOCKABLE_EVENTS))
def test_blockable_events_block_with_a_top_level_decision_and_reason(event: str) -> None:
    out = rendered(event, Decision(block=True, reason="secret in prompt"))
    assert out == {"decision": "block", "reason": "secret in prompt"}
    assert rendered(event, Decision(permission="deny", reason="no")) == {"decision": "block", "reason": "no"}


def test_a_block_without_a_reason_still_carries_one() -> None:
    assert rendered("Stop", Decision(block=True)) == {"decision": "block", "reason": "blocked by ultramax"}


@pytest.mark.parametrize("event", ["SessionStart", "SessionEnd", "Notification", "PreToolUse"])
def test_a_block_on_an_event_that_cannot_block_is_not_rendered_as_one(event: str) -> None:
    reply = render(event, Decision(block=True, reason="no"))
    assert '"decision"' not in reply.stdout


@pytest.mark.parametrize("event", sorted(CONTEXT_EVENTS))
def test_additional_context_is_rendered_for_events_that_deliver_it(event: str) -> None:
    out = rendered(event, Decision(additional_context=["mode: development", "kill switch: off"]))
    assert out == {
        "hookSpecificOutput": {"hookEventName": event, "additionalContext": "mode: development\n\nkill switch: off"}
    }


@pytest.mark.parametrize("event", ["SessionEnd", "Notification", "PermissionRequest", "PreCompact", "StopFailure"])
def test_additional_context_is_dropped_for_events_that_ignore_it(event: str) -> None:
    assert render(event, Decision(additional_context=["ignored"])) == HookReply()


def test_context_over_the_cap_is_cut_at_a_line_boundary_with_a_note() -> None:
    lines = [f"memory {i:04d}: " + "x" * 80 for i in range(200)]  # ~18,000 characters
    out = rendered("UserPromptSubmit", Decision(additional_context=["\n".join(lines)]))
    context = out["hookSpecificOutput"]["additionalContext"]
    assert len(context) <= CONTEXT_CAP
    body, note = context.rsplit("\n", 1)
    assert note == "[ultramax: context truncated to fit Claude Code's 10,000-character hook limit]"
    kept = body.split("\n")
    assert kept == lines[: len(kept)], "only whole lines are kept"
    assert len(kept) > 90


def test_context_within_the_cap_is_kept_whole() -> None:
    text = "y" * CONTEXT_CAP
    assert cap_context([text]) == text


def test_a_single_huge_line_is_cut_hard_and_still_fits() -> None:
    capped = cap_context(["z" * 50_000])
    assert len(capped) == CONTEXT_CAP
    assert capped.endswith("hook limit]")


def test_a_system_message_is_top_level_and_capped() -> None:
    out = rendered("PostToolUse", Decision(system_message="w" * 20_000))
    assert list(out) == ["systemMessage"]
    assert len(out["systemMessage"]) == CONTEXT_CAP


def test_a_deny_with_context_and_a_warning_renders_all_three() -> None:
    out = rendered(
        "PreToolUse",
        Decision(permission="deny", reason="kill switch", additional_context=["why"], system_message="careful"),
    )
    assert out == {
        "systemMessage": "careful",
        "hookSpecificOutput": {
            "hookEventName": "PreToolUse",
            "permissionDecision": "deny",
            "permissionDecisionReason": "kill switch",
            "additionalContext": "why",
        },
    }


@pytest.mark.parametrize("event", ["PreToolUse", "SessionStart", "Stop", "SessionEnd"])
def test_nothing_to_say_is_empty_stdout_and_exit_zero(event: str) -> None:
    reply = render(event, Decision())
    assert reply == HookReply(exit_code=0, stdout="", stderr="")


def test_the_outcome_word_names_permission_then_block_then_continue() -> None:
    assert Decision(permission="ask", block=True).outcome == "ask"
    assert Decision(block=True).outcome == "block"
    assert Decision().outcome == "continue"


def test_the_wire_form_carries_exit_code_stdout_length_and_stderr() -> None:
    reply = HookReply(0, '{"a":"é"}\n', "warning\n")
    stdout = reply.stdout.encode()
    assert reply.encode() == f"0 {len(stdout)}\n".encode() + stdout + b"warning\n"
