"""Decisions the hook client makes in-process, when the daemon is dead or stalled, are audited like the daemon's:
with why the daemon did not answer, and -- when the in-process run itself runs out of time -- as a timeout,
even while a stopped writer holds the audit log (the record is deferred, then chained). The chain stays whole.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.conftest import DaemonProcess, UltramaxEnv, hook_payload, run_hook_process
from ultramax.audit import deferred_records, verify
from ultramax.daemon import stop_daemon
from ultramax.hook.fallback import run_in_process
from ultramax.runtime import Runtime
from ultramax.safety.killswitch import KillSwitch


def audit_records(umx: UltramaxEnv) -> list[dict[str, Any]]:
    if not umx.paths.audit_log.exists():
        return []
    return [json.loads(line) for line in umx.paths.audit_log.read_text(encoding="utf-8").splitlines()]


@contextmanager
def audit_log_locked(umx: UltramaxEnv) -> Iterator[None]:
    """Hold the audit log's exclusive lock, as a daemon stopped in the middle of an append would."""
    umx.ultramax_home.mkdir(parents=True, exist_ok=True)
    fd = os.open(umx.paths.audit_log, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        os.close(fd)


def test_a_decision_made_in_process_after_the_daemon_was_killed_is_audited_with_the_reason(
    daemon: DaemonProcess, umx: UltramaxEnv
) -> None:
    os.kill(daemon.pid, signal.SIGKILL)
    daemon.proc.wait(timeout=20)
    KillSwitch(umx.paths.kill_switch).engage()
    run = run_hook_process("PreToolUse", hook_payload("PreToolUse", session_id="after-kill"), timeout_ms=2000)
    assert run.code == 0 and run.json()["hookSpecificOutput"]["permissionDecision"] == "deny"
    [record] = audit_records(umx)
    assert (record["session"], record["decision"]) == ("after-kill", "deny")
    assert record["fallback"].startswith("ConnectionRefusedError"), record  # the socket the dead daemon left
    assert verify(umx.paths.audit_log).ok


def test_a_stalled_daemon_is_given_up_on_and_the_decision_made_in_process_is_audited_with_the_timeout(
    daemon: DaemonProcess, umx: UltramaxEnv
) -> None:
    os.kill(daemon.pid, signal.SIGSTOP)
    try:
        run = run_hook_process("PreToolUse", hook_payload("PreToolUse", session_id="stalled"), timeout_ms=500)
    finally:
        os.kill(daemon.pid, signal.SIGCONT)
    assert (run.code, run.stdout, run.stderr) == (0, "", "")
    first = audit_records(umx)[0]
    assert (first["session"], first["decision"]) == ("stalled", "continue")
    assert first["fallback"].startswith("TimeoutError"), first
    assert stop_daemon(umx.paths)  # the resumed daemon may still answer the abandoned call: the chain holds both
    records = audit_records(umx)
    assert all(r["session"] == "stalled" for r in records) and len(records) <= 2
    assert ["fallback" in r for r in records] == [True, False][: len(records)]
    assert verify(umx.paths.audit_log).ok


@pytest.mark.parametrize(("project_name", "decision"), [("acme-api", "continue"), ("alphaforge", "deny")])
def test_an_in_process_run_out_of_time_behind_a_stopped_writer_is_audited_as_a_timeout_once_the_log_is_free(
    umx: UltramaxEnv, project_name: str, decision: str
) -> None:
    project = umx.project(project_name)
    with audit_log_locked(umx):
        payload = hook_payload("PreToolUse", session_id="late", cwd=str(project))
        run = run_hook_process("PreToolUse", payload, timeout_ms=1000, project_dir=project)
        assert run.code == 0 and run.stderr.count("\n") == 1 and "Traceback" not in run.stderr
        assert "no answer within 1000 ms" in run.stderr and "audited once the audit log is free" in run.stderr
        assert audit_records(umx) == []  # nothing half-written behind the lock
        assert deferred_records(umx.paths.audit_log) == 1
    follow = run_hook_process("Stop", hook_payload("Stop", session_id="next", cwd=str(project)), project_dir=project)
    assert follow.code == 0, follow.stderr
    timeout, after = audit_records(umx)
    assert (timeout["event"], timeout["rule"]) == ("PreToolUse", "failure_policy.timeout")
    assert timeout["decision"] == decision
    assert timeout["fallback"].startswith("FileNotFoundError")  # no daemon: no socket at all
    assert timeout["project"] == str(project) and "decided_at" in timeout
    assert after["session"] == "next"
    assert deferred_records(umx.paths.audit_log) == 0
    assert verify(umx.paths.audit_log).ok


def test_an_in_process_run_whose_pipeline_cannot_be_built_in_time_still_answers_within_its_budget(
    umx: UltramaxEnv, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    never = threading.Event()

    def build_that_hangs(self: Runtime, *args: object, **kwargs: object) -> None:
        never.wait(10)  # a build stuck in I/O; the hook's SIGALRM interrupts the wait

    monkeypatch.setattr(Runtime, "__init__", build_that_hangs)
    monkeypatch.setenv("ULTRAMAX_NO_AUTOSTART", "1")
    payload = json.dumps(hook_payload("PreToolUse", session_id="slow-build")).encode()
    started = time.monotonic()
    code = run_in_process("PreToolUse", payload, "", "FileNotFoundError: no daemon", 1000)
    assert code == 0 and time.monotonic() - started < 5
    assert "no answer within 1000 ms in-process" in capsys.readouterr().err
    [record] = audit_records(umx)
    assert (record["session"], record["rule"], record["decision"]) == (
        "slow-build",
        "failure_policy.timeout",
        "continue",
    )
    assert "while building the pipeline" in record["reason"]
    assert verify(umx.paths.audit_log).ok
