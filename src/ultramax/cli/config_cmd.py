"""``ultramax config show|validate|reference``."""

from __future__ import annotations

import argparse
import json
import sys

from ultramax.cli.base import CliContext, Subparsers, count, emit_json
from ultramax.config import load_settings, settings_files, settings_reference_markdown
from ultramax.redact import redact_obj

__all__ = ["register"]


def register(sub: Subparsers) -> None:
    p = sub.add_parser("config", help="show and validate ultramax's settings")
    cmds = p.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    show = cmds.add_parser("show", help="effective settings and the file each value came from")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(func=cmd_show)
    val = cmds.add_parser("validate", help="name the file, key and problem of every bad value (exit 1 if any)")
    val.add_argument("--json", action="store_true", help="machine-readable output")
    val.set_defaults(func=cmd_validate)
    ref = cmds.add_parser("reference", help="print the configuration reference (Markdown) generated from the table")
    ref.set_defaults(func=cmd_reference)


def cmd_show(args: argparse.Namespace, ctx: CliContext) -> int:
    settings = load_settings(ctx.paths, ctx.project_dir)
    # a value can hold a secret (routing.upstream with a password in it): shown redacted, like every output
    shown_rows = [(k, redact_obj(v), s) for k, v, s in settings.rows()]
    if args.json:
        emit_json(
            {
                "files": [str(f) for f in settings_files(ctx.paths, ctx.project_dir)],
                "settings": [{"key": k, "value": v, "source": s} for k, v, s in shown_rows],
                "problems": [str(p) for p in settings.problems],
            }
        )
        return 0
    rows = [(k, json.dumps(v), s) for k, v, s in shown_rows]
    width_k = max(len(r[0]) for r in rows)
    width_v = min(40, max(len(r[1]) for r in rows))
    for key, value, source in rows:
        shown = value if len(value) <= 40 else value[:37] + "..."
        print(f"{key:<{width_k}}  {shown:<{width_v}}  {source}")
    for problem in settings.problems:
        print(f"problem: {problem}", file=sys.stderr)
    return 0


def cmd_validate(args: argparse.Namespace, ctx: CliContext) -> int:
    from ultramax.routing.router import routing_problems  # the router's import is not free; only validate needs it

    settings = load_settings(ctx.paths, ctx.project_dir)
    problems = settings.problems + routing_problems(settings)
    checked = [str(f) for f in settings_files(ctx.paths, ctx.project_dir)]
    if args.json:
        emit_json(
            {
                "ok": not problems,
                "files": checked,
                "problems": [{"file": p.file, "key": p.key, "message": p.message} for p in problems],
            }
        )
    elif problems:
        for problem in problems:
            print(problem)
        present = [f for f in settings_files(ctx.paths, ctx.project_dir) if f.exists()]
        print(f"{count(len(problems), 'problem')} in {count(len(present), 'settings file')} read")
    else:
        present = [f for f in settings_files(ctx.paths, ctx.project_dir) if f.exists()]
        print(f"settings OK ({count(len(present), 'file')} read: {', '.join(str(f) for f in present) or 'none'})")
    return 1 if problems else 0


def cmd_reference(args: argparse.Namespace, ctx: CliContext) -> int:
    sys.stdout.write(settings_reference_markdown())
    return 0
