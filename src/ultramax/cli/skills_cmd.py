"""``ultramax skills list|resolve|sync|eval``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ultramax.cli.base import CliContext, Subparsers, count, emit_json
from ultramax.config import load_settings
from ultramax.decisions import CONTEXT_CAP
from ultramax.skills.engine import limits_from
from ultramax.skills.evaluate import evaluate, load_cases
from ultramax.skills.export import sync_skills
from ultramax.skills.graph import (
    GraphProblem,
    SkillGraph,
    SkillGraphError,
    UnknownSkillError,
    load_graph,
    user_graph_path,
)
from ultramax.skills.resolver import SkillResolver

__all__ = ["register"]


def register(sub: Subparsers) -> None:
    p = sub.add_parser("skills", help="skill graph: list, resolve a prompt, export native skills, evaluate")
    cmds = p.add_subparsers(dest="skills_command", metavar="ACTION", required=True)

    def graph_option(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--graph",
            metavar="FILE",
            help="layer this graph file over the shipped one instead of ~/.claude/skills/graphs/config.json",
        )

    lst = cmds.add_parser("list", help="the skills of the effective graph, with triggers and dependencies")
    lst.add_argument("--json", action="store_true", help="machine-readable output")
    graph_option(lst)
    lst.set_defaults(func=cmd_list)

    res = cmds.add_parser("resolve", help="which skills a prompt gets, in load order, and why")
    res.add_argument("prompt", help="the prompt, as typed into Claude Code")
    res.add_argument("--json", action="store_true", help="machine-readable output")
    res.add_argument("--context", action="store_true", help="print the exact context the hook would inject")
    res.add_argument("--require", action="append", default=[], metavar="SKILL", help="load this skill too")
    graph_option(res)
    res.set_defaults(func=cmd_resolve)

    syn = cmds.add_parser(
        "sync",
        help="export the skills as native Claude Code skills (~/.claude/skills/<name>)",
        description="Write each skill to ~/.claude/skills/<name>/SKILL.md. Idempotent; a skill of the same name "
        "that ultramax did not write (or that was edited since) is left alone unless --force; one it cannot "
        "read is always left alone. Exit status 1 if a skill was skipped, could not be written or its name is not "
        "valid for Claude Code.",
    )
    syn.add_argument("--force", action="store_true", help="replace same-named skills ultramax did not write")
    syn.add_argument("--dry-run", action="store_true", help="show what would change, write nothing")
    syn.add_argument("--json", action="store_true", help="machine-readable output")
    graph_option(syn)
    syn.set_defaults(func=cmd_sync)

    ev = cmds.add_parser("eval", help="score the resolver on labelled prompts (JSONL)")
    ev.add_argument("file", help='lines of {"prompt", "expect_skills", "expect_order_constraints"}')
    ev.add_argument("--json", action="store_true", help="machine-readable output (every failure listed)")
    graph_option(ev)
    ev.set_defaults(func=cmd_eval)


def _graph(args: argparse.Namespace, ctx: CliContext) -> SkillGraph:
    override = getattr(args, "graph", None)
    path = Path(override).expanduser() if override else user_graph_path(ctx.paths.claude_dir)
    if override and not path.is_file():
        raise SkillGraphError([GraphProblem(str(path), "", "no such file")])
    return load_graph(path, claude_dir=ctx.paths.claude_dir)


def _resolver(args: argparse.Namespace, ctx: CliContext) -> SkillResolver:
    max_skills, per_skill, budget = limits_from(load_settings(ctx.paths, ctx.project_dir))
    return SkillResolver(_graph(args, ctx), max_skills=max_skills, tokens_per_skill=per_skill, token_budget=budget)


def cmd_list(args: argparse.Namespace, ctx: CliContext) -> int:
    resolver = _resolver(args, ctx)  # tokens and "truncated" as the hook would inject them, with the user's limits
    graph = resolver.graph
    rows: list[dict[str, Any]] = []
    for skill in graph:
        _text, tokens, cut = resolver.prepared(skill.name)
        rows.append(
            {
                "name": skill.name,
                "priority": skill.priority,
                "dependencies": list(skill.dependencies),
                "closure": list(graph.closure(skill.name)),
                "provides": list(skill.provides),
                "triggers": list(skill.triggers),
                "description": graph.description(skill.name),
                "path": str(skill.path),
                "source": skill.source,
                "tokens": tokens,
                "truncated": cut,
            }
        )
    if args.json:
        emit_json(
            {
                "sources": list(graph.sources),
                "resolution": {
                    "strategy": graph.strategy,
                    "max_depth": graph.max_depth,
                    "conflict_resolution": graph.conflict_resolution,
                },
                "notes": list(graph.notes),
                "skills": rows,
            }
        )
        return 0
    print(f"graph: {' + '.join(graph.sources)}  (priority 1 is highest; max depth {graph.max_depth})")
    for row in rows:
        deps = ", ".join(row["dependencies"]) or "-"
        print(f"{row['name']:<20} p{row['priority']}  ~{row['tokens']:>4} tok  needs {deps}")
        print(f"{'':<20} triggers: {', '.join(row['triggers']) or '-'}")
    for note in graph.notes:
        print(f"note: {note}")
    return 0


def cmd_resolve(args: argparse.Namespace, ctx: CliContext) -> int:
    resolver = _resolver(args, ctx)
    for name in args.require:
        if name not in resolver.graph:
            raise UnknownSkillError(f"--require: {resolver.graph.unknown(name)}")
    resolution = resolver.resolve(args.prompt, required=args.require, max_chars=CONTEXT_CAP)
    if args.json:
        data = resolution.to_dict()
        if args.context:
            data["context"] = resolution.context()
        emit_json(data)
        return 0
    if args.context:
        print(resolution.context())
        return 0
    if not resolution.skills:
        matched = len({m.skill for m in resolution.matched})
        print(
            f"no skill loaded: the {count(matched, 'skill')} that matched did not fit"
            if matched
            else "no skill matches this prompt"
        )
    for i, skill in enumerate(resolution.skills, start=1):
        cut = ", cut to its share" if skill.truncated else ""
        print(f"{i}. {skill.name:<20} {skill.reason} (~{skill.tokens} tokens{cut})")
    for dropped in resolution.dropped:
        why = {
            "cap": f"over the {resolver.max_skills}-skill cap",
            "budget": f"over the {resolver.token_budget}-token budget",
            "space": "no room under the hook output cap",
            "unknown": "no such skill",
        }[dropped.why]
        needs = f" (with {', '.join(dropped.needs)})" if dropped.needs else ""
        print(f"   not loaded: {dropped.name}{needs}: {why}")
    if resolution.skills:
        print(f"total ~{resolution.total_tokens} tokens, {len(resolution.context())} characters of context")
    return 0


def cmd_sync(args: argparse.Namespace, ctx: CliContext) -> int:
    graph = _graph(args, ctx)
    actions = sync_skills(
        graph,
        ctx.paths.claude_dir / "skills",
        ctx.paths.home / "skills-sync.json",
        ctx.paths.backups_dir / "skills",
        force=args.force,
        dry_run=args.dry_run,
    )
    if args.json:
        emit_json({"dry_run": args.dry_run, "actions": [a.to_dict() for a in actions]})
    else:
        prefix = "would be " if args.dry_run else ""
        for a in actions:
            reason = f"  ({a.reason})" if a.reason else ""
            print(f"{prefix}{a.action:<9} {a.path}{reason}")
    return 1 if any(a.action in ("skipped", "invalid", "failed") for a in actions) else 0


def cmd_eval(args: argparse.Namespace, ctx: CliContext) -> int:
    resolver = _resolver(args, ctx)
    cases = load_cases(Path(args.file), known=resolver.graph.skills)
    report = evaluate(resolver, cases)
    if args.json:
        emit_json(report.to_dict())
    else:
        print(report.text())
    return 0
