"""In-process fallback of the hook client: run the pipeline here, then start the daemon for next time."""

from __future__ import annotations

import os
import signal
import sys

from ultramax.paths import Paths

__all__ = ["run_in_process", "spawn_daemon"]


class _OutOfTime(BaseException):
    """Not an Exception: the pipeline's own error handling must not swallow the deadline."""


def _alarm(signum: int, frame: object) -> None:
    raise _OutOfTime


def run_in_process(event: str, payload: bytes, project: str, reason: str, timeout_ms: int) -> int:
    """Decide the event with an in-process Runtime, print the reply and return the exit code.

    The run is bounded by ``timeout_ms`` too (SIGALRM interrupts even a blocked system call), so the hook
    never hangs past its configured time: out of time is answered by the failure policy.
    """
    from ultramax.decisions import Decision, HookReply, render
    from ultramax.runtime import Runtime

    paths = Paths.from_env()
    runtime = Runtime(paths)
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, max(timeout_ms, 1000) / 1000)
    try:
        reply = runtime.handle(event or None, payload, project_hint=project or None).reply
    except _OutOfTime:
        message = f"ultramax-hook: no answer within {max(timeout_ms, 1000)} ms in-process (daemon: {reason})"
        if runtime.strict_for(project or None) and event in ("PreToolUse", "PermissionRequest"):
            reply = render(event, Decision(permission="deny", reason=message + "; trading mode denies"))
            reply = HookReply(reply.exit_code, reply.stdout, message + "\n")
        else:
            reply = HookReply(0, "", message + "; the event continues (failure policy)\n")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    if reply.stdout:
        sys.stdout.write(reply.stdout)
        sys.stdout.flush()
    if reply.stderr:
        sys.stderr.write(reply.stderr)
    if os.environ.get("ULTRAMAX_NO_AUTOSTART") != "1":
        spawn_daemon(paths)
    return reply.exit_code


def spawn_daemon(paths: Paths) -> None:
    """Start the daemon detached for the next hook; a failure only costs speed, so it is one stderr line."""
    from ultramax.daemon.control import spawn_daemon as spawn

    try:
        spawn(paths)
    except OSError as exc:
        sys.stderr.write(f"ultramax-hook: could not start the daemon ({exc}); run `ultramax daemon start`\n")
