"""The real Claude Code CLI, with ultramax installed into a scratch project, against a scripted model server.

These are the issue's end-to-end proofs: every hook event of a real session reaches ultramax and is audited;
the kill switch stops a real tool call (Claude Code reports it in ``permission_denials`` and does not run
it); ultramax's SessionStart context reaches the model; and all of it works on first use, before any
daemon runs, with the hook starting the daemon for next time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DaemonProcess, UltramaxEnv, wait_for
from tests.e2e.conftest import ultramax_cli
from tests.support.claude_cli import ClaudeRun, run_claude
from tests.support.model_server import ModelServer, bash_turn, run_model_server, text_turn
from ultramax.audit import verify
from ultramax.daemon import daemon_status, stop_daemon

pytestmark = pytest.mark.e2e


@pytest.fixture
def project(umx: UltramaxEnv) -> Path:
    """A scratch project (development mode) with ultramax installed into its .claude/settings.json."""
    path = umx.project("acme-api")
    ultramax_cli("install", "--project", project=path)
    return path


def claude(bin_: Path, umx: UltramaxEnv, project: Path, server: ModelServer, **env: str) -> ClaudeRun:
    return run_claude(
        "please do the scripted thing",
        cwd=project,
        home=umx.home,
        base_url=server.base_url,
        allowed_tools=["Bash"],
        env={"ULTRAMAX_HOME": str(umx.ultramax_home), **env},
        claude=bin_,
    )


def audit_records(umx: UltramaxEnv, session_id: str) -> list[dict[str, Any]]:
    log = umx.ultramax_home / "audit.jsonl"
    if not log.exists():
        return []
    records = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in records if r.get("session") == session_id]


def events_of(records: list[dict[str, Any]]) -> list[str]:
    return [f"{r['event']}:{r['tool']}" if r.get("tool") else str(r["event"]) for r in records]


def test_every_hook_event_of_a_real_session_reaches_ultramax_and_the_chain_verifies(
    claude_bin: Path, umx: UltramaxEnv, project: Path, daemon: DaemonProcess
) -> None:
    script = [bash_turn("echo hi > out.txt"), text_turn("Wrote out.txt.")]
    with run_model_server(script) as server:
        run = claude(claude_bin, umx, project, server).check()
    assert (project / "out.txt").read_text().strip() == "hi"
    session = str(run.result and run.result["session_id"])
    expected = ["SessionStart", "UserPromptSubmit", "PreToolUse:Bash", "PostToolUse:Bash", "Stop", "SessionEnd"]
    wait_for(lambda: events_of(audit_records(umx, session)) == expected, 10, "the whole session in the audit log")
    records = audit_records(umx, session)
    assert all(r["mode"] == "development" for r in records)
    assert all(len(r["input_sha256"]) == 64 for r in records)
    report = verify(umx.ultramax_home / "audit.jsonl", umx.ultramax_home / "audit.head")
    assert report.ok, report.problems
    assert daemon_status(umx.paths).detail["handled"] >= len(expected), "the daemon, not a fallback, answered"


def test_kill_switch_denies_a_real_bash_call_and_releasing_it_lets_the_call_run(
    claude_bin: Path, umx: UltramaxEnv, project: Path, daemon: DaemonProcess
) -> None:
    ultramax_cli("kill", "on", "--reason", "e2e freeze", project=project)
    script = [bash_turn("echo blocked > out.txt"), text_turn("The call was refused.")]
    with run_model_server(script) as server:
        denied = claude(claude_bin, umx, project, server).check()
        tool_results = [r for req in server.main_requests() for r in req.tool_results()]
    assert [d["tool_name"] for d in denied.permission_denials] == ["Bash"]
    assert denied.permission_denials[0]["tool_input"]["command"] == "echo blocked > out.txt"
    assert not (project / "out.txt").exists(), "a denied call must not run"
    assert any("KILL SWITCH" in json.dumps(r) and r.get("is_error") for r in tool_results)
    session = str(denied.result and denied.result["session_id"])
    wait_for(lambda: any(r["event"] == "PreToolUse" for r in audit_records(umx, session)), 10, "the denial audited")
    pre = next(r for r in audit_records(umx, session) if r["event"] == "PreToolUse")
    assert (pre["decision"], pre["rule"]) == ("deny", "kill_switch.engaged")

    ultramax_cli("kill", "off", project=project)
    script = [bash_turn("echo allowed > out.txt"), text_turn("Done.")]
    with run_model_server(script) as server:
        allowed = claude(claude_bin, umx, project, server).check()
    assert allowed.permission_denials == []
    assert (project / "out.txt").read_text().strip() == "allowed"


def test_ultramax_session_start_context_arrives_in_the_next_model_request(
    claude_bin: Path, umx: UltramaxEnv, project: Path, daemon: DaemonProcess
) -> None:
    with run_model_server([text_turn("Hello.")]) as server:
        claude(claude_bin, umx, project, server).check()
        bodies = [json.dumps(req.body) for req in server.main_requests()]
    assert bodies, "the model server received no request"
    assert "[ultramax] This project runs in development mode" in bodies[0]


def test_on_first_use_with_no_daemon_hooks_run_in_process_and_start_the_daemon(
    claude_bin: Path, umx: UltramaxEnv, project: Path
) -> None:
    assert not daemon_status(umx.paths).running
    ultramax_cli("kill", "on", project=project)
    script = [bash_turn("echo blocked > out.txt"), text_turn("Refused.")]
    try:
        with run_model_server(script) as server:
            run = claude(claude_bin, umx, project, server, ULTRAMAX_NO_AUTOSTART="0").check()
        assert [d["tool_name"] for d in run.permission_denials] == ["Bash"]
        assert not (project / "out.txt").exists()
        wait_for(lambda: daemon_status(umx.paths).running, 15, "the daemon started by the first hook")
    finally:
        stop_daemon(umx.paths)
    assert verify(umx.ultramax_home / "audit.jsonl", umx.ultramax_home / "audit.head").ok
