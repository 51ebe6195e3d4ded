"""The per-user daemon: warm pipelines behind a Unix socket, metrics on loopback."""

from ultramax.daemon.control import (
    DaemonStatus,
    daemon_request,
    daemon_status,
    restart_daemon,
    start_daemon,
    stop_daemon,
)

__all__ = ["DaemonStatus", "daemon_request", "daemon_status", "restart_daemon", "start_daemon", "stop_daemon"]
