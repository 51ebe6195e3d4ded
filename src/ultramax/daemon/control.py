"""Starting, stopping and asking the daemon, from the CLI side."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ultramax.errors import DaemonError
from ultramax.fsutil import disk_is_full
from ultramax.paths import Paths

__all__ = [
    "DaemonStatus",
    "daemon_request",
    "daemon_status",
    "restart_daemon",
    "socket_path_problem",
    "spawn_daemon",
    "start_daemon",
    "stop_daemon",
]


@dataclass(frozen=True, slots=True)
class DaemonStatus:
    running: bool
    pid: int | None
    socket: str
    detail: dict[str, Any]
    problem: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def daemon_request(paths: Paths, command: str, *, timeout: float = 2.0) -> dict[str, Any]:
    """Send a control request (``status``, ``stop``, ``ping``) and return the decoded reply."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(paths.socket))
        s.sendall(f"!{command}\t\n".encode())
        s.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    header, _, body = data.partition(b"\n")
    code, length = (int(x) for x in header.split())
    if code != 0:
        raise DaemonError(body[length:].decode().strip())
    result: dict[str, Any] = json.loads(body[:length])
    return result


def socket_path_problem(path: Path) -> str | None:
    """Why no daemon can listen on ``path``, if a directory is in the way (a stale socket or a file is removed
    by the daemon as it starts; a directory may hold someone's files, so it is only named)."""
    if path.is_dir() and not path.is_symlink():
        return f"{path} is a directory, not the daemon's socket: move it aside (mv {path} {path}.old)"
    return None


def _lock_held(paths: Paths) -> bool:
    try:
        fd = os.open(paths.lock_file, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also drops the lock if we got it
    return False


def _read_pid(paths: Paths) -> int | None:
    try:
        return int(paths.pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _lock_owner(paths: Paths) -> int | None:
    """The pid of the process holding the daemon's lock, from the kernel (Linux ``/proc/locks``); None if it
    cannot be told here."""
    try:
        st = os.stat(paths.lock_file)
        with open("/proc/locks", encoding="ascii") as fh:
            table = fh.read()
    except OSError:
        return None
    # "1: FLOCK  ADVISORY  WRITE 1234 fe:00:5678 0 EOF": major and minor in hex, then the inode
    device = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    for line in table.splitlines():
        fields = line.split()
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == device and fields[4].isdigit():
            return int(fields[4])
    return None


def _daemon_pid(paths: Paths) -> int | None:
    """The daemon's pid, only if it can be vouched for: the pid file may be stale and its pid reused by an
    unrelated process, which a signal must never reach."""
    owner = _lock_owner(paths)
    if owner is not None:
        return owner
    pid = _read_pid(paths)
    if pid is None:
        return None
    try:  # no /proc/locks (macOS): the pid must at least be running the daemon
        command = subprocess.run(
            ["ps", "-o", "command=", "-p", str(pid)], capture_output=True, text=True, timeout=5, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return pid if "ultramax.daemon" in command else None


def daemon_status(paths: Paths) -> DaemonStatus:
    """Whether the daemon runs and answers; names a stale socket or a hung daemon."""
    pid = _read_pid(paths)
    try:
        detail = daemon_request(paths, "status")
        return DaemonStatus(True, int(detail.get("pid", pid or 0)) or pid, str(paths.socket), detail)
    except FileNotFoundError:
        problem = None if not _lock_held(paths) else "daemon holds the lock but has no socket (starting up?)"
    except ConnectionRefusedError:
        problem = f"stale socket {paths.socket}: nothing listens on it (run `ultramax daemon start`)"
        problem = socket_path_problem(paths.socket) or problem
    except TimeoutError:
        problem = f"daemon (pid {pid}) does not answer within 2 s (run `ultramax daemon restart`)"
    except (OSError, ValueError, DaemonError) as exc:
        problem = f"daemon did not answer properly: {exc}"
    holder = (_lock_owner(paths) or pid) if _lock_held(paths) else None  # the pid file's pid may be stale
    return DaemonStatus(False, holder, str(paths.socket), {}, problem)


def spawn_daemon(paths: Paths) -> subprocess.Popen[bytes]:
    """Start ``python -m ultramax.daemon serve`` detached, its output appended to ``daemon.out``.

    A second daemon exits at once because the first holds the lock, so racing spawners are harmless.
    """
    paths.ensure_home()
    try:
        out = os.open(paths.home / "daemon.out", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    except OSError:  # only start-up diagnostics go there: the daemon runs without them
        out = os.open(os.devnull, os.O_WRONLY)
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "ultramax.daemon", "serve"],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
            close_fds=True,
        )
    finally:
        os.close(out)


def start_daemon(paths: Paths, *, timeout: float = 10.0) -> DaemonStatus:
    """Start the daemon detached and wait until it answers; return its status."""
    status = daemon_status(paths)
    if status.running:
        return status
    proc = spawn_daemon(paths)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = daemon_status(paths)
        if status.running:
            return status
        if proc.poll() is not None and not _lock_held(paths):
            break
        time.sleep(0.02)
    if disk_is_full(paths.home):
        raise DaemonError(f"the daemon cannot start: the disk holding {paths.home} is full; free some space")
    tail = _tail(paths.home / "daemon.out")
    code = proc.poll()
    if code is not None:  # it died on its way up: say so, not that it was slow
        raise DaemonError(f"the daemon exited as it started (status {code}); its output:\n{tail}")
    raise DaemonError(f"the daemon did not start within {timeout:g} s; its output:\n{tail}")


def stop_daemon(paths: Paths, *, timeout: float = 15.0) -> bool:
    """Stop the daemon gracefully (SIGTERM after a control request fails); True if one was running.

    Signals go only to the process that holds the daemon's lock, never merely to the pid file's pid."""
    if not _lock_held(paths):
        for stale in (paths.socket, paths.pid_file):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()
        return False
    pid = _daemon_pid(paths)
    try:
        daemon_request(paths, "stop")
    except (OSError, ValueError, DaemonError):
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
                os.kill(pid, signal.SIGCONT)  # a stopped (SIGSTOP) daemon gets SIGTERM only once it runs again
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _lock_held(paths):
            return True
        time.sleep(0.02)
    pid = _daemon_pid(paths)  # again: the one that held the lock may have exited and its pid been reused
    if pid is None:
        raise DaemonError(
            f"the daemon did not stop within {timeout:g} s and its pid cannot be told (the pid file names "
            f"{_read_pid(paths)}, which does not run the daemon); stop the process holding {paths.lock_file} by hand"
        )
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    raise DaemonError(f"daemon pid {pid} did not stop within {timeout:g} s; it was killed")


def restart_daemon(paths: Paths) -> DaemonStatus:
    stop_daemon(paths)
    return start_daemon(paths)


def _tail(path: os.PathLike[str], lines: int = 20) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return "".join(fh.readlines()[-lines:])
    except OSError:
        return "(no output)"
