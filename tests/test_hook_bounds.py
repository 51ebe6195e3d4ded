"""The hook never hangs past its configured time, even when the in-process pipeline itself is stuck.

A writer that stops while holding the audit log's lock (a SIGSTOPped daemon, say) would block every
in-process hook behind it; the fallback is bounded by its own timer and answers by the failure policy.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator

import pytest

from tests.conftest import UltramaxEnv, hook_payload, run_hook_process


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
