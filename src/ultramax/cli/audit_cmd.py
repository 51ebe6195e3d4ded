"""``ultramax audit verify|tail``."""

from __future__ import annotations

import argparse
import json
from collections import deque

from ultramax.audit import deferred_records, read_records, verify
from ultramax.cli.base import CliContext, Subparsers, count, emit_json, whole_number

__all__ = ["register"]


def register(sub: Subparsers) -> None:
    p = sub.add_parser("audit", help="the hash-chained audit log")
    cmds = p.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    ver = cmds.add_parser("verify", help="check the chain; name edited, deleted, reordered or truncated records")
    ver.add_argument("--json", action="store_true", help="machine-readable output")
    ver.set_defaults(func=cmd_verify)
    tail = cmds.add_parser("tail", help="the most recent records")
    tail.add_argument("-n", type=whole_number(1), default=20, help="how many (default 20)")
    tail.add_argument("--json", action="store_true", help="raw JSON lines")
    tail.set_defaults(func=cmd_tail)


def cmd_verify(args: argparse.Namespace, ctx: CliContext) -> int:
    report = verify(ctx.paths.audit_log, ctx.paths.audit_head)
    deferred = deferred_records(ctx.paths.audit_log)
    if args.json:
        emit_json(
            {
                "ok": report.ok,
                "records": report.records,
                "last_seq": report.last_seq,
                "problems": report.problems,
                "deferred": deferred,
            }
        )
        return 0 if report.ok else 1
    if deferred:  # written by a hook that could not wait for the lock: the next append chains them
        print(f"{count(deferred, 'record')} deferred, to be chained by the next append")
    if report.ok:
        records = count(report.records, "record")
        print(f"audit chain verified: {records}, last seq {report.last_seq} ({ctx.paths.audit_log})")
    else:
        for problem in report.problems:
            print(f"TAMPERED: {problem}")
        print(f"audit chain BROKEN: {count(len(report.problems), 'problem')} in {ctx.paths.audit_log}")
    return 0 if report.ok else 1


def cmd_tail(args: argparse.Namespace, ctx: CliContext) -> int:
    lines = deque((raw for _n, raw in read_records(ctx.paths.audit_log)), maxlen=args.n)
    if not lines and not args.json:
        print(f"no audit records yet ({ctx.paths.audit_log}): hooks write one for every event they decide")
    for raw in lines:
        if args.json:
            print(raw.rstrip("\n"))
            continue
        try:
            rec = json.loads(raw)
        except ValueError:
            print(f"(unreadable) {raw.rstrip()}")
            continue
        what = rec.get("summary") or rec.get("reason") or ""
        seq, ts, event, decision = rec.get("seq"), rec.get("ts", "")[:19], rec.get("event", ""), rec.get("decision", "")
        print(f"{seq:>6} {ts} {event:<18} {decision:<8} {what}")
    return 0
