"""``ultramax mcp list|health|serve|activate|restart|import``: the MCP server pools and their gateway."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ultramax.cli.base import CliContext, Subparsers, emit_json, whole_number
from ultramax.errors import UltramaxError

__all__ = ["register"]


def register(sub: Subparsers) -> None:
    p = sub.add_parser("mcp", help="MCP server pools behind one gateway (health, failover, routing)")
    cmds = p.add_subparsers(dest="mcp_command", metavar="ACTION", required=True)

    lst = cmds.add_parser("list", help="configured servers, their pools, and which run for this project")
    _pools_arg(lst)
    lst.add_argument("--json", action="store_true", help="machine-readable output")
    lst.set_defaults(func=cmd_list)

    health = cmds.add_parser(
        "health", help="health of the project's servers: live from a running gateway, else probed once now"
    )
    _pools_arg(health)
    health.add_argument("--json", action="store_true", help="machine-readable output")
    health.set_defaults(func=cmd_health)

    serve = cmds.add_parser("serve", help="run the gateway (what Claude Code starts; stdio by default)")
    _pools_arg(serve)
    serve.add_argument("--transport", choices=("stdio", "http"), default="stdio", help="stdio, or streamable HTTP")
    serve.add_argument("--host", default="127.0.0.1", help="HTTP address to bind (default: 127.0.0.1)")
    serve.add_argument(
        "--port", type=whole_number(0, 65535), default=0, help="HTTP port (default: a free one, printed on stderr)"
    )
    serve.add_argument(
        "--no-prefix", action="store_true", help="pass-through: keep the servers' own tool and prompt names"
    )
    serve.add_argument("--name", default="ultramax", help="the name Claude Code registers the gateway under")
    serve.add_argument(
        "--sse-retry-ms",
        type=whole_number(0),
        default=1000,
        metavar="MS",
        help="HTTP: the reconnection delay announced on each SSE stream (default: 1000)",
    )
    serve.add_argument(
        "--sse-poll-ms",
        type=whole_number(0),
        default=0,
        metavar="MS",
        help="HTTP: close the SSE stream of a call still running after MS ms; the client resumes it with "
        "Last-Event-ID (SEP-1699 polling; default: 0, keep streams open)",
    )
    serve.set_defaults(func=cmd_serve)

    act = cmds.add_parser(
        "activate", help="pool the project's .mcp.json servers and register the gateway as its only entry"
    )
    act.add_argument("--dry-run", action="store_true", help="show what would change, change nothing")
    act.add_argument("--json", action="store_true", help="machine-readable output")
    act.set_defaults(func=cmd_activate)

    restart = cmds.add_parser("restart", help="restart a server in the project's running gateway(s)")
    restart.add_argument("server", help="server name (every replica) or one replica (name#2)")
    restart.add_argument("--json", action="store_true", help="machine-readable output")
    restart.set_defaults(func=cmd_restart)

    imp = cmds.add_parser("import", help="copy Claude Code's user/local-scope MCP servers into a pools file")
    imp.add_argument("--scope", choices=("user", "local", "all"), default="all", help="which scopes (default: all)")
    imp.add_argument("--json", action="store_true", help="machine-readable output")
    imp.set_defaults(func=cmd_import)


def _pools_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pools",
        metavar="FILE",
        action="append",
        type=Path,
        help="read these pools files instead of ~/.claude/mcp/pools/*.json and the project's (repeatable)",
    )


def cmd_list(args: argparse.Namespace, ctx: CliContext) -> int:
    from ultramax.mcp.serve import project_pools

    pools = project_pools(ctx.paths, ctx.project_dir, files=args.pools)
    config = pools.config
    active = set(pools.active.names)
    rows = []
    for spec in config.servers.values():
        row = spec.to_dict()
        row["active"] = spec.name in active
        if spec.name in pools.active.inactive:
            row["why_off"] = pools.active.inactive[spec.name]
        rows.append(row)
    if args.json:
        emit_json(
            {
                "project_dir": str(ctx.project_dir),
                "mode": pools.mode.mode.name,
                "files": [str(f) for f in config.files],
                "servers": rows,
                "rules": [r.to_dict() for r in config.rules],
                "errors": [str(p) for p in config.errors],
                "warnings": [str(p) for p in config.warnings],
            }
        )
        return 1 if config.errors else 0
    print(f"project {ctx.project_dir} (mode {pools.mode.mode.name})")
    if not config.files and not config.errors:  # a file that was there but left out is named below instead
        print("no pools files: put them in ~/.claude/mcp/pools/*.json (or run `ultramax mcp activate`)")
    for row in rows:
        state = "on " if row["active"] else "off"
        role = f"backup for {row['for']}" if row.get("for") else row["activation"]
        what = " ".join(row["command"]) if "command" in row else row["url"]
        line = f"  {state} {row['name']:<22} {row['pool']:<17} {role:<26} {what}"
        print(line + (f"   ({row['why_off']})" if "why_off" in row else ""))
    for rule in config.rules:
        gate = "  [safety check]" if rule.require_safety_check else ""
        print(f"  rule {rule.pattern} -> {', '.join(rule.servers) or '(its own server)'}{gate}")
    for problem in config.warnings:
        print(f"warning: {problem}", file=sys.stderr)
    for problem in config.errors:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if config.errors else 0


def cmd_health(args: argparse.Namespace, ctx: CliContext) -> int:
    from ultramax.mcp.control import query_gateway, running_gateways

    gateways = [] if args.pools else running_gateways(ctx.paths, ctx.project_dir)
    errors: list[str] = []
    if gateways:
        reports = []
        for info in gateways:
            reply = query_gateway(info, {"op": "status"})
            if not reply.get("ok"):
                raise UltramaxError(f"gateway {info.pid}: {reply.get('error')}")
            reports.append({"source": f"gateway pid {info.pid}", **reply["status"]})
    else:
        import anyio

        from ultramax.mcp.serve import build_gateway, check_once

        gateway = build_gateway(ctx.paths, ctx.project_dir, files=args.pools)
        errors = [str(p) for p in gateway.config.errors]  # a pools file left out: its servers were not probed
        status = anyio.run(check_once, gateway)
        reports = [{"source": "probed once now (no gateway running for this project)", **status}]
    healthy = not errors and all(s["status"] in ("healthy", "degraded") for r in reports for s in r["servers"])
    if args.json:
        emit_json({"healthy": healthy, "reports": reports, "errors": errors})
        return 0 if healthy else 1
    for report in reports:
        _print_report(report)
    return 0 if healthy else 1


def _print_report(report: dict[str, Any]) -> None:
    print(report["source"])
    if not report["servers"]:
        print("  no active servers for this project")
    for s in report["servers"]:
        latency = f"{s['latency_ms']:.1f} ms" if s.get("latency_ms") is not None else "-"
        proto = s.get("protocol_version") or "-"
        print(
            f"  {s['server']:<24} {s['role']:<8} {s['status']:<10} {latency:>10}  pid {s.get('pid') or '-':<8} "
            f"{proto:<11} tools {s['tools']:<3} restarts {s['restarts']}"
            + (f"  ({s['error']})" if s.get("error") and s["status"] != "healthy" else "")
        )
    for name, why in report.get("inactive", {}).items():
        print(f"  {name:<24} off      ({why})")
    fast = report.get("fast_path") or {}
    if fast.get("taken") or fast.get("fallbacks"):
        why = ", ".join(f"{reason} {count}" for reason, count in fast["fallbacks"].items()) or "none"
        print(f"  tools/call on the raw path: {fast['taken']}; through the SDK (why): {why}")


def cmd_serve(args: argparse.Namespace, ctx: CliContext) -> int:
    import anyio

    from ultramax.mcp.serve import build_gateway, run_gateway
    from ultramax.mcp.streamable import SseOptions

    gateway = build_gateway(
        ctx.paths, ctx.project_dir, files=args.pools, prefix=False if args.no_prefix else None, name=args.name
    )
    sse = SseOptions(retry_ms=args.sse_retry_ms, poll_ms=args.sse_poll_ms)
    anyio.run(lambda: run_gateway(gateway, transport=args.transport, host=args.host, port=args.port, sse=sse))
    return 0


def cmd_activate(args: argparse.Namespace, ctx: CliContext) -> int:
    from ultramax.mcp.importer import activate

    result = activate(ctx.paths, ctx.project_dir, dry_run=args.dry_run)
    if args.json:
        emit_json({**result.to_dict(), "dry_run": args.dry_run})
        return 0
    verb = "would" if args.dry_run else "did"
    if not result.changed:
        print(f"{result.mcp_json} already registers the ultramax gateway only; nothing to do")
    else:
        print(f"{'would register' if args.dry_run else 'registered'} the ultramax gateway in {result.mcp_json}")
    if result.imported:
        print(f"  {verb} pool: {', '.join(result.imported)} -> {result.pools_file or 'the project pools'}")
    if result.backup:
        print(f"  backup of the old file: {result.backup}")
    for note in result.notes:
        print(f"  note: {note}")
    return 0


def cmd_restart(args: argparse.Namespace, ctx: CliContext) -> int:
    from ultramax.mcp.control import query_gateway, running_gateways

    gateways = running_gateways(ctx.paths, ctx.project_dir)
    if not gateways:
        others = running_gateways(ctx.paths)
        hint = f"; gateways run for: {', '.join(str(g.project_dir) for g in others)}" if others else ""
        raise UltramaxError(f"no MCP gateway runs for {ctx.project_dir}{hint}")
    done = []
    for info in gateways:
        reply = query_gateway(info, {"op": "restart", "server": args.server})
        if not reply.get("ok"):
            raise UltramaxError(f"gateway {info.pid}: {reply.get('error')}")
        done.append({"gateway": info.pid, "restarted": reply["restarted"]})
    if args.json:
        emit_json(done)
    else:
        for item in done:
            print(f"gateway {item['gateway']}: restarting {', '.join(item['restarted'])}")
    return 0


def cmd_import(args: argparse.Namespace, ctx: CliContext) -> int:
    from ultramax.mcp.importer import import_servers

    scopes: tuple[Any, ...] = ("user", "local") if args.scope == "all" else (args.scope,)
    result = import_servers(ctx.paths, ctx.project_dir, scopes=scopes)
    if args.json:
        emit_json(result.to_dict())
        return 0
    if result.imported:
        print(f"pooled {', '.join(result.imported)} in {result.pools_file}")
        print("  Claude Code still loads them directly: `claude mcp remove <name> -s <scope>` each one")
    else:
        print("nothing new to import")
    for note in result.notes:
        print(f"  note: {note}")
    return 0
