"""``ultramax kill on|off|status``: the kill switch (``~/.claude/KILL_SWITCH``)."""

from __future__ import annotations

import argparse

from ultramax.cli.base import CliContext, Subparsers, emit_json
from ultramax.safety.killswitch import KillSwitch

__all__ = ["register"]


def register(sub: Subparsers) -> None:
    p = sub.add_parser("kill", help="the kill switch: stop every tool call at once")
    cmds = p.add_subparsers(dest="kill_command", metavar="ACTION", required=True)
    on = cmds.add_parser("on", help="engage: deny tool calls (reads still pass outside trading mode)")
    on.add_argument("--reason", default="", help="note stored in the switch file and shown in every denial")
    on.set_defaults(func=cmd_on)
    off = cmds.add_parser("off", help="release")
    off.set_defaults(func=cmd_off)
    st = cmds.add_parser("status", help="is it engaged? (exit 0 either way)")
    st.add_argument("--json", action="store_true", help="machine-readable output")
    st.set_defaults(func=cmd_status)


def cmd_on(args: argparse.Namespace, ctx: CliContext) -> int:
    switch = KillSwitch(ctx.paths.kill_switch)
    switch.engage(args.reason)
    print(f"KILL SWITCH ON ({switch.path}): tool calls are denied until `ultramax kill off`")
    return 0


def cmd_off(args: argparse.Namespace, ctx: CliContext) -> int:
    was_on = KillSwitch(ctx.paths.kill_switch).release()
    print("kill switch off" if was_on else "kill switch was already off")
    return 0


def cmd_status(args: argparse.Namespace, ctx: CliContext) -> int:
    switch = KillSwitch(ctx.paths.kill_switch)
    if args.json:
        emit_json({"engaged": switch.engaged, "path": str(switch.path), "note": switch.note() or None})
    elif switch.engaged:
        print(f"kill switch ON: {switch.note() or switch.path}")
    else:
        print("kill switch off")
    return 0
