"""``ultramax demo``."""

from __future__ import annotations

import argparse
from pathlib import Path

from ultramax.cli.base import CliContext, Subparsers
from ultramax.demo import run_demo

__all__ = ["register"]


def register(sub: Subparsers) -> None:
    p = sub.add_parser("demo", help="replay a recorded Claude Code session through the pipeline, in a temp home")
    p.add_argument("--keep", metavar="DIR", help="run in DIR and keep the files (audit log, logs) for inspection")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace, ctx: CliContext) -> int:
    return 0 if run_demo(keep=Path(args.keep).resolve() if args.keep else None) else 1
