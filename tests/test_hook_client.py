"""The hook client as Claude Code runs it: with the daemon, without it, against a stale or hung one, on bad input."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import (
    HookRun,
    HookRunner,
    PayloadFactory,
    UltramaxEnv,
    finish_daemon,
    process_gone,
    spawn_daemon_process,
    wait_for,
)
from ultramax.audit import verify
from ultramax.daemon import daemon_request, daemon_status, stop_daemon
from ultramax.modes import activate_mode
from ultramax.runtime import Runtime
from ultramax.safety.killswitch import KillSwitch

MAX_PAYLOAD = 2048


def audit_records(umx: UltramaxEnv) -> list[dict[str, Any]]:
    return [json.loads(line) for line in umx.paths.audit_log.read_text(encoding="utf-8").splitlines()]


def decision_of(run: HookRun) -> str:
    value = run.json()["hookSpecificOutput"]["permissionDecision"]
    assert isinstance(value, str)
    return value


def assert_one_clear_line(stderr: str, starts: str) -> None:
    assert stderr.count("\n") == 1, stderr
    assert stderr.endswith("\n")
    assert stderr.startswith(starts), stderr
    assert "Traceback" not in stderr


class Backend:
    """Who answers the client: the daemon, or the client itself in-process (no daemon running)."""

    def __init__(self, umx: UltramaxEnv, name: str) -> None:
        self.umx, self.name = umx, name

    def handled(self) -> int | None:
        """Calls the daemon answered (None in-process)."""
        if self.name != "daemon":
            return None
        value = daemon_request(self.umx.paths, "status")["handled"]
        assert isinstance(value, int)
        return value


@pytest.fixture(params=["daemon", "in-process"])
def backend(request: pytest.FixtureRequest, umx: UltramaxEnv) -> Iterator[Backend]:
    umx.update_user_settings({"ultramax": {"maxPayloadBytes": MAX_PAYLOAD}})
    if request.param == "in-process":
        yield Backend(umx, "in-process")
        assert not umx.paths.socket.exists(), "no daemon was started (ULTRAMAX_NO_AUTOSTART=1)"
        return
    daemon = spawn_daemon_process(umx)
    try:
        yield Backend(umx, "daemon")
    finally:
        finish_daemon(daemon)


def test_a_tool_call_is_answered_and_audited(
    backend: Backend, umx: UltramaxEnv, run_hook: HookRunner, make_payload: PayloadFactory
) -> None:
    run = run_hook("PreToolUse", make_payload("PreToolUse", session_id="plain"), project_dir=umx.project("webapp"))
    assert (run.code, run.stdout, run.stderr) == (0, "", "")
    [record] = audit_records(umx)
    assert (record["session"], record["decision"], record["summary"]) == (
        "plain",
        "continue",
        "Bash command=npm test -- auth",
    )
    assert backend.handled() in (1, None)


def test_the_kill_switch_denies_bash_and_lets_reads_through(
    backend: Backend, umx: UltramaxEnv, run_hook: HookRunner, make_payload: PayloadFactory
) -> None:
    KillSwitch(umx.paths.kill_switch).engage("market halt")
    project = umx.project("webapp")
    bash = run_hook("PreToolUse", make_payload("PreToolUse"), project_dir=project)
    assert (bash.code, bash.stderr) == (0, "")
    assert decision_of(bash) == "deny"
    assert "market halt" in bash.json()["hookSpecificOutput"]["permissionDecisionReason"]
    read = run_hook(
        "PreToolUse",
        make_payload("PreToolUse", tool_name="Read", tool_input={"file_path": "/home/dev/work/demo/app.py"}),
        project_dir=project,
    )
    assert (read.code, read.stdout, read.stderr) == (0, "", "")
    assert [r["decision"] for r in audit_records(umx)] == ["deny", "continue"]
    assert backend.handled() in (2, None)


def test_the_kill_switch_denies_reads_too_in_the_alphaforge_project(
    backend: Backend, umx: UltramaxEnv, run_hook: HookRunner, make_payload: PayloadFactory
) -> None:
    KillSwitch(umx.paths.kill_switch).engage()
    project = umx.project("alphaforge")
    read = run_hook(
        "PreToolUse",
        make_payload("PreToolUse", cwd=str(project), tool_name="Read", tool_input={"file_path": f"{project}/x.py"}),
        project_dir=project,
    )
    assert decision_of(read) == "deny"


@pytest.mark.parametrize(
    ("raw", "starts"),
    [
        (b"", "ultramax: hook input is empty"),
        (
            b'{"session_id": "s1", "hook_event_name": "PreToolUse", "tool_name": ',
            "ultramax: hook input is not valid JSON",
        ),
        (
            b'{"session_id": "s1", "hook_event_name": "PreToolUse", "tool_name": "' + b"x" * 100_000 + b'"}',
            "ultramax: hook input is",
        ),
    ],
    ids=["empty", "malformed", "over-max-payload"],
)
def test_unusable_input_continues_with_one_clear_line_on_stderr_and_is_audited(
    backend: Backend, umx: UltramaxEnv, run_hook: HookRunner, raw: bytes, starts: str
) -> None:
    run = run_hook("PreToolUse", raw, project_dir=umx.project("webapp"))
    assert (run.code, run.stdout) == (0, "")
    assert_one_clear_line(run.stderr, starts)
    assert run.stderr.endswith("-- the event continues (failure policy)\n")
    if len(raw) > MAX_PAYLOAD:
        assert f"is {len(raw):,} bytes, over the {MAX_PAYLOAD:,}-byte limit" in run.stderr
    [record] = audit_records(umx)
    assert (record["event"], record["decision"], record["rule"]) == ("PreToolUse", "continue", "failure_policy.input")
    assert record["input_bytes"] == len(raw)
    assert verify(umx.paths.audit_log).ok
    assert backend.handled() in (1, None)


def test_unusable_input_in_the_alphaforge_project_is_denied(
    backend: Backend, umx: UltramaxEnv, run_hook: HookRunner
) -> None:
    run = run_hook("PreToolUse", b"{not json", project_dir=umx.project("alphaforge"))
    assert run.code == 0
    assert decision_of(run) == "deny"
    assert "not valid JSON" in run.json()["hookSpecificOutput"]["permissionDecisionReason"]
    assert_one_clear_line(run.stderr, "ultramax: hook input is not valid JSON")
    assert audit_records(umx)[0]["decision"] == "deny"


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_asking_the_hook_client_for_help_prints_its_usage_and_decides_nothing(
    umx: UltramaxEnv, run_hook: HookRunner, flag: str
) -> None:
    run = run_hook(flag, b"", project_dir=umx.project("webapp"))
    assert (run.code, run.stderr) == (0, "")
    assert run.stdout.startswith("usage: ultramax-hook EVENT") and "ultramax install" in run.stdout
    assert not umx.paths.audit_log.exists(), "no hook event was audited"


def test_a_payload_for_another_event_is_refused_naming_both(
    backend: Backend, umx: UltramaxEnv, run_hook: HookRunner, make_payload: PayloadFactory
) -> None:
    run = run_hook("PreToolUse", make_payload("PostToolUse"))
    assert (run.code, run.stdout) == (0, "")
    assert_one_clear_line(run.stderr, "ultramax: hook input says hook_event_name='PostToolUse'")


def test_every_captured_payload_gets_an_answer_claude_code_accepts(
    backend: Backend, umx: UltramaxEnv, run_hook: HookRunner, captured_payloads: list[dict[str, Any]]
) -> None:
    for data in captured_payloads[:7]:  # one session: start, prompt, tool calls, stop, end
        run = run_hook(data["hook_event_name"], data)
        assert (run.code, run.stderr) == (0, ""), data["hook_event_name"]
        if run.stdout:
            assert run.json()["hookSpecificOutput"]["hookEventName"] == data["hook_event_name"]
    assert len(audit_records(umx)) == 7
    assert verify(umx.paths.audit_log).ok


def test_a_stale_socket_file_makes_the_client_answer_in_process(
    umx: UltramaxEnv, run_hook: HookRunner, make_payload: PayloadFactory
) -> None:
    umx.paths.ensure_home()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.bind(str(umx.paths.socket))  # left behind by a daemon that died: nothing listens
    KillSwitch(umx.paths.kill_switch).engage()
    run = run_hook("PreToolUse", make_payload("PreToolUse"), timeout_ms=5000)
    assert (run.code, run.stderr) == (0, "")
    assert decision_of(run) == "deny"
    assert run.elapsed < 5, "a refused connection does not wait for the timeout"
    assert len(audit_records(umx)) == 1


class HungDaemon:
    """A Unix-socket server that accepts calls and never answers them."""

    def __init__(self, path: str) -> None:
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(8)
        self.listener.settimeout(0.05)
        self.accepted: list[socket.socket] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            self.accepted.append(conn)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        for conn in self.accepted:
            conn.close()
        self.listener.close()


@pytest.fixture
def hung_daemon(umx: UltramaxEnv) -> Iterator[HungDaemon]:
    umx.paths.ensure_home()
    server = HungDaemon(str(umx.paths.socket))
    try:
        yield server
    finally:
        server.close()


def test_a_hung_daemon_makes_the_client_give_up_after_its_timeout_and_answer_in_process(
    hung_daemon: HungDaemon, umx: UltramaxEnv, run_hook: HookRunner, make_payload: PayloadFactory
) -> None:
    KillSwitch(umx.paths.kill_switch).engage()
    timeout_ms = 600
    run = run_hook("PreToolUse", make_payload("PreToolUse", session_id="hung"), timeout_ms=timeout_ms)
    assert len(hung_daemon.accepted) == 1, "the client did reach the (hung) daemon"
    assert (run.code, run.stderr) == (0, "")
    assert decision_of(run) == "deny"
    assert timeout_ms / 1000 <= run.elapsed < timeout_ms / 1000 + 2
    assert [r["session"] for r in audit_records(umx)] == ["hung"]


def test_a_hung_daemon_does_not_stall_a_large_payload_past_the_timeout(
    hung_daemon: HungDaemon, umx: UltramaxEnv, run_hook: HookRunner, make_payload: PayloadFactory
) -> None:
    content = "y" * 2_000_000  # more than the socket buffer: the client blocks writing, not reading
    payload = make_payload("PreToolUse", tool_name="Write", tool_input={"file_path": "/w/big", "content": content})
    run = run_hook("PreToolUse", payload, timeout_ms=500)
    assert (run.code, run.stdout, run.stderr) == (0, "", "")
    assert run.elapsed < 0.5 + 2
    assert audit_records(umx)[0]["summary"] == "Write file_path=/w/big"


def test_a_project_may_accept_larger_payloads_than_the_user_default(
    backend: Backend, umx: UltramaxEnv, run_hook: HookRunner, make_payload: PayloadFactory
) -> None:
    project = umx.project("dataset-tools", {"ultramax": {"maxPayloadBytes": 4 * 1024 * 1024}})
    payload = make_payload(
        "PreToolUse", tool_name="Write", tool_input={"file_path": "/w/data.csv", "content": "1,2\n" * 50_000}
    )
    run = run_hook("PreToolUse", payload, project_dir=project)
    assert (run.code, run.stdout, run.stderr) == (0, "", "")
    assert audit_records(umx)[0]["summary"] == "Write file_path=/w/data.csv"


def test_without_a_daemon_the_client_answers_and_starts_one_for_the_next_hook(
    umx: UltramaxEnv, run_hook: HookRunner, make_payload: PayloadFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ULTRAMAX_NO_AUTOSTART")
    try:
        first = run_hook("PreToolUse", make_payload("PreToolUse", session_id="first"))
        assert (first.code, first.stdout, first.stderr) == (0, "", "")
        wait_for(lambda: daemon_status(umx.paths).running, 20, "the daemon the client started")
        pid = daemon_status(umx.paths).pid
        assert pid is not None
        second = run_hook("PreToolUse", make_payload("PreToolUse", session_id="second"))
        assert (second.code, second.stderr) == (0, "")
        assert daemon_request(umx.paths, "status")["handled"] == 1, "the second hook was answered by the daemon"
    finally:
        stopped = stop_daemon(umx.paths)  # whatever happened above, leave no daemon behind
    assert stopped
    wait_for(lambda: process_gone(pid), 20, "the started daemon to exit")
    assert [r["session"] for r in audit_records(umx)] == ["first", "second"]


def test_a_log_file_that_cannot_be_opened_never_lets_a_dangerous_command_through(
    umx: UltramaxEnv, run_hook: HookRunner, make_payload: PayloadFactory
) -> None:
    logs = umx.claude_dir / "logs"
    logs.mkdir(exist_ok=True)
    for name in ("hooks_pipeline.log", "safety_audit.log"):
        (logs / name).mkdir()  # where the log file should be: opening it fails, as on a full or read-only disk
    project = umx.project("webapp")
    payload = make_payload("PreToolUse", tool_input={"command": "rm -rf ~/", "description": "clean up"})
    run = run_hook("PreToolUse", payload, project_dir=project)
    assert run.code == 0 and "Traceback" not in run.stderr and "Logging error" not in run.stderr
    assert decision_of(run) == "deny"
    assert audit_records(umx)[-1]["decision"] == "deny"


def test_input_nested_too_deeply_in_the_alphaforge_project_is_denied(umx: UltramaxEnv, run_hook: HookRunner) -> None:
    deep = b'{"hook_event_name": "PreToolUse", "tool_input": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    run = run_hook("PreToolUse", deep, project_dir=umx.project("alphaforge"))
    assert run.code == 0 and decision_of(run) == "deny"
    assert_one_clear_line(run.stderr, "ultramax: hook input is nested too deeply")
    assert audit_records(umx)[0]["decision"] == "deny"


def test_a_broken_settings_file_keeps_the_trading_mode_it_held_and_says_so(
    umx: UltramaxEnv, make_payload: PayloadFactory
) -> None:
    project = umx.project("desk")  # nothing in the path says trading: only the settings file does
    activate_mode(project, "alphaforge")
    runtime = Runtime(umx.paths)
    order = make_payload(
        "PreToolUse", cwd=str(project), tool_name="mcp__alpaca__place_order",
        tool_input={"symbol": "AAPL", "qty": 5000, "side": "buy", "type": "market"},
    )  # fmt: skip

    def decide() -> dict[str, Any]:
        reply = runtime.handle("PreToolUse", json.dumps(order).encode(), project_hint=str(project)).reply
        out: dict[str, Any] = json.loads(reply.stdout)
        return out

    first = decide()
    assert first["hookSpecificOutput"]["permissionDecision"] == "deny"
    (project / ".claude" / "settings.json").write_text('{"ultramax": {"mode": "alphaforge"},', encoding="utf-8")
    broken = decide()
    assert broken["hookSpecificOutput"]["permissionDecision"] == "deny", "the mode is not dropped to development"
    assert "is not valid JSON" in broken["systemMessage"] and "alphaforge" in broken["systemMessage"]
