"""In-process fallback of the hook client: run the pipeline here, then start the daemon for next time."""

from __future__ import annotations

import os
import sys

from ultramax.paths import Paths

__all__ = ["run_in_process", "spawn_daemon"]


def run_in_process(event: str, payload: bytes, project: str, reason: str, timeout_ms: int) -> int:
    """Decide the event with an in-process Runtime, print the reply and return the exit code."""
    from ultramax.runtime import Runtime

    paths = Paths.from_env()
    outcome = Runtime(paths).handle(event or None, payload, project_hint=project or None)
    reply = outcome.reply
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
