"""Layer 4, sanitisation: the shell analysis, the rule packs, the file policies and the MCP default.

Every tool call is turned into *units* -- the simple commands of a Bash command line, the path of a file
tool, an MCP call and what its arguments hold -- and every rule of the packs (plus the user's own rules and
``safety.allow/ask/deny`` patterns from the settings) is matched against them. The strictest finding wins and
names its rule id and why; ``explain`` returns all of them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from ultramax.safety.engine import LayerVerdict, SafetyRequest
from ultramax.safety.pathclass import PathContext
from ultramax.safety.rules import Finding, RuleSet, strongest

__all__ = ["RISK", "SanitisationLayer", "explain", "path_context"]

RISK = {"low": 0.1, "medium": 0.4, "high": 0.7, "critical": 1.0}


def path_context(request: SafetyRequest) -> PathContext:
    """Where the call happens: HOME, the working directory, the project, TMPDIR and the guard's own files."""
    home = str(request.home or Path(os.environ.get("HOME") or Path.home()))
    cwd = str(request.cwd) if request.cwd else None
    project = str(request.project_dir) if request.project_dir else cwd
    tmpdir = str(request.metadata.get("tmpdir") or os.environ.get("TMPDIR") or "/tmp").rstrip("/") or "/tmp"
    try:
        build = tuple(request.settings.get("safety.buildDirs") or ())
    except KeyError:
        build = ()
    return PathContext(home, cwd, project, tmpdir, str(request.paths.claude_dir), str(request.paths.home), build)


def explain(request: SafetyRequest) -> list[Finding]:
    """Every finding for one tool call (empty when nothing matched)."""
    from ultramax.safety.files import FILE_TOOLS, evaluate_file, evaluate_mcp, evaluate_other
    from ultramax.safety.rules import ruleset_for

    ruleset = ruleset_for(request.settings)
    mode = request.mode.name
    pctx = path_context(request)
    data: Mapping[str, Any] = request.input if isinstance(request.input, Mapping) else {}
    tool = request.tool
    if tool == "Bash":
        command = data.get("command")
        if not isinstance(command, str) or not command.strip():
            return []
        return list(_bash_cached(command, pctx, mode, ruleset))
    if tool in FILE_TOOLS:
        return evaluate_file(tool, data, ruleset, mode, pctx)
    if tool.startswith("mcp__"):
        annotations = request.metadata.get("annotations")
        found = evaluate_mcp(tool, data, ruleset, mode, pctx, settings=request.settings,
                             annotations=annotations if isinstance(annotations, Mapping) else None)  # fmt: skip
        return found or []
    return evaluate_other(tool, data, ruleset, mode)


@lru_cache(maxsize=2048)
def _bash_cached(command: str, pctx: PathContext, mode: str, ruleset: RuleSet) -> tuple[Finding, ...]:
    from ultramax.safety.shellview import evaluate_bash

    return tuple(evaluate_bash(command, ruleset, mode, pctx).findings)


class SanitisationLayer:
    """Layer 4 of the seed: shell analysis and rule packs for Bash, file policies, the MCP default."""

    name = "sanitisation"
    order = 4

    def check(self, request: SafetyRequest) -> LayerVerdict | None:
        if request.phase != "pre":
            return None
        findings = [f for f in explain(request) if f.permission != "allow"]
        best = strongest(findings)
        if best is None:
            return None
        others = sorted({f.rule_id for f in findings if f.rule_id != best.rule_id})
        reason = best.describe()
        if others:
            reason += f"; also {', '.join(others[:6])}" + (" ..." if len(others) > 6 else "")
        return LayerVerdict(best.permission, reason, self.name, best.rule_id,  # type: ignore[arg-type]
                            RISK.get(best.severity, 0.4))  # fmt: skip
