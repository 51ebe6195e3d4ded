"""Capture: hook events become passages -- cleaned of private spans and secrets before anything is stored."""

from __future__ import annotations

from typing import Any

from tests.conftest import hook_payload
from ultramax.events import parse_event
from ultramax.memory.capture import Capture, clean, compact_diff
from ultramax.memory.models import NewPassage

GITHUB = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"


class State:
    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def capture(self) -> Capture:
        return Capture(get_state=self.values.get, set_state=self.values.__setitem__)


def passages(state: State, event: str, **fields: Any) -> list[NewPassage]:
    return state.capture().passages(parse_event(hook_payload(event, **fields), event))


def test_a_prompt_is_stored_as_a_prompt_and_a_stated_decision_as_a_decision() -> None:
    state = State()
    (p,) = passages(state, "UserPromptSubmit", prompt="why do the auth tests fail on CI?")
    assert (p.kind, p.source_event, p.source) == ("prompt", "UserPromptSubmit", "user prompt")
    (d,) = passages(state, "UserPromptSubmit", prompt="we decided the billing service listens on port 8123")
    assert d.kind == "decision"
    assert passages(state, "UserPromptSubmit", prompt="yes") == [], "acknowledgements are noise"


def test_private_spans_are_never_stored_even_when_unclosed() -> None:
    state = State()
    (p,) = passages(state, "UserPromptSubmit", prompt="deploy to prod <private>the vault pin is 4411</private> tonight")
    assert "4411" not in p.text and "private" not in p.text
    assert clean("keep this <private>and not this, nor what follows") == "keep this"
    assert passages(state, "UserPromptSubmit", prompt="<private>only secret words in this whole prompt</private>") == []


def test_secrets_in_prompts_commands_and_env_files_are_redacted_before_storing() -> None:
    state = State()
    (p,) = passages(state, "UserPromptSubmit", prompt=f"use the token {GITHUB} for the mirror")
    assert GITHUB not in p.text and "[REDACTED:github-token]" in p.text
    (env,) = passages(
        state,
        "PostToolUse",
        tool_name="Write",
        tool_input={
            "file_path": "/w/app/.env.local",
            "content": "DATABASE_URL=postgres://u:pw@db/app\nFEATURE_X=on-7f3k\n",
        },
        tool_response={"success": True},
    )
    assert "pw@" not in env.text and "on-7f3k" not in env.text and "FEATURE_X=[REDACTED:env]" in env.text


def test_an_edit_is_stored_as_a_file_change_with_a_compact_diff() -> None:
    state = State()
    (p,) = passages(
        state,
        "PostToolUse",
        tool_name="Edit",
        tool_input={
            "file_path": "/w/app/billing.py",
            "old_string": "PORT = 8000\nHOST = 'x'",
            "new_string": "PORT = 8123\nHOST = 'x'",
        },
        tool_response={"filePath": "/w/app/billing.py"},
    )
    assert p.kind == "file_change" and p.source == "/w/app/billing.py"
    assert p.text == "Edited /w/app/billing.py\n@@ -1 +1 @@\n-PORT = 8000\n+PORT = 8123"
    assert compact_diff("a\n" * 100, "b\n" * 100, max_lines=4).endswith("more diff lines)")


def test_a_failing_command_then_edits_then_success_is_stored_as_a_bug_fix() -> None:
    state = State()
    (fail,) = passages(
        state,
        "PostToolUseFailure",
        tool_name="Bash",
        tool_input={"command": "pytest tests/test_billing.py"},
        error="E   AssertionError: expected port 8123\n1 failed, 3 passed",
    )
    assert fail.kind == "test_run" and "failed" in fail.tags and "expected port 8123" in fail.text
    passages(
        state,
        "PostToolUse",
        tool_name="Edit",
        tool_input={"file_path": "/w/app/billing.py", "old_string": "8000", "new_string": "8123"},
    )
    fix, run = passages(
        state,
        "PostToolUse",
        tool_name="Bash",
        tool_input={"command": "pytest tests/test_billing.py -q"},
        tool_response={"stdout": "....\n4 passed in 0.12s", "stderr": "", "interrupted": False},
    )
    assert fix.kind == "bug_fix"
    assert "expected port 8123" in fix.text and "Edited /w/app/billing.py" in fix.text and "succeeded" in fix.text
    assert run.kind == "test_run" and "4 passed" in run.text


def test_ordinary_successful_commands_and_reads_are_not_stored() -> None:
    state = State()
    assert (
        passages(
            state, "PostToolUse", tool_name="Bash", tool_input={"command": "ls -la"}, tool_response={"stdout": "x"}
        )
        == []
    )
    assert passages(state, "PostToolUse", tool_name="Read", tool_input={"file_path": "/w/a.py"}, tool_response={}) == []


def test_the_final_answer_of_a_turn_is_stored_with_its_prompt_as_context() -> None:
    state = State()
    passages(state, "UserPromptSubmit", prompt="which port does billing use?")
    (a,) = passages(state, "Stop", last_assistant_message="The billing service listens on port 8123 (see billing.py).")
    assert a.kind == "answer" and a.context == "which port does billing use?" and a.source == "final answer"


def test_private_spans_nested_escaped_or_with_attributes_are_never_stored() -> None:
    state = State()
    (p,) = passages(
        state,
        "UserPromptSubmit",
        prompt='rotate it <private reason="vault">pin <private>4411</private> 9922</private> before friday',
    )
    assert "4411" not in p.text and "9922" not in p.text and p.text == "rotate it  before friday"
    assert clean("check &lt;private&gt;pin 4411&lt;/private&gt; later") == "check  later"
