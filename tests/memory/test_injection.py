"""What injection shows, judged as its reader: the current value rather than a replaced one, no noise, no echoes.

The events are captured through the service into a real SQLite file, dated as a week of work would date them.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from tests.conftest import hook_payload
from ultramax.events import parse_event
from ultramax.memory.models import Project
from ultramax.memory.service import MemoryService

DAY = 86400.0
WORK = "/w/billing"


class Week:
    """Hook events of several sessions of one project, each session dated ``days_ago``."""

    def __init__(self, service: MemoryService) -> None:
        self.service = service
        self.project: Project = service.store.ensure_project("billing")

    def session(self, session_id: str, days_ago: float, *events: tuple[str, dict[str, Any]]) -> list[int]:
        ids: list[int] = []
        for event, fields in events:
            payload = hook_payload(event, session_id=session_id, cwd=WORK, **fields)
            ids += self.service.capture(self.project, parse_event(payload, event))
        conn = sqlite3.connect(self.service.store.path)
        with conn:
            conn.execute(
                "UPDATE passages SET created_at = ? + id * 0.001 WHERE session_id = ?",
                (time.time() - days_ago * DAY, session_id),
            )
        conn.close()
        self.service.flush(30)
        return ids

    def prompt(self, session_id: str, prompt: str, *, limit: int = 5) -> str:
        text, _ = self.service.prompt_context(self.project, session_id, prompt, 6000, limit=limit, min_similarity=0.0)
        return text or ""


def prompt(text: str) -> tuple[str, dict[str, Any]]:
    return "UserPromptSubmit", {"prompt": text}


def answer(text: str) -> tuple[str, dict[str, Any]]:
    return "Stop", {"last_assistant_message": text}


def write(path: str, content: str) -> tuple[str, dict[str, Any]]:
    return "PostToolUse", {"tool_name": "Write", "tool_input": {"file_path": f"{WORK}/{path}", "content": content}}


def edit(path: str, old: str, new: str) -> tuple[str, dict[str, Any]]:
    fields = {"file_path": f"{WORK}/{path}", "old_string": old, "new_string": new}
    return "PostToolUse", {"tool_name": "Edit", "tool_input": fields}


def bash(command: str, stdout: str = "", *, error: str | None = None) -> tuple[str, dict[str, Any]]:
    tool = {"tool_name": "Bash", "tool_input": {"command": command}}
    if error is not None:
        return "PostToolUseFailure", {**tool, "error": error}
    return "PostToolUse", {**tool, "tool_response": {"stdout": stdout, "stderr": "", "interrupted": False}}


def line_of(context: str, needle: str) -> str:
    [line] = [line for line in context.splitlines() if needle in line]
    return line


def test_a_value_that_a_later_edit_replaced_is_marked_superseded_wherever_it_is_injected(
    service: MemoryService,
) -> None:
    week = Week(service)
    week.session(
        "monday",
        8,
        prompt("set up the billing service config"),
        write("config/settings.toml", '[server]\nhost = "0.0.0.0"\nport = 8123\n'),
        answer("The billing service config is in place; the server listens on port 8123."),
    )
    week.session(
        "thursday",
        5,
        prompt("8123 collides with the metrics exporter, move the billing service to 9000"),
        edit("config/settings.toml", "port = 8123\n", "port = 9000\n"),
    )
    week.session("friday", 4, edit("docker-compose.yml", '- "8123:8123"\n', '- "9000:9000"\n'))
    context = week.prompt("today", "which port does the billing service server listen on", limit=10)
    old_answer = line_of(context, "the server listens on port 8123")
    assert "superseded" in old_answer and '`- "9000:9000"`' in old_answer, "the newest change holds now"
    assert "config/settings.toml changed `port = 8123` to `port = 9000`" in line_of(context, "Wrote "), (
        "a file's own change is the one that tells its current value"
    )
    assert "superseded" not in line_of(context, "collides with the metrics exporter"), "it names the new value"
    start = service.session_start_context(week.project, 6000) or ""
    assert "superseded" in line_of(start, "the server listens on port 8123")


def test_a_decision_and_a_standing_preference_open_the_next_session_however_many_edits_came_after(
    service: MemoryService,
) -> None:
    week = Week(service)
    week.session(
        "monday",
        6,
        prompt("Let's use Postgres 16, not MySQL -- we need JSONB for the invoice line items."),
        prompt("always use pytest -q when you run the tests, the verbose output is too long"),
    )
    edits = [edit(f"src/billing/module_{i}.py", f"value = {i}\n", f"value = {i + 1}\n") for i in range(8)]
    week.session("tuesday", 5, prompt("bump every module value by one"), *edits)
    start = service.session_start_context(week.project, 6000) or ""
    assert "Let's use Postgres 16, not MySQL" in start
    assert "always use pytest -q" in start
    assert start.count("module_") <= 3 * 2, "a few recent edits, not all of them"


def test_a_prompt_gets_a_fix_without_its_failure_a_repeated_test_run_once_and_no_earlier_question(
    service: MemoryService,
) -> None:
    week = Week(service)
    failure = "Exit code 1\nE   stripe.error.SignatureVerificationError: no signature matches the webhook payload"
    week.session(
        "tuesday",
        4,
        prompt("add the stripe webhook endpoint and verify the webhook signature"),
        bash("pytest -q", error=failure),
        edit(
            "src/billing/webhooks.py", "payload = await request.body()\n", "payload = (await request.body()).decode()\n"
        ),
        bash("pytest -q", "....\n5 passed in 0.58s\n"),
        prompt("what does the webhook signature check need? I need it for the docs"),
    )
    week.session("wednesday", 3, prompt("run the webhook tests"), bash("pytest -q", "......\n6 passed in 0.63s\n"))
    context = week.prompt("today", "the webhook signature check fails again, run the tests", limit=10)
    assert context.count("SignatureVerificationError") == 1, "the fix tells the failure; it is not shown twice"
    assert "Fixed: `pytest -q` failed" in context
    assert context.count("Test run: pytest -q") == 1
    assert "what does the webhook signature check need" not in context, "an earlier question is no information"


def test_injected_memory_quoted_back_in_an_answer_is_not_captured_again(service: MemoryService) -> None:
    week = Week(service)
    week.session("monday", 5, edit("config/settings.toml", "port = 8123\n", "port = 9000\n"))
    quoted = week.prompt("tuesday", "which port is in config/settings.toml now")
    [item] = [line for line in quoted.splitlines() if line.startswith("- [")]
    ids = week.session(
        "tuesday",
        4,
        answer(f"From the memory notes:\n{item}\nBilling listens on port 9000; nginx should proxy_pass to :9000."),
    )
    [stored] = service.store.get_passages(ids).values()
    assert stored.text == "From the memory notes:\nBilling listens on port 9000; nginx should proxy_pass to :9000."


def test_a_file_inside_the_project_is_named_as_the_project_names_it(service: MemoryService) -> None:
    week = Week(service)
    week.session("monday", 1, edit("config/settings.toml", "port = 8123\n", "port = 9000\n"))
    [p] = service.store.recent("billing", kinds=("file_change",))
    assert p.source == "config/settings.toml" and p.text.startswith("Edited config/settings.toml\n")
    context = week.prompt("today", "which port does config/settings.toml set")
    assert WORK not in context


def test_session_start_spends_no_place_on_a_secret_only_edit_a_bare_command_or_a_one_line_reply(
    service: MemoryService,
) -> None:
    week = Week(service)
    week.session(
        "monday",
        2,
        prompt("run the tests"),
        prompt("add a refund endpoint that reverses the Stripe charge and records the reason"),
        write(".env.staging", "DATABASE_URL=postgres://app:hunter2@db/app\nSTRIPE_KEY=sk_test_abc123def456\n"),
        write("src/billing/refunds.py", "def refund(charge_id: str, reason: str) -> None:\n    ...\n"),
        answer("Done."),
        answer("Added POST /refunds: it reverses the Stripe charge and stores the reason with the refund row."),
    )
    start = service.session_start_context(week.project, 6000) or ""
    assert "refunds.py" in start and "reverses the Stripe charge" in start
    assert ".env.staging" not in start, "every value of it is redacted: it says nothing"
    assert "run the tests" not in start and "Done." not in start
