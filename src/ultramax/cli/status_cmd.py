"""``ultramax status``."""

from __future__ import annotations

import argparse

from ultramax.cli.base import CliContext, Subparsers, emit_json
from ultramax.status import status_report

__all__ = ["register"]


def register(sub: Subparsers) -> None:
    p = sub.add_parser("status", help="daemon, mode, projects, circuit breakers, kill switch and audit chain as JSON")
    p.add_argument("--no-verify", action="store_true", help="skip verifying the audit chain (faster on big logs)")
    p.set_defaults(func=cmd_status)


def cmd_status(args: argparse.Namespace, ctx: CliContext) -> int:
    emit_json(status_report(ctx.paths, ctx.project_dir, verify_audit=not args.no_verify))
    return 0
