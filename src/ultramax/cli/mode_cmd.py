"""``ultramax mode show|list|activate``."""

from __future__ import annotations

import argparse
import sys

from ultramax.cli.base import CliContext, Subparsers, emit_json
from ultramax.config import load_settings
from ultramax.errors import ModeError, UsageError
from ultramax.modes import detect_mode, get_mode, load_modes, write_mode
from ultramax.pipeline.registry import default_registry

__all__ = ["register"]


def register(sub: Subparsers) -> None:
    p = sub.add_parser("mode", help="per-project modes (alphaforge / state-of-witness / development)")
    cmds = p.add_subparsers(dest="mode_command", metavar="ACTION", required=True)
    show = cmds.add_parser("show", help="the project's mode, why, and what it switches on")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(func=cmd_show)
    lst = cmds.add_parser("list", help="all modes")
    lst.add_argument("--json", action="store_true", help="machine-readable output")
    lst.set_defaults(func=cmd_list)
    act = cmds.add_parser("activate", help="write the mode into the project's .claude/settings.json")
    act.add_argument("name", help="alphaforge (trading), state-of-witness (creative) or development")
    act.set_defaults(func=cmd_activate)


def cmd_show(args: argparse.Namespace, ctx: CliContext) -> int:
    settings = load_settings(ctx.paths, ctx.project_dir)
    selection = detect_mode(ctx.project_dir, settings)
    mode = selection.mode
    stages = list(settings.get("ultramax.hookStages") or mode.hook_stages)
    registry = default_registry()
    active = [s for s in stages if s in registry]
    missing = [s for s in stages if s not in registry]
    if args.json:
        emit_json(
            {
                "project_dir": str(ctx.project_dir),
                "mode": mode.name,
                "source": selection.source,
                "config": mode.to_dict(),
                "stages": {"active": active, "not_installed": missing},
            }
        )
        return 0
    print(f"project   {ctx.project_dir}")
    print(f"mode      {mode.name}  ({selection.source})")
    print(f"          {mode.description}")
    print(f"safety    {mode.safety_level}, failure policy {mode.failure_policy}")
    print(f"stages    {' -> '.join(active)}")
    if missing:
        print(f"          not installed yet: {', '.join(missing)}")
    print(f"mcp       {', '.join(mode.mcp_servers)}")
    print(f"skills    {', '.join(mode.required_skills)}")
    print(f"confirm   {', '.join(mode.require_confirmation) or '-'}")
    print(f"blocked   {', '.join(mode.blocked_operations) or '-'}")
    for problem in settings.problems:  # a file that does not parse may hold the mode the user chose
        print(f"warning: {problem}", file=sys.stderr)
    return 0


def cmd_list(args: argparse.Namespace, ctx: CliContext) -> int:
    modes = load_modes()
    if args.json:
        emit_json([m.to_dict() for m in modes.values()])
        return 0
    for mode in modes.values():
        aliases = f" (aliases: {', '.join(mode.aliases)})" if mode.aliases else ""
        print(f"{mode.name:<17} {mode.description}{aliases}")
    return 0


def cmd_activate(args: argparse.Namespace, ctx: CliContext) -> int:
    try:
        wanted = get_mode(args.name)
    except ModeError as exc:  # a name mistyped on the command line, before any file is touched
        raise UsageError(str(exc)) from None
    edit = write_mode(ctx.project_dir, args.name, ctx.paths)
    path = edit.path
    if not edit.layout_kept:
        print(f"note: {path}: {edit.note}", file=sys.stderr)
    selection = detect_mode(ctx.project_dir, load_settings(ctx.paths, ctx.project_dir))
    if selection.mode.name != wanted.name:  # settings.local.json (read after the shared file) says otherwise
        print(
            f"ultramax: {wanted.name} was written to {path}, but {selection.mode.name} stays in force "
            f"({selection.source}); remove ultramax.mode there",
            file=sys.stderr,
        )
        return 1
    print(f"{wanted.name} mode activated for {ctx.project_dir} (written to {path})")
    return 0
