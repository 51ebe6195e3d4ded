"""``ultramax install``, ``ultramax uninstall`` and ``ultramax doctor``: wire ultramax into Claude Code."""

from __future__ import annotations

import argparse
import sys

from ultramax.cli.base import CliContext, Subparsers, emit_json, whole_number
from ultramax.daemon.handover import Handover, replace_other_daemon
from ultramax.doctor import Check, check_disabled, check_duplicates, collect_sources, run_doctor, worst
from ultramax.install import HOOK_EVENTS, InstallResult, install, uninstall

__all__ = ["register"]

_SCOPE_HELP = {
    "user": "~/.claude/settings.json: every project (default)",
    "project": ".claude/settings.json: this project, shared with the team",
    "local": ".claude/settings.local.json: this project, only you",
}


def _scope_flags(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group()
    for scope, text in _SCOPE_HELP.items():
        group.add_argument(f"--{scope}", dest="scope", action="store_const", const=scope, help=text)
    p.set_defaults(scope="user")
    p.add_argument("--dry-run", action="store_true", help="show the change as a diff; write nothing")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def register(sub: Subparsers) -> None:
    p = sub.add_parser("install", help="register ultramax's hooks in Claude Code's settings")
    _scope_flags(p)
    p.add_argument(
        "--timeout-ms",
        type=whole_number(50),
        metavar="MS",
        help="how long a hook waits for the daemon (default: ultramax.hookTimeoutMs)",
    )
    p.set_defaults(func=cmd_install)

    u = sub.add_parser("uninstall", help="remove ultramax's hooks (and nothing else) from Claude Code's settings")
    _scope_flags(u)
    u.set_defaults(func=cmd_uninstall)

    d = sub.add_parser("doctor", help="check the set-up: Claude Code, hooks, daemon, permissions (exit 1 on failure)")
    d.add_argument("--json", action="store_true", help="machine-readable output")
    d.set_defaults(func=cmd_doctor)


def _counts(result: InstallResult) -> str:
    return f"{result.added} added, {result.replaced} replaced, {result.removed} removed"


def _show(result: InstallResult, verb: str) -> None:
    if result.dry_run and result.changed:
        sys.stdout.write(result.diff)
        print(f"dry run: {result.path} would change ({_counts(result)}); nothing written")
    elif result.dry_run:
        print(f"dry run: {result.path} is already up to date; nothing would change")
    elif not result.changed:
        print(f"{result.path}: already up to date; nothing written")
    else:
        print(f"{verb} {result.path} ({_counts(result)})")
        if result.backup:
            print(f"previous file saved as {result.backup}")
    if result.changed and not result.layout_kept:
        print(f"note: {result.note}", file=sys.stderr)


def cmd_install(args: argparse.Namespace, ctx: CliContext) -> int:
    result = install(
        ctx.paths, scope=args.scope, project_dir=ctx.project_dir, dry_run=args.dry_run, timeout_ms=args.timeout_ms
    )
    sources = collect_sources(ctx.paths, ctx.project_dir)
    duplicates = None if args.dry_run else check_duplicates(sources)
    disabled = [c for c in check_disabled(sources) if c.status != "ok"]
    # a daemon from another install would keep answering the hooks with its code: hand over to this one
    handover = replace_other_daemon(ctx.paths, dry_run=args.dry_run)
    if args.json:
        data = result.to_dict()
        data["duplicates"] = duplicates.to_dict() if duplicates and duplicates.status != "ok" else None
        data["daemon"] = handover.to_dict() if handover.old else None
        emit_json(data)
        return 0
    _show(result, f"ultramax hooks ({len(HOOK_EVENTS)} events) registered in")
    if args.scope == "project" and result.changed:
        # the command names this machine's interpreter; a teammate's checkout would run a path they lack
        print(
            "note: .claude/settings.json is usually committed, and these hooks name this machine's Python; "
            "teammates should use `ultramax install --local` or the ultramax plugin instead"
        )
    if duplicates is not None and duplicates.status != "ok":
        print(f"warning: {duplicates.message}\n  fix: {duplicates.fix}", file=sys.stderr)
    for check in disabled:  # registered, but Claude Code will run none of them
        print(f"warning: {check.message}\n  fix: {check.fix}", file=sys.stderr)
    _show_handover(handover, args.dry_run)
    if result.changed and not result.dry_run:
        print("check the set-up with `ultramax doctor`")
    return 0


def _show_handover(handover: Handover, dry_run: bool) -> None:
    if handover.old is None:
        return
    if dry_run:
        print(f"dry run: the running daemon is {handover.old}; install would restart it from this install")
    elif handover.error is None:
        print(f"restarted the daemon from this install (pid {handover.new_pid}): {handover.old} was answering hooks")
    else:
        state = "it is stopped: hooks run in-process (slower) until one starts" if handover.stopped else "it still runs"
        print(
            f"warning: the running daemon was {handover.old}, whose code answers the hooks, and restarting it from "
            f"this install failed ({handover.error}); {state}\n  fix: {handover.fix}",
            file=sys.stderr,
        )


def cmd_uninstall(args: argparse.Namespace, ctx: CliContext) -> int:
    result = uninstall(ctx.paths, scope=args.scope, project_dir=ctx.project_dir, dry_run=args.dry_run)
    if args.json:
        emit_json(result.to_dict())
    elif not result.changed and not result.dry_run:
        print(f"{result.path}: no ultramax hooks; nothing written")
    else:
        _show(result, "ultramax hooks removed from")
        print(("would leave: " if result.dry_run else "left: ") + result.note)
    return 0


_MARK = {"ok": "ok  ", "warn": "warn", "fail": "FAIL"}


def _print_checks(checks: list[Check]) -> None:
    width = max(len(c.name) for c in checks)
    for c in checks:
        print(f"{_MARK[c.status]}  {c.name:<{width}}  {c.message}")
        if c.fix and c.status != "ok":
            print(f"      {'':<{width}}  fix: {c.fix}")


def cmd_doctor(args: argparse.Namespace, ctx: CliContext) -> int:
    checks = run_doctor(ctx.paths, ctx.project_dir)
    status = worst(checks)
    if args.json:
        emit_json({"status": status, "project_dir": str(ctx.project_dir), "checks": [c.to_dict() for c in checks]})
    else:
        _print_checks(checks)
        fails = sum(c.status == "fail" for c in checks)
        warns = sum(c.status == "warn" for c in checks)
        print("all good" if status == "ok" else f"{fails} failure(s), {warns} warning(s) (project: {ctx.project_dir})")
    return 1 if status == "fail" else 0
