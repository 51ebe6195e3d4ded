"""The memory_sync stage in the real pipeline: capture, injection with dates and sources, budget and switches."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import UltramaxEnv, hook_payload
from ultramax.decisions import CONTEXT_CAP
from ultramax.memory.embed import HashEmbedder
from ultramax.memory.models import NewPassage
from ultramax.memory.service import MemoryService
from ultramax.runtime import Runtime

TOKEN = "ghp_" + "Zz9Yy8Xx7Ww6Vv5Uu4Tt3Ss2Rr1Qq0Pp9Oo8"


@pytest.fixture
def runtime(umx: UltramaxEnv) -> Iterator[Runtime]:
    """A runtime as the daemon has it: memory with a background writer (deterministic test embedder, whose
    bag-of-words similarities are lower than a real model's: the injection bar is lowered to match)."""
    umx.update_user_settings({"memory": {"injectionMinSimilarity": 0.1}})
    rt = Runtime(umx.paths)
    rt.services.shared["daemon"] = True
    service = MemoryService(umx.paths, background=True, embedder=HashEmbedder())
    rt.services.shared["memory"] = service
    try:
        yield rt
    finally:
        service.close()


def hook(rt: Runtime, project: Path, event: str, **fields: Any) -> dict[str, Any]:
    payload = hook_payload(event, cwd=str(project), **fields)
    reply = rt.handle(event, json.dumps(payload).encode(), project_hint=str(project)).reply
    assert reply.exit_code == 0, reply.stderr
    return json.loads(reply.stdout) if reply.stdout else {}


def context_of(out: dict[str, Any]) -> str:
    return str(out.get("hookSpecificOutput", {}).get("additionalContext", ""))


def memory(rt: Runtime) -> MemoryService:
    service = rt.services.shared["memory"]
    assert isinstance(service, MemoryService)
    return service


def test_a_decision_from_one_session_is_injected_with_date_and_source_into_the_next(
    umx: UltramaxEnv, runtime: Runtime
) -> None:
    project = umx.project("acme-api")
    hook(runtime, project, "UserPromptSubmit", session_id="one", prompt="the billing service listens on port 8123")
    hook(runtime, project, "Stop", session_id="one", last_assistant_message="Noted: billing listens on port 8123.")
    assert memory(runtime).flush(30)
    start = context_of(hook(runtime, project, "SessionStart", session_id="two", source="startup"))
    assert "[ultramax memory] Project acme-api" in start
    assert "the billing service listens on port 8123" in start
    assert "prompt · user prompt, session one" in start
    prompt = context_of(hook(runtime, project, "UserPromptSubmit", session_id="two", prompt="what port is billing on?"))
    assert "billing service listens on port 8123" in prompt
    assert prompt.count("\n- [") >= 1 and " · " in prompt


def test_a_memory_is_injected_once_per_session_not_on_every_prompt(umx: UltramaxEnv, runtime: Runtime) -> None:
    project = umx.project("acme-api")
    hook(runtime, project, "UserPromptSubmit", session_id="one", prompt="the billing service listens on port 8123")
    memory(runtime).flush(30)
    first = context_of(hook(runtime, project, "UserPromptSubmit", session_id="two", prompt="billing port please"))
    second = context_of(hook(runtime, project, "UserPromptSubmit", session_id="two", prompt="billing port again?"))
    assert "8123" in first and "8123" not in second


def test_a_prompt_gets_other_sessions_answers_not_its_own_turns_or_old_questions(
    umx: UltramaxEnv, runtime: Runtime
) -> None:
    project = umx.project("acme-api")
    hook(runtime, project, "SessionStart", session_id="two", source="startup")
    service = memory(runtime)
    [name] = [p.name for p in service.store.list_projects()]
    days_ago = time.time() - 3 * 86400
    service.store.add_passages(
        name,
        [
            NewPassage("which cache should the dashboard use?", kind="prompt", session_id="one", created_at=days_ago),
            NewPassage(
                "we decided the dashboard cache is redis 7", kind="decision", session_id="one", created_at=days_ago
            ),
            NewPassage("the dashboard cache needs a 5 minute ttl", kind="prompt", session_id="two"),  # said earlier
        ],
    )
    assert service.flush(30)
    # "today's" names the task's time, not a filter on when memories were stored
    asked = "which dashboard cache should serve today's visitors"
    prompt = context_of(hook(runtime, project, "UserPromptSubmit", session_id="two", prompt=asked))
    assert "dashboard cache is redis 7" in prompt
    assert "5 minute ttl" not in prompt, "this session's own turn is already in the conversation"
    assert "which cache should the dashboard use?" not in prompt, "an earlier question is not information"


def test_a_budget_of_zero_turns_injection_off_but_capture_goes_on(umx: UltramaxEnv, runtime: Runtime) -> None:
    project = umx.project("quiet", {"memory": {"injectionBudgetChars": 0}})
    hook(runtime, project, "UserPromptSubmit", session_id="one", prompt="the billing service listens on port 8123")
    memory(runtime).flush(30)
    assert "memory" not in context_of(hook(runtime, project, "SessionStart", session_id="two", source="startup"))
    assert context_of(hook(runtime, project, "UserPromptSubmit", session_id="two", prompt="billing port?")) == ""
    assert memory(runtime).store.count("quiet") == 2


def test_capture_can_be_switched_off_per_project_in_settings_or_with_the_project_switch(
    umx: UltramaxEnv, runtime: Runtime
) -> None:
    off = umx.project("no-capture", {"memory": {"captureEnabled": False}})
    hook(runtime, off, "UserPromptSubmit", prompt="remember that deploys happen on tuesdays")
    switched = umx.project("switched")
    service = memory(runtime)
    service.store.project_for_dir(switched)
    service.store.set_capture("switched", False)
    hook(runtime, switched, "UserPromptSubmit", prompt="remember that deploys happen on tuesdays")
    assert service.store.counts_by_project() == {"no-capture": 0, "switched": 0}


def test_injected_memory_respects_the_budget_and_claude_codes_cap(umx: UltramaxEnv, runtime: Runtime) -> None:
    project = umx.project("big", {"memory": {"injectionBudgetChars": 10000}})
    service = memory(runtime)
    name = service.store.project_for_dir(project).name
    service.store.write_block(name, "project_context", "p" * 4900, source="test")
    service.store.write_block(name, "learnings", "l" * 4900, source="test")
    for i in range(30):
        service.save(name, f"decision {i}: the cache for service {i} is " + "z" * 300, kind="decision")
    out = hook(runtime, project, "SessionStart", session_id="s", source="startup")
    text = context_of(out)
    assert len(text) <= CONTEXT_CAP
    assert "<project_context>" in text
    tight = umx.project("tight", {"memory": {"injectionBudgetChars": 700}})
    service.store.project_for_dir(tight)
    service.save("tight", "decision: the billing service listens on port 8123", kind="decision")
    text = context_of(hook(runtime, tight, "SessionStart", session_id="s", source="startup"))
    assert 0 < len(text) <= 700


def test_a_secret_typed_in_a_prompt_is_in_neither_the_store_nor_the_audit_log(
    umx: UltramaxEnv, runtime: Runtime
) -> None:
    project = umx.project("acme-api")
    hook(runtime, project, "UserPromptSubmit", prompt=f"push with GITHUB_TOKEN={TOKEN} to the mirror please")
    memory(runtime).flush(30)
    stored = [p.text for p in memory(runtime).store.iter_passages()]
    assert stored == ["push with GITHUB_TOKEN=[REDACTED:github-token] to the mirror please"]
    for path in umx.ultramax_home.rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path
    logs = umx.claude_dir / "logs"
    for path in logs.rglob("*") if logs.exists() else []:
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path


def test_without_the_daemon_the_stage_stores_text_and_injects_by_keywords(umx: UltramaxEnv) -> None:
    project = umx.project("acme-api")
    rt = Runtime(umx.paths)  # the hook fallback's runtime: no daemon flag, no embeddings
    hook(rt, project, "UserPromptSubmit", session_id="one", prompt="the billing service listens on port 8123")
    out = context_of(
        hook(rt, project, "UserPromptSubmit", session_id="two", prompt="which port does billing listen on")
    )
    assert "the billing service listens on port 8123" in out
    service = rt.services.shared["memory"]
    assert isinstance(service, MemoryService) and not service.embeddings
    service.close()


def test_without_the_daemon_each_hook_process_remembers_what_the_session_was_shown(umx: UltramaxEnv) -> None:
    project = umx.project("acme-api")

    def prompt(session: str, text: str) -> str:
        rt = Runtime(umx.paths)  # a fresh hook process each time, as without the daemon
        try:
            return context_of(hook(rt, project, "UserPromptSubmit", session_id=session, prompt=text))
        finally:
            service = rt.services.shared.get("memory")
            if isinstance(service, MemoryService):
                service.close()

    prompt("one", "the billing service listens on port 8123")
    prompt("one", "the tests passed after the fix")
    first = prompt("two", "which port does the billing service listen on")
    again = prompt("two", "and the billing port for staging?")
    assert "listens on port 8123" in first and "listens on port 8123" not in again
    assert "tests passed" not in prompt("three", "write tests for the invoice exporter"), (
        "one shared word is not enough"
    )
