"""``ultramax confirm [TOKEN]`` and ``ultramax override set|clear|show``: the human's side of layers 13 and 14.

Both are for the user at a terminal, never for Claude: run inside a Claude Code tool call (``CLAUDECODE=1``
in the environment) they refuse, so the agent cannot confirm its own calls or lift its own limits.
"""

from __future__ import annotations

import argparse
import getpass
import os
import re
import time
from datetime import UTC, datetime
from typing import Any

from ultramax.cli.base import CliContext, Subparsers, emit_json
from ultramax.config import load_settings
from ultramax.errors import UltramaxError, UsageError
from ultramax.safety.confirm import confirmations_for
from ultramax.safety.override import (
    DEFAULT_LAYERS,
    WAIVABLE,
    Override,
    audit_event,
    clear_override,
    read_override,
    write_override,
)
from ultramax.safety.trading import breakers_for

__all__ = ["register"]

AGENT_MARKERS = ("CLAUDECODE", "CLAUDE_CODE_SESSION_ID")


def register(sub: Subparsers) -> None:
    c = sub.add_parser(
        "confirm",
        help="review pending confirmations, or approve one with its one-time token",
        description="Without TOKEN: list the calls waiting for your confirmation (with their tokens). With TOKEN: "
        "approve that exact call once; retry it in Claude Code within safety.confirmationTtlSeconds.",
    )
    c.add_argument("token", nargs="?", help="the one-time token shown by `ultramax confirm`")
    c.add_argument("--json", action="store_true", help="machine-readable output")
    c.set_defaults(func=cmd_confirm)

    o = sub.add_parser("override", help="the manual override (~/.claude/OVERRIDE): lift named layers for a while")
    cmds = o.add_subparsers(dest="override_command", metavar="ACTION", required=True)
    s = cmds.add_parser(
        "set",
        help="allow OPERATION(s) past named layers until an expiry",
        description="Write ~/.claude/OVERRIDE. OPERATION is a glob over operation names: a tool name "
        "(mcp__alpaca__place_stock_order), trade:<tool>, or a word such as execute_trade. The kill switch, "
        "input validation, authentication, permissions, paper trading and post-execution checks cannot be lifted.",
    )
    s.add_argument("operations", nargs="+", metavar="OPERATION")
    s.add_argument("--for", dest="duration", default="1h", help="lifetime, e.g. 30m, 2h, 1d (default 1h)")
    s.add_argument(
        "--layers",
        default=",".join(DEFAULT_LAYERS),
        help=f"comma-separated layers to lift (default: {', '.join(DEFAULT_LAYERS)}; allowed: {', '.join(WAIVABLE)})",
    )
    s.add_argument("--reason", default="", help="why (stored in the file and the audit log)")
    s.set_defaults(func=cmd_override_set)
    cl = cmds.add_parser("clear", help="remove the override")
    cl.set_defaults(func=cmd_override_clear)
    sh = cmds.add_parser("show", help="the override in force and any open circuit breakers")
    sh.add_argument("--json", action="store_true", help="machine-readable output")
    sh.set_defaults(func=cmd_override_show)


def _refuse_agent(what: str) -> None:
    if any(os.environ.get(name) for name in AGENT_MARKERS):
        raise UltramaxError(
            f"`ultramax {what}` must be run by you in a terminal, not from inside a Claude Code session "
            "(CLAUDECODE is set): the agent may not approve its own calls or lift its own limits"
        )


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


def _ago(ts: float, now: float) -> str:
    seconds = int(ts - now)
    return f"in {seconds} s" if seconds >= 0 else f"{-seconds} s ago"


def cmd_confirm(args: argparse.Namespace, ctx: CliContext) -> int:
    _refuse_agent("confirm")
    confirmations = confirmations_for(ctx.paths)
    now = time.time()
    if not args.token:
        items = confirmations.open(now)
        if args.json:
            emit_json([{**p.public(), "token": p.token} for p in items])
            return 0
        if not items:
            print("no calls are waiting for confirmation")
            return 0
        for p in items:
            print(f"{p.ref}  {p.status:<8} expires {_ago(p.expires_at, now)}  {p.summary}")
            for reason in p.reasons:
                print(f"    why: {reason}")
            if p.status == "pending":
                print(f"    approve: ultramax confirm {p.token}")
        return 0
    settings = load_settings(ctx.paths, ctx.project_dir)
    ttl = float(settings.get("safety.confirmationTtlSeconds"))
    pending = confirmations.approve(args.token.strip(), by=_user(), ttl=ttl, now=now)
    audit_event(
        ctx.paths,
        {
            "event": "confirm",
            "decision": "approve",
            "rule": "confirm.token_redeemed",
            "tool": pending.tool,
            "reason": f"{pending.ref} approved by {pending.approved_by}: {pending.summary}",
        },
    )
    if args.json:
        emit_json(pending.public())
    else:
        print(
            f"approved {pending.ref}: {pending.summary}\n"
            f"retry exactly the same call within {int(pending.expires_at - now)} s; it will run once"
        )
    return 0


_DURATION = re.compile(r"^(\d+)\s*([smhd]?)$")


def _seconds(text: str) -> int:
    m = _DURATION.match(text.strip().lower())
    if not m:
        raise UsageError(f"--for: cannot read duration {text!r}; use e.g. 90s, 30m, 2h, 1d")
    return int(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def cmd_override_set(args: argparse.Namespace, ctx: CliContext) -> int:
    _refuse_agent("override set")
    settings = load_settings(ctx.paths, ctx.project_dir)
    seconds = _seconds(args.duration)
    longest = int(settings.get("safety.overrideMaxSeconds"))
    if seconds <= 0 or seconds > longest:
        raise UsageError(f"--for must be between 1 s and {longest} s (safety.overrideMaxSeconds)")
    layers = tuple(x.strip() for x in args.layers.split(",") if x.strip())
    bad = [x for x in layers if x not in WAIVABLE]
    if bad or not layers:
        raise UsageError(f"--layers: cannot lift {', '.join(bad) or 'nothing'}; choose from {', '.join(WAIVABLE)}")
    override = Override(tuple(args.operations), layers, time.time() + seconds, args.reason, _user(), "")
    write_override(ctx.paths, override)
    until = datetime.fromtimestamp(override.expires, UTC).isoformat(timespec="seconds")
    ops = ", ".join(args.operations)
    print(f"override set ({ctx.paths.override}): {', '.join(layers)} lifted for {ops} until {until}")
    return 0


def cmd_override_clear(args: argparse.Namespace, ctx: CliContext) -> int:
    print("override cleared" if clear_override(ctx.paths, by=_user()) else "no override was set")
    return 0


def cmd_override_show(args: argparse.Namespace, ctx: CliContext) -> int:
    settings = load_settings(ctx.paths, ctx.project_dir)
    override = read_override(ctx.paths.override, max_seconds=float(settings.get("safety.overrideMaxSeconds")))
    now = time.time()
    breakers: list[dict[str, Any]] = []
    if (ctx.paths.home / "safety.db").exists():
        cooldown = float(settings.get("safety.breakerCooldownSeconds"))
        for state in breakers_for(ctx.paths).states():
            if state.opened_at is not None and state.opened_at + cooldown > now:
                breakers.append({"scope": state.scope, "reason": state.reason, "until": state.opened_at + cooldown})
    if args.json:
        emit_json(
            {
                "override": None
                if override is None
                else {**override.to_dict(), "active": override.active(now), "problem": override.problem},
                "open_breakers": breakers,
            }
        )
        return 0
    if override is None:
        print("no override is set")
    elif override.problem:
        print(f"override IGNORED ({ctx.paths.override}): {override.problem}")
    else:
        status = "active" if override.active(now) else "expired"
        print(
            f"override {status}: {', '.join(override.layers)} lifted for {', '.join(override.operations)} "
            f"until {override.to_dict()['expires']}" + (f" ({override.reason})" if override.reason else "")
        )
    for item in breakers:
        left = float(item["until"]) - now
        print(f"circuit breaker OPEN for {item['scope']} for {int(left)} more s: {item['reason']}")
    return 0
