"""Non-shell tools: file tools (Read, Write, Edit, MultiEdit, NotebookEdit, Grep) and the default for MCP tools
of unknown servers.

File tools: the path is normalised (``~``, relative to the working directory, ``..``, symlinks) and classified
(``ultramax.safety.pathclass``); the rules of ``data/files.toml`` match on the classes. Content written to a
shell start-up file, a cron table or a git hook is analysed as the shell code it is.

MCP tools: servers with a known risk table (``ultramax.safety.mcp_risk.KNOWN_SERVERS`` and the configured
trading servers) are left to that layer. For the others, the verb in the tool name (``get_``/``list_`` read,
``delete_``/``drop_`` destroy, ``place_order`` money, ``run_command`` exec ...) and the annotations the caller
passes decide, and the arguments are judged like everything else: SQL by the database rules, shell commands
by the shell rules, paths by the file rules.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from typing import Any

from ultramax.safety.mcp_risk import parse_mcp_name
from ultramax.safety.pathclass import PathContext, classify, resolve
from ultramax.safety.queries import sql_classes
from ultramax.safety.rules import ClaudePattern, Finding, PathSubject, RuleSet, Subject
from ultramax.safety.shellview import evaluate_bash, persisted_code_facts

__all__ = ["FILE_TOOLS", "evaluate_file", "evaluate_mcp", "evaluate_other", "mcp_verbs", "parse_mcp_name"]

FILE_TOOLS: dict[str, str] = {
    "Read": "read",
    "NotebookRead": "read",
    "Grep": "read",
    "Write": "write",
    "Edit": "write",
    "MultiEdit": "write",
    "NotebookEdit": "write",
}
_PATH_KEYS = ("file_path", "notebook_path", "path")
_PERSISTENT = frozenset({"shell_rc", "autostart", "git_hooks", "ssh_config"})


def _user(findings: list[Finding], ruleset: RuleSet, tool: str, test: Any, subject: str) -> list[Finding]:
    verdict = ruleset.user_verdict(test)
    if verdict is None:
        return findings
    out = findings
    if verdict.permission in ("allow", "ask"):
        out = [f for f in out if not f.waivable]
    if verdict.permission in ("deny", "ask"):
        severity = "high" if verdict.permission == "deny" else "medium"
        reason = f"your rule {verdict.label} `{verdict.pattern.text}`"
        out = [*out, Finding(verdict.label, "user", severity, verdict.permission, reason, subject)]
    return out


def _content(tool: str, data: Mapping[str, Any]) -> str:
    if tool == "MultiEdit":
        edits = data.get("edits")
        if isinstance(edits, list):
            return "\n".join(str(e.get("new_string", "")) for e in edits if isinstance(e, Mapping))
        return ""
    for key in ("content", "new_string", "new_source"):
        value = data.get(key)
        if isinstance(value, str):
            return value
    return ""


_CONTENT_KEYS = ("content", "new_string", "new_source", "newtext", "new_text", "text", "contents", "data", "body")


def _mcp_content(data: Mapping[str, Any]) -> str:
    """The text an MCP write or edit tool puts into its file: ``content`` (filesystem ``write_file``) or the
    like, and the new text of each of its ``edits`` (filesystem ``edit_file``: ``oldText``/``newText``)."""
    parts: list[str] = []
    for key, value in data.items():
        low = str(key).lower()
        if isinstance(value, str) and low in _CONTENT_KEYS:
            parts.append(value)
        elif isinstance(value, list) and low in ("edits", "changes", "replacements"):
            for edit in value[:64]:
                if isinstance(edit, Mapping):
                    parts += [str(v) for k, v in edit.items() if str(k).lower() in _CONTENT_KEYS and isinstance(v, str)]
    return "\n".join(parts)


def evaluate_file(tool: str, data: Mapping[str, Any], ruleset: RuleSet, mode: str, pctx: PathContext) -> list[Finding]:
    raw = next((data[k] for k in _PATH_KEYS if isinstance(data.get(k), str) and data[k]), None)
    if raw is None:
        return _user([], ruleset, tool, lambda p: p.matches_tool(tool) and p.spec is None, tool)
    path = resolve(raw, pctx)
    classes = classify(path, pctx)
    facts: set[str] = set()
    if FILE_TOOLS.get(tool) == "write" and classes & _PERSISTENT:
        content = _content(tool, data)
        if content:
            facts |= persisted_code_facts(content, ruleset, mode, pctx)
    label = path or raw
    findings = ruleset.findings(tool, PathSubject(classes, label, facts), mode, label=label)
    return _user(findings, ruleset, tool, lambda p: p.matches_tool(tool) and p.matches_path(path, pctx), label)


def evaluate_other(tool: str, data: Mapping[str, Any], ruleset: RuleSet, mode: str) -> list[Finding]:
    """Tools without packaged rules (WebFetch, Task ...): only the user's patterns apply."""
    url = data.get("url") if isinstance(data.get("url"), str) else ""

    def test(p: ClaudePattern) -> bool:
        if not p.matches_tool(tool):
            return False
        return p.matches_domain(str(url)) if tool == "WebFetch" and p.spec else p.spec is None

    findings = ruleset.findings(tool, Subject(), mode, label=tool) if tool in ruleset.by_tool else []
    return _user(findings, ruleset, tool, test, tool if not url else f"{tool} {url}")


# -- MCP --------------------------------------------------------------------------------------------------
@cache
def _vocabulary() -> dict[str, frozenset[str]]:
    """The verb classes of data/mcp.toml ([verbs] read/write/destroy/exec and the money/admin nouns)."""
    from ultramax.safety.datafiles import load_data

    raw = load_data("mcp.toml")["verbs"]
    return {name: frozenset(str(w).lower() for w in words) for name, words in raw.items()}


_SQL_KEYS = ("sql", "query", "statement", "statements", "q", "sql_query")
_CMD_KEYS = ("command", "cmd", "script", "shell_command", "bash", "commandline", "command_line")
_MCP_PATH_KEYS = ("path", "file_path", "filepath", "filename", "file", "paths", "source", "destination", "target",
                  "directory", "dir", "src", "dest", "from", "to", "uri")  # fmt: skip


_MOVE_WORDS = frozenset({"move", "rename", "mv"})
_MOVE_SOURCE_KEYS = frozenset({"source", "src", "from", "path", "old_path", "oldpath"})
_MOVE_CATASTROPHIC = frozenset({"root", "system", "home", "parent", "project_root", "git_dir", "secret_dir"})


def _tokens(name: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return [t for t in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if t]


def mcp_verbs(name: str) -> frozenset[str]:
    """Verb classes of an MCP tool name: read, write, destroy, exec, money, admin (or unknown)."""
    vocab = _vocabulary()
    tokens = _tokens(name)
    primary = None
    for tok in tokens:
        for cls in ("destroy", "exec", "read", "write"):
            words = vocab[cls]
            if tok in words:
                primary = cls
                break
        if primary:
            break
    out: set[str] = {primary} if primary else set()
    if primary != "read":
        trade_object = len(tokens) > 1 and tokens[1] in ("order", "orders", "position", "positions", "all")
        if any(t in vocab["money"] for t in tokens) or (
            tokens[:1] in (["place"], ["cancel"], ["close"]) and trade_object
        ):
            out.add("money")
        if primary in ("write", "destroy", None) and any(t in vocab["admin"] for t in tokens):
            out.add("admin")
    return frozenset(out or {"unknown"})


@cache
def _known_module_servers() -> frozenset[str]:
    try:
        from ultramax.safety import mcp_risk
    except ImportError:
        return frozenset()
    return frozenset(str(s).lower() for s in getattr(mcp_risk, "KNOWN_SERVERS", ()))


def known_servers(settings: Any) -> frozenset[str]:
    try:
        trading = settings.get("safety.tradingServers") or []
    except (KeyError, AttributeError):
        trading = []
    return _known_module_servers() | {str(s).lower() for s in trading}


class McpSubject(Subject):
    def __init__(self, tool: str, verbs: frozenset[str], sql: frozenset[str], facts: frozenset[str]) -> None:
        self.text = tool
        self.raw = tool
        self.verbs = verbs
        self.sql = sql
        self.facts = facts


def evaluate_mcp(tool: str, data: Mapping[str, Any], ruleset: RuleSet, mode: str, pctx: PathContext, *,
                 settings: Any, annotations: Mapping[str, Any] | None = None) -> list[Finding] | None:  # fmt: skip
    """Findings for an MCP call to an unknown server; None when a known server's risk table handles it."""
    parsed = parse_mcp_name(tool)
    if parsed is None:
        return []
    server, name = parsed
    if server.lower() in known_servers(settings):
        return None
    verbs = mcp_verbs(name)
    facts: set[str] = set()
    if annotations:
        if annotations.get("destructiveHint") is True and not annotations.get("readOnlyHint"):
            facts.add("destructive_hint")
        if annotations.get("readOnlyHint") is True:
            facts.add("read_only_hint")
            verbs = frozenset({"read"})
    sql: set[str] = set()
    tokens = set(_tokens(name))
    if tokens & {"flushall", "flushdb"}:
        sql.add("flush_all")  # redis flushall as a tool of its own
    commands: list[str] = []
    paths: list[str] = []
    moved: list[str] = []
    for key, value in data.items():
        low = str(key).lower()
        if isinstance(value, str) and low in _MOVE_SOURCE_KEYS and tokens & _MOVE_WORDS:
            moved.append(value.removeprefix("file://"))
        if isinstance(value, str):
            if low in _SQL_KEYS:
                sql |= sql_classes(value)
            elif low in _CMD_KEYS:
                commands.append(value)
            elif low in _MCP_PATH_KEYS and not value.startswith(("http://", "https://")):
                paths.append(value.removeprefix("file://"))
        elif isinstance(value, list) and low in _MCP_PATH_KEYS:
            paths += [v.removeprefix("file://") for v in value if isinstance(v, str)]
    if "exec" in verbs and not commands:
        facts.add("no_command")
    findings = ruleset.findings("mcp", McpSubject(tool, verbs, frozenset(sql), frozenset(facts)), mode, label=tool)
    if verbs & {"exec", "unknown"}:
        for command in commands[:4]:
            findings += evaluate_bash(command, ruleset, mode, pctx).findings
    op = "mcp:delete" if "destroy" in verbs else "mcp:write" if verbs & {"write", "exec"} else "mcp:read"
    content = _mcp_content(data) if op == "mcp:write" else ""
    for raw in paths[:8]:
        path = resolve(raw, pctx)
        classes = classify(path, pctx)
        # what is written into a start-up file, hook or cron table is judged as the Write/Edit tools' is
        written = persisted_code_facts(content, ruleset, mode, pctx) if content and classes & _PERSISTENT else ()
        findings += ruleset.findings(op, PathSubject(classes, path or raw, written), mode,
                                     label=f"{tool} {path or raw}")  # fmt: skip
    for raw in moved[:4]:  # moving the project, HOME or a system directory away deletes it where it was
        path = resolve(raw, pctx)
        classes = classify(path, pctx)
        if classes & _MOVE_CATASTROPHIC:
            findings += ruleset.findings("mcp:delete", PathSubject(classes, path or raw), mode,
                                         label=f"{tool} {path or raw}")  # fmt: skip
    return _user(findings, ruleset, tool, lambda p: p.matches_tool(tool), tool)
