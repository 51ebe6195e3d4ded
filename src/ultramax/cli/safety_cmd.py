"""``ultramax safety check|eval|rules``: explain a decision, score a corpus, list the rule packs."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any

from ultramax.cli.base import CliContext, Subparsers, emit_json
from ultramax.errors import ModeError, UsageError

AUDIT_LAYER = 11
"""The seed's layer 11, audit logging: the hook pipeline's ``audit`` stage writes every decision to the
hash-chained log after the gate decides, so a dry run here shows it without running it."""

CHECK_EXIT = {"allow": 0, "deny": 1, "ask": 3}
"""``safety check``'s exit status per decision, so a script (CI, a pre-commit hook) can act on it without parsing
the output; 2 is a usage error, as everywhere in the CLI."""

__all__ = ["CHECK_EXIT", "register"]

_PATH_TOOLS = {"Read": "file_path", "Write": "file_path", "Edit": "file_path", "MultiEdit": "file_path",
               "NotebookEdit": "notebook_path", "NotebookRead": "notebook_path", "Grep": "path"}  # fmt: skip


def register(sub: Subparsers) -> None:
    p = sub.add_parser("safety", help="the safety gate: explain a decision, score a corpus, list the rules")
    cmds = p.add_subparsers(dest="safety_command", metavar="ACTION", required=True)

    check = cmds.add_parser(
        "check",
        help="decide one tool call and explain it layer by layer",
        description="Decide one tool call with every safety layer and show which layer and rule decided, and why. "
        "A Bash command is the default; --tool/--input give any other tool call exactly as Claude Code sends it.",
        epilog="exit status: 0 allow, 1 deny, 3 ask (Claude Code would ask you first), 2 a usage error (a bad "
        "--input or --mode); any other error exits 1 with its message on stderr, so a script that stops on "
        "non-zero fails closed.",
    )
    check.add_argument("command", nargs="?", help="the Bash command (or the path, for file tools)")
    check.add_argument("--tool", default="Bash", help="tool name as Claude Code sends it (default: Bash)")
    check.add_argument("--input", metavar="JSON", help="the tool input as a JSON object")
    check.add_argument("--mode", help="mode to judge in (default: the project's mode)")
    check.add_argument("--cwd", metavar="DIR", help="working directory of the call (default: the current one)")
    check.add_argument("--json", action="store_true", help="machine-readable output")
    check.set_defaults(func=cmd_check)

    ev = cmds.add_parser(
        "eval",
        help="score the gate on a labelled corpus (JSONL: tool, input, expect, category)",
        description="Run every case through the engine as the first call of a fresh session and print, per "
        "category, exact matches, deny cases answered allow, deny cases not allowed and allow cases blocked.",
    )
    ev.add_argument("file", help="JSONL file in the schema of shared/evals/safety/dev.jsonl")
    ev.add_argument("--mode", default="development", help="mode to judge in (default: development)")
    ev.add_argument("--cwd", default="/home/dev/work/demo", metavar="DIR", help="working directory the cases assume")
    ev.add_argument("--home", default="/home/dev", metavar="DIR", help="HOME the cases assume")
    ev.add_argument("--layers", choices=("all", "sanitisation"), default="all", help="every layer, or layer 4 alone")
    ev.add_argument("--failures", action="store_true", help="list every case answered differently")
    ev.add_argument("--json", action="store_true", help="machine-readable output")
    ev.set_defaults(func=cmd_eval)

    rules = cmds.add_parser("rules", help="list the rules in force (packs and your settings) with ids and decisions")
    rules.add_argument("--category", help="only this category")
    rules.add_argument("--json", action="store_true", help="machine-readable output")
    rules.set_defaults(func=cmd_rules)


def _input(args: argparse.Namespace) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if args.input:
        try:
            parsed = json.loads(args.input)
        except json.JSONDecodeError as exc:
            raise UsageError(f"--input is not valid JSON ({exc.msg} at column {exc.colno})") from exc
        if not isinstance(parsed, dict):
            raise UsageError("--input must be a JSON object")
        data.update(parsed)
    if args.command is not None:
        key = "command" if args.tool == "Bash" else _PATH_TOOLS.get(args.tool)
        if key is None:
            raise UsageError(f"give the input of {args.tool} with --input JSON")
        data.setdefault(key, args.command)
    if not data:
        raise UsageError("nothing to check: give a command, or --tool and --input")
    return data


def cmd_check(args: argparse.Namespace, ctx: CliContext) -> int:
    from ultramax.config import load_settings
    from ultramax.modes import detect_mode, get_mode
    from ultramax.pipeline.stages.safety import default_layers
    from ultramax.safety.engine import SafetyEngine, SafetyRequest
    from ultramax.safety.sanitize import explain

    data = _input(args)
    settings = load_settings(ctx.paths, ctx.project_dir)
    try:
        mode = get_mode(args.mode) if args.mode else detect_mode(ctx.project_dir, settings).mode
    except ModeError as exc:  # only --mode names a mode here; the project's own is checked when detected
        raise UsageError(f"--mode: {exc}") from None
    cwd = Path(args.cwd).resolve() if args.cwd else Path.cwd()
    request = SafetyRequest(
        tool=args.tool,
        input=data,
        mode=mode,
        settings=settings,
        paths=ctx.paths,
        cwd=cwd,
        home=Path(os.environ.get("HOME") or Path.home()),
        project_dir=ctx.project_dir,
        session_id=f"cli-check-{uuid.uuid4().hex[:12]}",
        principal=_user(),
        source="cli",
    )
    decision = SafetyEngine(default_layers()).evaluate(request)
    findings = explain(request)
    commands = _commands(request) if args.tool == "Bash" else []
    if args.json:
        emit_json({**decision.to_dict(), "mode": mode.name, "findings": [f.to_dict() for f in findings],
                   "commands": commands})  # fmt: skip
        return CHECK_EXIT[decision.permission]
    print(f"{decision.permission.upper()}  ({mode.name} mode)")
    if decision.reason:
        print(f"  {decision.reason}")
    if decision.layer:
        print(f"  decided by layer {decision.layer}, rule {decision.rule}")
    print("\nlayers:")
    shown_audit = False
    for row in decision.trace:
        if row.order > AUDIT_LAYER and not shown_audit:
            shown_audit = True
            print(f"  {AUDIT_LAYER:>2} {'audit_logging':<28} {'-':<7} {'':>10}  the pipeline's audit stage records it")
        detail = f"  {row.rule}: {row.reason}" if row.reason else ""
        print(f"  {row.order:>2} {row.layer:<28} {row.outcome:<7} {row.ms:7.3f} ms{detail}")
    if commands:
        print("\nsimple commands seen:")
        for c in commands:
            via = f"   (via {' > '.join(c['via'])})" if c["via"] else ""
            print(f"  {c['command']}{via}")
    if findings:
        print("\nrules matched:")
        for f in sorted(findings, key=lambda f: -f.strength):
            print(f"  {f.permission:<5} {f.rule_id:<34} {f.reason}: `{f.subject}`")
    return CHECK_EXIT[decision.permission]


def _commands(request: Any) -> list[dict[str, Any]]:
    from ultramax.safety.sanitize import path_context
    from ultramax.safety.shell import analyze
    from ultramax.safety.shellview import shell_context

    command = request.input.get("command")
    if not isinstance(command, str):
        return []
    analysis = analyze(command, shell_context(path_context(request)))
    out = [{"command": c.text, "via": list(c.via), "cwd": c.cwd} for c in analysis.commands]
    if analysis.facts:
        out.append({"command": f"(script: {', '.join(sorted(analysis.facts))})", "via": [], "cwd": None})
    return out


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


def cmd_eval(args: argparse.Namespace, ctx: CliContext) -> int:
    from ultramax.modes import get_mode
    from ultramax.safety.scoring import load_cases, run_cases, score, score_table

    path = Path(args.file)
    cases = load_cases(path)
    try:
        get_mode(args.mode)
    except ModeError as exc:
        raise UsageError(f"--mode: {exc}") from None
    results = run_cases(cases, mode=args.mode, home=args.home, cwd=args.cwd, layers=args.layers)
    scores = score(results)
    if args.json:
        emit_json({
            "file": str(path), "mode": args.mode, "layers": args.layers,
            "categories": {name: s.to_dict() for name, s in scores.items()},
            "failures": [{"id": r.case.id, "category": r.case.category, "expect": r.case.expect, "got": r.got,
                          "rule": r.rule, "layer": r.layer, "reason": r.reason, "input": r.case.summary()}
                         for r in scores["TOTAL"].failures],
        })  # fmt: skip
        return 0
    print(score_table(scores))
    if args.failures:
        for r in scores["TOTAL"].failures:
            print(f"{r.case.id}: expected {r.case.expect}, got {r.got} [{r.case.category}] {r.case.summary()[:100]!r}"
                  f" -- {r.rule or '-'}")  # fmt: skip
    return 0


def cmd_rules(args: argparse.Namespace, ctx: CliContext) -> int:
    rules, patterns, problems = _rule_rows(ctx)
    if args.category:
        known = sorted({r["category"] for r in rules})
        if args.category not in known:  # a typo would otherwise list nothing and exit 0
            raise UsageError(f"--category: no category {args.category!r}; choose one of: {', '.join(known)}")
        rules = [r for r in rules if r["category"] == args.category]
    if args.json:
        emit_json({"rules": rules, "user_patterns": patterns, "problems": problems})
        return 0
    _print_rules(rules, patterns, problems)
    return 0


def _rule_rows(ctx: CliContext) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    from ultramax.config import load_settings
    from ultramax.safety.rules import ruleset_for

    ruleset = ruleset_for(load_settings(ctx.paths, ctx.project_dir))
    rules = [r.to_dict() for r in ruleset.rules]
    patterns = [{"id": p.label, "decision": p.permission, "pattern": p.pattern.text} for p in ruleset.patterns]
    return rules, patterns, list(ruleset.problems)


def _print_rules(rules: list[dict[str, Any]], patterns: list[dict[str, Any]], problems: list[str]) -> None:
    out = sys.stdout
    out.write(f"{'id':<34} {'category':<16} {'severity':<9} dev   witness alpha  reason\n")
    for r in rules:
        d = r["decision"]
        flag = "" if r["enabled"] else " (disabled)"
        out.write(f"{r['id']:<34} {r['category']:<16} {r['severity']:<9} {d['development']:<5} "
                  f"{d['state-of-witness']:<7} {d['alphaforge']:<6} {r['reason']}{flag}\n")  # fmt: skip
    if patterns:
        out.write("\nyour rules (Claude Code syntax):\n")
        for p in patterns:
            out.write(f"  {p['decision']:<5} {p['pattern']}   [{p['id']}]\n")
    for problem in problems:
        out.write(f"problem: {problem}\n")
