"""A daemon from another install of ultramax -- an upgrade in place, another virtual environment -- keeps
answering every hook with its own code until it is restarted. ``ultramax install`` hands over to this one.

The running daemon tells which it is in its status (``version`` and ``package``, the directory it imports
ultramax from). Handing over is a graceful stop through the control socket (SIGTERM to its pid if it does not
answer; in-flight hook calls finish first), then a start from this interpreter. While no daemon runs, hooks
are decided in-process, so the switch costs only speed.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ultramax import __version__
from ultramax.daemon.control import DaemonStatus, daemon_status, start_daemon, stop_daemon
from ultramax.errors import DaemonError
from ultramax.paths import Paths

__all__ = ["Handover", "other_install", "replace_other_daemon", "restart_command", "this_package"]


def this_package() -> str:
    """The directory this process imports ultramax from (what a daemon reports as ``package``)."""
    return str(Path(__file__).resolve().parents[1])


def other_install(status: DaemonStatus) -> str | None:
    """``ultramax X from DIR (pid N)`` if the running daemon is another install than this one, else None.

    A daemon too old to report its package is not judged (None)."""
    version, package = status.detail.get("version"), status.detail.get("package")
    if not status.running or package is None or (version, package) == (__version__, this_package()):
        return None
    return f"ultramax {version} from {package} (pid {status.pid})"


def restart_command() -> str:
    """The command that restarts the daemon from this install, whatever ``ultramax`` PATH finds first."""
    script = Path(sys.executable).with_name("ultramax")
    if script.is_file():
        return f"{shlex.quote(str(script))} daemon restart"
    return f"{shlex.quote(sys.executable)} -m ultramax.cli.main daemon restart"


@dataclass(frozen=True, slots=True)
class Handover:
    """What ``replace_other_daemon`` found and did."""

    old: str | None = None  # the other install's daemon that was running (None: nothing to hand over)
    stopped: bool = False
    new_pid: int | None = None  # this install's daemon, once it answers
    error: str | None = None  # why the handover did not complete
    fix: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def replace_other_daemon(paths: Paths, *, dry_run: bool = False) -> Handover:
    """Restart the daemon from this install if the running one is another install; otherwise do nothing."""
    old = other_install(daemon_status(paths))
    if old is None:
        return Handover()
    fix = restart_command()
    if dry_run:
        return Handover(old, fix=fix)
    try:
        stop_daemon(paths)
    except (DaemonError, OSError) as exc:
        return Handover(old, error=f"it did not stop: {exc}", fix=fix)
    try:
        status = start_daemon(paths)
    except (DaemonError, OSError) as exc:
        return Handover(old, stopped=True, error=f"this install's daemon did not start: {exc}", fix=fix)
    still = other_install(status)  # another process may have started the old one again meanwhile
    if still is not None:
        return Handover(old, stopped=True, error=f"the daemon answering now is {still}", fix=fix)
    return Handover(old, stopped=True, new_pid=status.pid, fix=fix)
