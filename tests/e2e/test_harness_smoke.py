"""Smoke tests of the end-to-end harness: the real Claude Code CLI, a scripted model server, real hooks.

Each test writes its own tiny recording hook into a scratch project, so these prove the harness (and the
CLI behaviours ultramax relies on) independently of ultramax's own hooks.
"""

from __future__ import annotations

import http.client
import json
import shlex
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.support.claude_cli import command_hook, run_claude, write_project_settings
from tests.support.model_server import RecordedRequest, bash_turn, run_model_server, text_turn

HOOK_SOURCE = """\
import sys
payload = sys.stdin.read()
with open({log!r}, "a", encoding="utf-8") as log:
    log.write(payload.strip() + "\\n")
sys.stdout.write({reply!r})
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    path = tmp_path / "project"
    path.mkdir()
    return path


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


def write_recording_hook(directory: Path, name: str, *, reply: Mapping[str, Any] | None = None) -> tuple[str, Path]:
    """A hook command that appends its stdin payload to a log and prints ``reply`` as JSON.

    Returns the command for settings.json and the log's path (one JSON payload per line).
    """
    log = directory / f"{name}.jsonl"
    script = directory / f"{name}_hook.py"
    script.write_text(HOOK_SOURCE.format(log=str(log), reply=json.dumps(reply) if reply else ""), encoding="utf-8")
    return f"{shlex.quote(sys.executable)} {shlex.quote(str(script))}", log


def read_payloads(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]


def describe(requests: list[RecordedRequest]) -> str:
    return "\n".join(f"#{r.index} {r.method} {r.path} kind={r.kind} turn={r.turn}" for r in requests)


@pytest.mark.e2e
def test_claude_runs_a_scripted_bash_call_and_reports_the_final_text(
    claude_bin: Path, project: Path, home: Path, tmp_path: Path
) -> None:
    record, log = write_recording_hook(tmp_path, "record")
    write_project_settings(
        project,
        {
            "hooks": {
                "PreToolUse": [command_hook(record, matcher="Bash")],
                "PostToolUse": [command_hook(record, matcher="Bash")],
            }
        },
    )
    script = [
        bash_turn("echo hi > out.txt", description="Write out.txt"),
        text_turn("Wrote out.txt for you."),
    ]

    with run_model_server(script) as server:
        run = run_claude(
            "Create out.txt",
            cwd=project,
            home=home,
            base_url=server.base_url,
            allowed_tools=["Bash"],
            claude=claude_bin,
        )

    run.check()
    assert run.text == "Wrote out.txt for you."
    assert run.permission_denials == []
    assert (project / "out.txt").read_text(encoding="utf-8") == "hi\n"
    assert server.problems == []
    assert server.script_finished.is_set()
    main = server.main_requests()
    assert [r.turn for r in main] == [0, 1], describe(server.requests)
    assert main[0].route == "/v1/messages"
    assert main[0].mentions("Create out.txt")
    [result] = main[1].tool_results()
    assert result["tool_use_id"] == "toolu_ultramax_t0_0"
    assert result.get("is_error") is not True
    events = [(p["hook_event_name"], p["tool_input"]["command"]) for p in read_payloads(log)]
    assert events == [("PreToolUse", "echo hi > out.txt"), ("PostToolUse", "echo hi > out.txt")]


@pytest.mark.e2e
def test_a_pre_tool_use_deny_is_reported_as_a_permission_denial_and_the_command_does_not_run(
    claude_bin: Path, project: Path, home: Path, tmp_path: Path
) -> None:
    reason = "blocked by the ultramax harness smoke test"
    deny, log = write_recording_hook(
        tmp_path,
        "deny",
        reply={
            "hookSpecificOutput": {
                "hookEventName": "PreToolUse",
                "permissionDecision": "deny",
                "permissionDecisionReason": reason,
            }
        },
    )
    write_project_settings(project, {"hooks": {"PreToolUse": [command_hook(deny, matcher="Bash")]}})
    script = [bash_turn("echo hi > out.txt"), text_turn("The command was blocked.")]

    with run_model_server(script) as server:
        run = run_claude(
            "Create out.txt",
            cwd=project,
            home=home,
            base_url=server.base_url,
            allowed_tools=["Bash"],
            claude=claude_bin,
        )

    run.check()
    assert run.text == "The command was blocked."
    assert not (project / "out.txt").exists()
    assert [(d["tool_name"], d["tool_input"]["command"]) for d in run.permission_denials] == [
        ("Bash", "echo hi > out.txt")
    ]
    assert server.problems == []
    [result] = server.main_requests()[1].tool_results()
    assert result["is_error"] is True
    assert reason in json.dumps(result)  # the deny reason goes back to the model
    assert [p["hook_event_name"] for p in read_payloads(log)] == ["PreToolUse"]


@pytest.mark.e2e
def test_session_start_additional_context_reaches_every_model_request(
    claude_bin: Path, project: Path, home: Path, tmp_path: Path
) -> None:
    marker = f"ultramax-context-{uuid.uuid4()}"
    session_start, log = write_recording_hook(
        tmp_path,
        "session_start",
        reply={"hookSpecificOutput": {"hookEventName": "SessionStart", "additionalContext": marker}},
    )
    write_project_settings(project, {"hooks": {"SessionStart": [command_hook(session_start)]}})
    script = [bash_turn("echo hi"), text_turn("done")]

    with run_model_server(script) as server:
        run = run_claude(
            "Say hi",
            cwd=project,
            home=home,
            base_url=server.base_url,
            allowed_tools=["Bash"],
            claude=claude_bin,
        )

    run.check()
    assert run.text == "done"
    assert server.problems == []
    main = server.main_requests()
    assert len(main) == 2, describe(server.requests)
    assert all(r.mentions(marker) for r in main)
    [payload] = read_payloads(log)
    assert payload["hook_event_name"] == "SessionStart"
    assert payload["source"] == "startup"


@pytest.mark.e2e
def test_a_blocking_stop_hook_makes_claude_ask_for_the_next_scripted_turn(
    claude_bin: Path, project: Path, home: Path, tmp_path: Path
) -> None:
    # Two text turns in a row share a tool-result count; the script must still tell them apart.
    stop_hook = tmp_path / "stop_hook.py"
    stop_hook.write_text(
        "import json, sys\n"
        "payload = json.load(sys.stdin)\n"
        "if not payload['stop_hook_active']:\n"
        "    print(json.dumps({'decision': 'block', 'reason': 'run the tests first'}))\n",
        encoding="utf-8",
    )
    command = f"{shlex.quote(sys.executable)} {shlex.quote(str(stop_hook))}"
    write_project_settings(project, {"hooks": {"Stop": [command_hook(command)]}})
    script = [text_turn("first answer"), text_turn("second answer")]

    with run_model_server(script) as server:
        run = run_claude(
            "Answer twice",
            cwd=project,
            home=home,
            base_url=server.base_url,
            allowed_tools=[],
            claude=claude_bin,
        )

    run.check()
    assert run.text == "second answer"
    assert server.problems == []
    main = server.main_requests()
    assert [r.turn for r in main] == [0, 1], describe(server.requests)
    assert main[1].mentions("run the tests first")


def test_the_model_server_streams_a_scripted_tool_call_and_answers_side_requests_without_advancing() -> None:
    script = [bash_turn("true"), text_turn("done")]
    body = {"model": "m", "max_tokens": 10, "stream": True, "tools": [{"name": "Bash"}], "messages": []}
    with run_model_server(script) as server:
        host, port = server.base_url.removeprefix("http://").split(":")
        first = _post(host, int(port), "/v1/messages?beta=true", body)
        side = _post(host, int(port), "/v1/messages", {**body, "tools": []})
        second = _post(
            host,
            int(port),
            "/v1/messages?beta=true",
            {
                **body,
                "messages": [
                    {"role": "user", "content": "go"},
                    {
                        "role": "assistant",
                        "content": [{"type": "tool_use", "id": "t", "name": "Bash", "input": {}}],
                    },
                    {
                        "role": "user",
                        "content": [{"type": "tool_result", "tool_use_id": "t", "content": "ok"}],
                    },
                ],
            },
        )
        server.wait_until_script_finished(timeout=5)

    assert [name for name, _ in first] == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    tool_json = "".join(data["delta"]["partial_json"] for name, data in first if name == "content_block_delta")
    assert json.loads(tool_json) == {"command": "true", "description": "Run a shell command"}
    assert first[-2][1]["delta"]["stop_reason"] == "tool_use"
    assert side[2][1]["content_block"] == {"type": "text", "text": ""}
    assert second[3][1]["delta"] == {"type": "text_delta", "text": "done"}
    assert [(r.kind, r.turn) for r in server.requests] == [("main", 0), ("aux", None), ("main", 1)]
    assert server.problems == []


def _post(host: str, port: int, path: str, body: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """POST ``body`` and return the SSE stream as (event, data) pairs."""
    connection = http.client.HTTPConnection(host, port, timeout=5)
    try:
        connection.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        assert response.status == 200
        assert response.getheader("Content-Type", "").startswith("text/event-stream")
        text = response.read().decode()
    finally:
        connection.close()
    events = []
    for chunk in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in chunk.splitlines())
        events.append((fields["event"], json.loads(fields["data"])))
    return events
