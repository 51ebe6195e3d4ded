"""The hook never hangs past its configured time, even when the in-process pipeline itself is stuck.

A writer that stops while holding the audit log's lock (a SIGSTOPped daemon, say) would block every
in-process hook behind it; the fallback is bounded by its own timer and answers by the failure policy.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tests.conftest import CLIENT, UltramaxEnv, hook_payload, run_hook_process


@pytest.fixture
def audit_lock_held(umx: UltramaxEnv) -> Iterator[None]:
    """Hold the audit log's exclusive lock, as a stuck writer would."""
    umx.ultramax_home.mkdir(parents=True, exist_ok=True)
    fd = os.open(umx.ultramax_home / "audit.jsonl", os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        os.close(fd)


@pytest.mark.usefixtures("audit_lock_held")
def test_a_stuck_audit_writer_cannot_hang_the_hook_past_its_timeout(umx: UltramaxEnv) -> None:
    project = umx.project("acme-api")
    payload = hook_payload("PreToolUse", cwd=str(project))
    run = run_hook_process("PreToolUse", payload, timeout_ms=1000, project_dir=project)
    assert run.code == 0
    assert run.stdout == ""
    assert "no answer within 1000 ms" in run.stderr and "the event continues" in run.stderr
    assert run.elapsed < 4.0, f"hook took {run.elapsed:.1f} s"


@pytest.mark.usefixtures("audit_lock_held")
def test_a_stuck_audit_writer_in_trading_mode_gets_a_deny_in_time(umx: UltramaxEnv) -> None:
    project = umx.project("alphaforge")
    payload = hook_payload("PreToolUse", cwd=str(project))
    run = run_hook_process("PreToolUse", payload, timeout_ms=1000, project_dir=project)
    decision = json.loads(run.stdout)["hookSpecificOutput"]
    assert decision["permissionDecision"] == "deny"
    assert "trading mode denies" in decision["permissionDecisionReason"]
    assert run.elapsed < 4.0, f"hook took {run.elapsed:.1f} s"


def run_with_stdin_left_open(umx: UltramaxEnv, event: str, data: bytes, project: str) -> tuple[int, str, str, float]:
    """Run the client with ``data`` written to a stdin that is never closed (the writer hangs on to it)."""
    environ = umx.environ(CLAUDE_PROJECT_DIR=project)
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-I", "-S", CLIENT, event, "--timeout-ms=1000"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environ,
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    try:
        proc.stdin.write(data)
        proc.stdin.flush()
        code = proc.wait(timeout=30)
        elapsed = time.monotonic() - started
        return code, proc.stdout.read().decode(), proc.stderr.read().decode(), elapsed
    finally:
        proc.kill()
        proc.wait()
        proc.stdin.close()
        proc.stdout.close()
        proc.stderr.close()


def test_a_payload_on_a_stdin_that_never_closes_is_still_decided_within_the_timeout(umx: UltramaxEnv) -> None:
    project = umx.project("alphaforge")
    payload = hook_payload("PreToolUse", cwd=str(project), tool_input={"command": "rm -rf ~"})
    code, stdout, _, elapsed = run_with_stdin_left_open(umx, "PreToolUse", json.dumps(payload).encode(), str(project))
    assert code == 0
    assert json.loads(stdout)["hookSpecificOutput"]["permissionDecision"] == "deny"
    assert elapsed < 4.0, f"hook took {elapsed:.1f} s"


def test_a_stdin_that_never_closes_and_holds_nothing_continues_within_the_timeout(umx: UltramaxEnv) -> None:
    project = umx.project("acme-api")
    code, stdout, stderr, elapsed = run_with_stdin_left_open(umx, "PreToolUse", b"", str(project))
    assert (code, stdout) == (0, "")
    assert stderr.count("\n") == 1 and "hook input is empty" in stderr, stderr
    assert elapsed < 4.0, f"hook took {elapsed:.1f} s"
