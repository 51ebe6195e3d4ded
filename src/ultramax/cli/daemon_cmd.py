"""``ultramax daemon start|stop|status|restart|serve``."""

from __future__ import annotations

import argparse

from ultramax.cli.base import CliContext, Subparsers, emit_json
from ultramax.daemon.control import DaemonStatus, daemon_status, restart_daemon, start_daemon, stop_daemon

__all__ = ["register"]


def register(sub: Subparsers) -> None:
    p = sub.add_parser("daemon", help="the per-user daemon that answers hook events")
    cmds = p.add_subparsers(dest="daemon_command", metavar="ACTION", required=True)
    for name, func, text in (
        ("start", cmd_start, "start the daemon in the background"),
        ("stop", cmd_stop, "stop it gracefully (in-flight hook calls finish)"),
        ("status", cmd_status, "is it running and answering? (exit 1 if not)"),
        ("restart", cmd_restart, "stop, then start"),
        ("serve", cmd_serve, "run the daemon in the foreground"),
    ):
        c = cmds.add_parser(name, help=text)
        if name != "serve":  # it runs until stopped and prints nothing of its own to format
            c.add_argument("--json", action="store_true", help="machine-readable output")
        c.set_defaults(func=func)


def _show(status: DaemonStatus, as_json: bool) -> int:
    if as_json:
        emit_json(status.to_dict())
    elif status.running:
        d = status.detail
        metrics = d.get("metrics_url") or "off"
        if not d.get("metrics_url") and d.get("metrics_error"):
            metrics += f" ({d['metrics_error']}; set observability.metricsPort to a free port, 0 picks one)"
        print(
            f"daemon running: pid {status.pid}, socket {status.socket}, metrics {metrics}, handled {d.get('handled')}"
        )
    else:
        print("daemon not running" + (f": {status.problem}" if status.problem else ""))
    return 0 if status.running else 1


def cmd_start(args: argparse.Namespace, ctx: CliContext) -> int:
    return _show(start_daemon(ctx.paths), args.json)


def cmd_stop(args: argparse.Namespace, ctx: CliContext) -> int:
    stopped = stop_daemon(ctx.paths)
    if args.json:
        emit_json({"stopped": stopped})
    else:
        print("daemon stopped" if stopped else "daemon was not running")
    return 0


def cmd_status(args: argparse.Namespace, ctx: CliContext) -> int:
    return _show(daemon_status(ctx.paths), args.json)


def cmd_restart(args: argparse.Namespace, ctx: CliContext) -> int:
    return _show(restart_daemon(ctx.paths), args.json)


def cmd_serve(args: argparse.Namespace, ctx: CliContext) -> int:
    from ultramax.daemon.server import main

    return main(["serve"])
