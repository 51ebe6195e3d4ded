"""In-process fallback of the hook client: run the pipeline here, then start the daemon for next time.

Every decision made here is audited like the daemon's, with why the daemon did not answer (``fallback``). A
run that is out of time, or that cannot even start, is audited too: its record is chained at once if the log's
lock is free within ``AUDIT_WAIT_S``, else deferred to the spool (a stopped daemon may hold the lock) for the
next writer to chain. Whatever happens, nothing here raises into Claude Code's session.
"""

from __future__ import annotations

import os
import signal
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ultramax.deadline import deadline_in
from ultramax.paths import Paths

if TYPE_CHECKING:
    from ultramax.runtime import Runtime

__all__ = ["AUDIT_WAIT_S", "SQLITE_RESERVE_S", "run_in_process", "spawn_daemon"]

AUDIT_WAIT_S = 0.5
"""How long the record of a timed-out run waits for the audit log's lock before it is deferred instead: the
hook has already used its time, and Claude Code kills it after ``timeout`` seconds (a killed PreToolUse hook
fails open)."""


SQLITE_RESERVE_S = 0.25
"""What is left of the in-process run's budget when a SQLite store gives up waiting for a lock another process
holds: time to decide the event without that store (a stage failure like any other) and audit the decision."""


class _OutOfTime(BaseException):
    """Not an Exception: the pipeline's own error handling must not swallow the deadline."""


def _alarm(signum: int, frame: object) -> None:
    raise _OutOfTime


def run_in_process(event: str, payload: bytes, project: str, reason: str, timeout_ms: int) -> int:
    """Decide the event with an in-process Runtime, print the reply and return the exit code.

    The run is bounded by ``timeout_ms`` too (SIGALRM interrupts even a blocked system call), so the hook
    never hangs past its configured time: out of time is answered by the failure policy, and audited. The one
    wait SIGALRM cannot interrupt, SQLite's for a lock held by another process, is bounded by a deadline
    (``ultramax.deadline``) that ends ``SQLITE_RESERVE_S`` before the budget: the store gives up, and its stage
    fails like any other.
    """
    from ultramax.decisions import Decision, HookReply, render
    from ultramax.runtime import Runtime

    call = _Call(Paths.from_env(), event, payload, project, reason)
    budget_ms = max(timeout_ms, 1000)
    previous = signal.signal(signal.SIGALRM, _alarm)
    # the budget covers building the pipeline too (imports, opening stores): a slow build must not push the
    # run past the time Claude Code allows the hook
    signal.setitimer(signal.ITIMER_REAL, budget_ms / 1000)
    runtime: Runtime | None = None
    timed_out = False
    try:
        # SIGALRM cannot cut short a wait for a SQLite lock (it loops in C): the stores cap those waits at the
        # time left, leaving SQLITE_RESERVE_S to decide without them and audit
        with deadline_in(budget_ms / 1000 - SQLITE_RESERVE_S):
            try:
                runtime = Runtime(call.paths)
            except Exception as exc:  # the pipeline cannot even be built here: say so in the audit log, then stderr
                call.audit(None, "continue", "failure_policy.internal", f"cannot run in-process: {exc}")
                raise
            reply = runtime.handle(event or None, payload, project_hint=project or None, fallback=reason).reply
    except _OutOfTime:
        timed_out = True
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    if timed_out:
        message = f"ultramax-hook: no answer within {budget_ms} ms in-process (daemon: {reason})"
        if runtime is None:
            message += " while building the pipeline"
        if runtime is not None and runtime.strict_for(project or None) and event in ("PreToolUse", "PermissionRequest"):
            reply = render(event, Decision(permission="deny", reason=message + "; trading mode denies"))
            note = call.audit(runtime, "deny", "failure_policy.timeout", message)
            reply = HookReply(reply.exit_code, reply.stdout, message + note + "\n")
        else:
            note = call.audit(runtime, "continue", "failure_policy.timeout", message)
            reply = HookReply(0, "", message + "; the event continues (failure policy)" + note + "\n")
    if reply.stdout:
        sys.stdout.write(reply.stdout)
        sys.stdout.flush()
    if reply.stderr:
        sys.stderr.write(reply.stderr)
    if os.environ.get("ULTRAMAX_NO_AUTOSTART") != "1":
        spawn_daemon(call.paths)
    return reply.exit_code


@dataclass(frozen=True, slots=True)
class _Call:
    """The hook call being decided in-process, for the records the pipeline did not get to write."""

    paths: Paths
    event: str
    payload: bytes
    project: str
    reason: str  # why no daemon answered

    def audit(self, runtime: Runtime | None, decision: str, rule: str, message: str) -> str:
        """Record a decision made outside the pipeline; returns "" or a note for stderr. Never raises."""
        try:
            from ultramax.audit import AuditLog, policy_record

            log = runtime.audit if runtime is not None else AuditLog(self.paths.audit_log, self.paths.audit_head)
            entry = policy_record(
                self.event or "unknown", decision, "fallback", rule, message,
                raw=self.payload, project=self.project, fallback=self.reason,
            )  # fmt: skip
            written = log.append_or_defer(entry, wait=AUDIT_WAIT_S)
        except Exception as exc:  # noqa: BLE001 -- an audit failure is reported, never a crash of the hook
            return f"; and the audit log could not record it: {exc}"
        if isinstance(written, dict):
            return ""
        return f"; audited once the audit log is free (deferred to {written.parent})"


def spawn_daemon(paths: Paths) -> None:
    """Start the daemon detached for the next hook; a failure only costs speed, so it is one stderr line."""
    from ultramax.daemon.control import spawn_daemon as spawn

    try:
        spawn(paths)
    except OSError as exc:
        sys.stderr.write(f"ultramax-hook: could not start the daemon ({exc}); run `ultramax daemon start`\n")
