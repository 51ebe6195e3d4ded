"""Capture: hook events become passages -- cleaned of private spans and secrets before anything is stored."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest

from tests.conftest import hook_payload
from ultramax.events import parse_event
from ultramax.memory.capture import Capture, classify, clean, compact_diff
from ultramax.memory.models import MemoryStoreError, NewPassage
from ultramax.memory.service import MemoryService

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


PASSWORD = "Hunter2" + "Passw0rd"
KEY_LINES = [f"MIIEow{i:02d}IBAAKCAQEAx7Qm2Jk3Lp9Vn4Rt6Wy8Za1Bc3De5Fg7Hi9Jk1Lm3No5Pq7Rs9Tu1Vw3Xy5Z" for i in range(25)]
PEM = "-----BEGIN RSA PRIVATE KEY-----\n" + "\n".join(KEY_LINES) + "\n-----END RSA PRIVATE KEY-----"


def failed_command(state: State, command: str, output: str) -> NewPassage:
    (p,) = passages(state, "PostToolUseFailure", tool_name="Bash", tool_input={"command": command}, error=output)
    return p


def stored(state: State, passage: NewPassage) -> str:
    """Everything capture keeps: the passage and its per-session state."""
    return "\n".join([passage.text, passage.source or "", repr(state.values)])


def test_a_key_whose_begin_line_is_beyond_the_kept_tail_is_still_not_stored() -> None:
    state = State()
    p = failed_command(state, "cat ~/.ssh/id_rsa && false", PEM)
    assert not any(line in stored(state, p) for line in KEY_LINES)
    assert p.text.startswith("Command failed: cat ~/.ssh/id_rsa && false")


def test_a_private_span_whose_opening_tag_is_beyond_the_kept_tail_is_not_stored() -> None:
    state = State()
    output = "<private>\n" + "\n".join(f"vault line {i}: {PASSWORD}{i}" for i in range(20)) + "\n</private>\ndone"
    p = failed_command(state, "./show-vault.sh; false", output)
    assert PASSWORD not in stored(state, p)
    assert p.text == "Command failed: ./show-vault.sh; false\ndone"


@pytest.mark.parametrize(
    ("command", "output"),
    [
        ("cat ~/.netrc; exit 1", f"machine api.heroku.com\n  login bob\n  password {PASSWORD}"),
        ("cat .env; exit 1", f"DB_PASS={PASSWORD}\nFEATURE_FLAGS=beta"),
        ("cat ~/.pgpass | head; false", f"db.internal:5432:app:app:{PASSWORD}"),
        ("cat ~/.aws/credentials && false", f"[default]\naws_region = eu-west-1\nsession_label = {PASSWORD}"),
        ("cat deploy.tfvars; false", f'db_admin = "{PASSWORD}"'),
        ("env | sort; false", f"HOME=/home/dev\nMY_APP_LOGIN={PASSWORD}"),
        ("echo $DB_PASSWORD && false", PASSWORD),
        ("printenv GITHUB_TOKEN; exit 3", PASSWORD),
    ],
)
def test_output_of_commands_that_read_credentials_keeps_no_secret(command: str, output: str) -> None:
    state = State()
    p = failed_command(state, command, output)
    assert PASSWORD not in stored(state, p)
    assert p.text.startswith(f"Command failed: {command}")


def test_ordinary_output_of_a_failing_command_is_still_kept() -> None:
    state = State()
    p = failed_command(state, "cat config.yaml; false", "port: 8123\nlog_level: debug")
    assert p.text == "Command failed: cat config.yaml; false\nport: 8123\nlog_level: debug"


@pytest.mark.parametrize("path", ["/w/certs/server.pem", "/w/tls/app.key", "/home/dev/.ssh/id_ed25519", "/w/k.ppk"])
def test_an_edit_of_a_key_file_stores_only_that_the_file_changed(path: str) -> None:
    state = State()
    (p,) = passages(
        state,
        "PostToolUse",
        tool_name="Edit",
        tool_input={"file_path": path, "old_string": KEY_LINES[3], "new_string": KEY_LINES[4]},
    )
    assert KEY_LINES[3] not in p.text and KEY_LINES[4] not in p.text
    assert p.text == f"Edited {path} (a key file: content not stored)" and p.source == path


def test_a_secret_in_an_edited_path_is_redacted_in_the_source_and_the_summary() -> None:
    state = State()
    failed_command(state, "make deploy", "error: mirror unreachable")
    path = f"/w/mirrors/{GITHUB}/notes.md"
    (p,) = passages(state, "PostToolUse", tool_name="Write", tool_input={"file_path": path, "content": "mirror notes"})
    assert GITHUB not in stored(state, p)
    assert p.source == "/w/mirrors/[REDACTED:github-token]/notes.md" and "mirror notes" in p.text


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("Should we use Redis or Memcached?", "prompt"),
        ("Have we decided on the DB yet?", "prompt"),
        ("Remind me again which ORM we chose for billing", "prompt"),
        ("Did the root cause turn out to be DNS?", "prompt"),
        ("we decided the billing service listens on port 8123", "decision"),
        ("we will use redis. does that work?", "decision"),
        ("the root cause was a stale cache", "learning"),
    ],
)
def test_a_question_about_a_decision_is_not_stored_as_one(text: str, kind: str) -> None:
    assert classify(text, "prompt") == kind


def test_a_fix_whose_insert_fails_is_captured_when_the_success_comes_again(service: MemoryService) -> None:
    project = service.store.ensure_project("acme")

    def capture(event: str, **fields: Any) -> list[int]:
        return service.capture(project, parse_event(hook_payload(event, session_id="s1", **fields), event))

    bash = {"tool_name": "Bash", "tool_input": {"command": "pytest tests/test_billing.py -q"}}
    capture("PostToolUseFailure", error="E   AssertionError: expected port 8123\n1 failed, 3 passed", **bash)
    edit = {"file_path": "/w/app/billing.py", "old_string": "8000", "new_string": "8123"}
    capture("PostToolUse", tool_name="Edit", tool_input=edit)
    passed = {"stdout": "....\n4 passed in 0.12s", "stderr": "", "interrupted": False}
    conn = sqlite3.connect(service.store.path)
    conn.execute(  # the insert of the fix fails, as on a full disk
        "CREATE TRIGGER no_fix BEFORE INSERT ON passages WHEN NEW.kind = 'bug_fix' "
        "BEGIN SELECT RAISE(ABORT, 'full'); END"
    )
    conn.commit()
    with pytest.raises(MemoryStoreError):
        capture("PostToolUse", tool_response=passed, **bash)
    conn.execute("DROP TRIGGER no_fix")
    conn.commit()
    conn.close()
    capture("PostToolUse", tool_response=passed, **bash)
    kinds = [p.kind for p in service.store.iter_passages("acme")]
    assert "bug_fix" in kinds, "the failure was still waiting for its fix"


@pytest.mark.parametrize(
    "command",
    ["grep -rn 'float(' src/billing", "cat log | rg -c TODO", "git grep -n legacy_port", "diff a.txt b.txt",
     "LC_ALL=C grep -q x f", "test -f build/app.jar"],
)  # fmt: skip
def test_a_search_that_found_nothing_is_not_stored_as_a_failure(command: str) -> None:
    state = State()
    bash = {"tool_name": "Bash", "tool_input": {"command": command}}
    assert passages(state, "PostToolUseFailure", error="Exit code 1", **bash) == []
    assert not state.values.get("last_failure"), "nor waits for a fix"


def test_a_search_that_failed_for_real_is_still_stored() -> None:
    state = State()
    bash = {"tool_name": "Bash", "tool_input": {"command": "grep -rn x missing_dir"}}
    (p,) = passages(state, "PostToolUseFailure", error="Exit code 2\ngrep: missing_dir: No such file", **bash)
    assert "failed" in p.tags
    (q,) = passages(state, "PostToolUseFailure", error="Exit code 1", tool_name="Bash",
                    tool_input={"command": "make deploy"})  # fmt: skip
    assert "failed" in q.tags, "exit 1 of a program that is not a search is a failure"


def test_a_fix_quotes_the_end_of_the_error_it_fixed_without_the_exit_status_line() -> None:
    state = State()
    error = "Exit code 1\n" + "\n".join(f"noise line {i} ........................." for i in range(40))
    error += "\nFAILED tests/test_app.py::test_health - AssertionError: 404 != 200"
    bash = {"tool_name": "Bash", "tool_input": {"command": "pytest -q"}}
    passages(state, "PostToolUseFailure", error=error, **bash)
    fix = next(
        p for p in passages(state, "PostToolUse", tool_response={"stdout": "3 passed"}, **bash) if p.kind == "bug_fix"
    )
    assert "FAILED tests/test_app.py::test_health - AssertionError: 404 != 200" in fix.text
    assert "Exit code" not in fix.text and "failed with: noise line" in fix.text, "starts at a line"


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("always use pytest -q", "pattern"),
        ("Please never push to main directly.", "pattern"),
        ("I prefer httpx over requests", "pattern"),
        ("fix the bug. Always run the linter after.", "pattern"),
        ("it always fails on CI", "prompt"),
        ("never mind, revert it", "prompt"),
        ("why does it always fail?", "prompt"),
    ],
)
def test_a_standing_instruction_is_stored_as_a_convention_to_keep(text: str, kind: str) -> None:
    assert classify(text, "prompt") == kind
