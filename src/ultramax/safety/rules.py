"""Rule packs: the guard's policy as data, and the matcher that applies it.

The packs (``data/*.toml``) hold rules with a stable id, a category, a severity, a reason and a decision per
mode (``development``, ``state-of-witness``, ``alphaforge``; ``default`` for the rest). A rule's ``match``
table names what it looks at -- the canonical command name and subcommand, normalised flags, the *classes*
of the paths it reads, writes or deletes (``ultramax.safety.pathclass``), the kinds of data flowing into it
(``network``, ``secret``, ``env``, ``decoded`` ...), SQL statement classes, facts found by the analyser --
never raw substrings of the command line. ``data/tools.toml`` says how to read each tool's arguments.

Users extend and override the packs in Claude Code's settings files:

- ``safety.rules``: rule objects in the same schema (a known ``id`` patches that rule: its ``decision``,
  ``enabled``, ``reason``, ``match``), or strings ``"deny Bash(git push:*)"``;
- ``safety.allow`` / ``safety.ask`` / ``safety.deny``: Claude Code rule syntax -- ``Bash(npm run build)``,
  ``Bash(git push:*)``, ``Read(./.env)``, ``Edit(~/.bashrc)``, ``mcp__github__*``, ``WebFetch(domain:x.com)``.
  They apply per simple command / path / tool, deny before ask before allow, and an allow or ask lifts the
  packaged findings of what it matches -- except rules marked ``waivable = false`` (guard tampering).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from functools import cache, cached_property, lru_cache
from typing import Any

from ultramax.safety.pathclass import DYN, PathContext, classify, resolve

__all__ = [
    "MODES",
    "ClaudePattern",
    "Finding",
    "Matcher",
    "Rule",
    "RulePack",
    "RuleSet",
    "Subject",
    "ToolSpec",
    "load_pack",
    "ruleset_for",
]

MODES = ("development", "state-of-witness", "alphaforge")
PERMISSIONS = ("allow", "ask", "deny")
SEVERITIES = ("low", "medium", "high", "critical")
_STRENGTH = {"allow": 0, "ask": 1, "deny": 2}


class RuleError(ValueError):
    """A rule pack or a user rule is malformed."""


# -- matcher ----------------------------------------------------------------------------------------------
_SET_KEYS = (
    "flags_any", "flags_all", "flags_none", "targets", "targets_except", "reads", "reads_except", "writes",
    "writes_except", "deletes", "deletes_except", "modifies", "modifies_except", "stdin", "sends", "exec", "sql",
    "dynamic", "fact", "fact_none", "sink", "sink_none", "paths", "paths_except", "verb",
)  # fmt: skip
_LIST_KEYS = ("command", "args_any", "args_none", "env_any", "via")
_REGEX_KEYS = ("regex", "regex_none", "raw_regex", "first_arg")
_OTHER_KEYS = ("subcommand", "target_select", "any", "privileged", "min_args")
MATCH_KEYS = frozenset((*_SET_KEYS, *_LIST_KEYS, *_REGEX_KEYS, *_OTHER_KEYS))


@dataclass(frozen=True, slots=True)
class Matcher:
    """The conditions of a rule; all that are given must hold (``any`` holds if one of its matchers does)."""

    command: tuple[str, ...] = ()
    subcommand: tuple[tuple[str, ...], ...] = ()
    flags_any: frozenset[str] = frozenset()
    flags_all: frozenset[str] = frozenset()
    flags_none: frozenset[str] = frozenset()
    args_any: tuple[str, ...] = ()
    args_none: tuple[str, ...] = ()
    first_arg: re.Pattern[str] | None = None
    regex: re.Pattern[str] | None = None
    regex_none: re.Pattern[str] | None = None
    raw_regex: re.Pattern[str] | None = None
    env_any: tuple[str, ...] = ()
    target_select: str = "args"
    targets: frozenset[str] = frozenset()
    targets_except: frozenset[str] = frozenset()
    reads: frozenset[str] = frozenset()
    reads_except: frozenset[str] = frozenset()
    writes: frozenset[str] = frozenset()
    writes_except: frozenset[str] = frozenset()
    deletes: frozenset[str] = frozenset()
    deletes_except: frozenset[str] = frozenset()
    modifies: frozenset[str] = frozenset()
    modifies_except: frozenset[str] = frozenset()
    stdin: frozenset[str] = frozenset()
    sends: frozenset[str] = frozenset()
    exec: frozenset[str] = frozenset()
    sql: frozenset[str] = frozenset()
    dynamic: frozenset[str] = frozenset()
    fact: frozenset[str] = frozenset()
    fact_none: frozenset[str] = frozenset()
    sink: frozenset[str] = frozenset()
    sink_none: frozenset[str] = frozenset()
    paths: frozenset[str] = frozenset()
    paths_except: frozenset[str] = frozenset()
    verb: frozenset[str] = frozenset()
    privileged: bool | None = None
    min_args: int | None = None
    via: tuple[str, ...] = ()
    any: tuple[Matcher, ...] = ()
    _checks: tuple[Any, ...] = field(default=(), init=False, repr=False, compare=False)
    gate: frozenset[str] | None = field(default=None, init=False, repr=False, compare=False)
    any_globbed: bool = field(default=False, init=False, repr=False, compare=False)

    @classmethod
    def parse(cls, data: Mapping[str, Any], where: str) -> Matcher:
        if not isinstance(data, Mapping):
            raise RuleError(f"{where}: match must be a table, got {type(data).__name__}")
        unknown = set(data) - MATCH_KEYS
        if unknown:
            raise RuleError(f"{where}: unknown match key(s) {', '.join(sorted(unknown))}")
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key in _SET_KEYS or key in _LIST_KEYS:
                items = [value] if isinstance(value, str) else value
                if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
                    raise RuleError(f"{where}: {key} must be a list of strings")
                kwargs[key] = frozenset(items) if key in _SET_KEYS else tuple(items)
            elif key in _REGEX_KEYS:
                if not isinstance(value, str):
                    raise RuleError(f"{where}: {key} must be a regular expression string")
                try:
                    kwargs[key] = re.compile(value)
                except re.error as exc:
                    raise RuleError(f"{where}: {key} is not a valid regular expression ({exc})") from exc
            elif key == "subcommand":
                items = [value] if isinstance(value, str) else value
                if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
                    raise RuleError(f"{where}: subcommand must be a list of strings")
                kwargs[key] = tuple(tuple(v.lower().split()) for v in items)
            elif key == "target_select":
                if not isinstance(value, str) or not re.fullmatch(
                    r"args|last|all_but_last|first|roots|args_after:\d+|operand:\w+|option:-[\w-]+", value
                ):
                    raise RuleError(f"{where}: target_select {value!r} is not one of args, last, all_but_last, first, "
                                    "roots, args_after:N, operand:NAME, option:FLAG")  # fmt: skip
                kwargs[key] = value
            elif key == "privileged":
                if not isinstance(value, bool):
                    raise RuleError(f"{where}: privileged must be true or false")
                kwargs[key] = value
            elif key == "min_args":
                if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                    raise RuleError(f"{where}: min_args must be a non-negative integer")
                kwargs[key] = value
            elif key == "any":
                if not isinstance(value, list) or not value:
                    raise RuleError(f"{where}: any must be a non-empty list of tables")
                kwargs[key] = tuple(cls.parse(v, f"{where}.any[{i}]") for i, v in enumerate(value))
        return cls(**kwargs)

    def command_names(self) -> tuple[str, ...]:
        """Names this matcher requires (for indexing); () when it applies to any command."""
        if self.command:
            return tuple(c.lower() for c in self.command)
        if self.any and all(m.command for m in self.any):
            return tuple(c.lower() for m in self.any for c in m.command)
        return ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "_checks", self._compile())
        object.__setattr__(self, "gate", self._gate())
        object.__setattr__(self, "any_globbed", any(_is_glob(c) for c in self.command))

    def _gate(self) -> frozenset[str] | None:
        """Facets of which the subject must have at least one for this matcher to match (None: no such set)."""
        for facet, attr in _FACETS:
            if getattr(self, attr):
                return frozenset({facet})
        if self.any:
            gates = [m.gate for m in self.any]
            if all(g is not None for g in gates):
                return frozenset().union(*(g for g in gates if g is not None))
        return None

    def _compile(self) -> tuple[Any, ...]:
        """The conditions that are set, as closures, cheapest first."""
        checks: list[Any] = []
        if self.command:
            exact = frozenset(c for c in self.command if not _is_glob(c))
            globs = tuple(c for c in self.command if _is_glob(c))

            def command(s: Subject, rest: int) -> bool:
                n = s.name
                return n is not None and (n in exact or any(fnmatchcase(n, g) for g in globs))

            checks.append(command)
        if self.flags_any or self.flags_all or self.flags_none:
            wanted = self.flags_any | self.flags_all | self.flags_none
            f_any, f_all, f_none = self.flags_any, self.flags_all, self.flags_none

            def flag_check(s: Subject, rest: int) -> bool:
                flags = _with_abbreviations(s, wanted)
                if f_any and not flags & f_any:
                    return False
                if f_all and not f_all <= flags:
                    return False
                return not (f_none and flags & f_none)

            checks.append(flag_check)
        for attr, key in (("fact", "facts"), ("sql", "sql"), ("exec", "exec_kinds"), ("stdin", "stdin_kinds"),
                          ("sends", "sent_kinds"), ("dynamic", "dynamic"), ("verb", "verbs")):  # fmt: skip
            wanted_set = getattr(self, attr)
            if wanted_set:
                checks.append(lambda s, rest, w=wanted_set, k=key: bool(getattr(s, k) & w))
        if self.fact_none:
            checks.append(lambda s, rest, w=self.fact_none: not s.facts & w)
        if self.sink:
            checks.append(lambda s, rest, w=self.sink: s.sink in w)
        if self.sink_none:
            checks.append(lambda s, rest, w=self.sink_none: s.sink not in w)
        if self.privileged is not None:
            checks.append(lambda s, rest, w=self.privileged: s.privileged == w)
        if self.via:
            checks.append(lambda s, rest, w=self.via: any(fnmatchcase(v, p) for v in s.via for p in w))
        if self.env_any:
            checks.append(lambda s, rest, w=self.env_any: any(fnmatchcase(f"{k}={v}", p) for k, v in s.env.items()
                                                                 for p in w))  # fmt: skip
        if self.regex is not None:
            checks.append(lambda s, rest, r=self.regex: r.search(s.text) is not None)
        if self.regex_none is not None:
            checks.append(lambda s, rest, r=self.regex_none: r.search(s.text) is None)
        if self.raw_regex is not None:
            checks.append(lambda s, rest, r=self.raw_regex: r.search(s.raw) is not None)
        if self.args_any or self.args_none or self.first_arg is not None or self.min_args is not None:
            a_any, a_none, first, minimum = self.args_any, self.args_none, self.first_arg, self.min_args

            def args_check(s: Subject, rest: int) -> bool:
                positionals = s.positionals[rest:]
                if minimum is not None and len(positionals) < minimum:
                    return False
                if a_any and not any(fnmatchcase(p, a) for p in positionals for a in a_any):
                    return False
                if a_none and any(fnmatchcase(p, a) for p in positionals for a in a_none):
                    return False
                return first is None or bool(positionals and first.fullmatch(positionals[0]))

            checks.append(args_check)
        if self.targets:
            checks.append(lambda s, rest, sel=self.target_select, w=self.targets, u=self.targets_except:
                          _hit(s.target_classes(sel, rest), w, u))  # fmt: skip
        for attr, key in (("reads", "read_classes"), ("writes", "write_classes"), ("deletes", "delete_classes"),
                          ("modifies", "modify_classes"), ("paths", "path_classes")):  # fmt: skip
            wanted_set = getattr(self, attr)
            if wanted_set:
                unless = getattr(self, attr + "_except")
                checks.append(lambda s, rest, w=wanted_set, u=unless, k=key: _hit(getattr(s, k), w, u))
        if self.any:
            branches = self.any
            checks.append(lambda s, rest: any(m.test(s, rest) for m in branches))
        return tuple(checks)

    def test(self, s: Subject, base: int = 0, *, named: bool = False) -> bool:
        """Whether the subject matches; ``named`` says the command name was already matched by the index."""
        rest = base
        checks = self._checks
        if self.command and not named and not checks[0](s, rest):
            return False
        if self.subcommand:
            found = s.match_subcommand(self.subcommand)
            if found is None:
                return False
            rest = found
        return all(check(s, rest) for check in (checks[1:] if self.command else checks))


_FACETS = (("writes", "writes"), ("deletes", "deletes"), ("modifies", "modifies"), ("reads", "reads"),
           ("sql", "sql"), ("exec", "exec"), ("sends", "sends"), ("stdin", "stdin"), ("dynamic", "dynamic"),
           ("fact", "fact"), ("paths", "paths"), ("verb", "verb"))  # fmt: skip


def _is_glob(text: str) -> bool:
    return any(ch in text for ch in "*?[")


def _with_abbreviations(s: Subject, wanted: frozenset[str]) -> frozenset[str]:
    """The subject's flags, plus the rule flags its abbreviated long options stand for (git accepts ``--ha``)."""
    if not s.flag_abbrev:
        return s.flags
    extra = set()
    for f in s.flags:
        name, eq, val = f.partition("=")
        if not name.startswith("--") or len(name) < 4:
            continue
        for w in wanted:
            wname, weq, wval = w.partition("=")
            if (
                wname.startswith("--")
                and wname != name
                and wname.startswith(name)
                and (not weq or (eq and wval == val))
            ):
                extra.add(w)
    return s.flags | extra if extra else s.flags


def _hit(groups: Iterable[frozenset[str]], wanted: frozenset[str], unless: frozenset[str]) -> bool:
    return any(g & wanted and not g & unless for g in groups)


# -- rules --------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    category: str
    severity: str
    reason: str
    decisions: tuple[tuple[str, str], ...]
    tools: frozenset[str]
    match: Matcher
    waivable: bool = True
    enabled: bool = True
    source: str = "pack"

    def decision(self, mode: str) -> str:
        table = dict(self.decisions)
        return table.get(mode) or table.get("default") or "ask"

    def applies_to(self, tool: str) -> bool:
        return "*" in self.tools or tool in self.tools

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "category": self.category,
            "severity": self.severity,
            "decision": {m: self.decision(m) for m in MODES},
            "tools": sorted(self.tools),
            "reason": self.reason,
            "waivable": self.waivable,
            "enabled": self.enabled,
            "source": self.source,
        }


def _decisions(value: Any, where: str) -> tuple[tuple[str, str], ...]:
    if isinstance(value, str):
        value = {"default": value}
    if not isinstance(value, Mapping) or not value:
        raise RuleError(f"{where}: decision must be allow/ask/deny or a table of them per mode")
    out = []
    for mode, permission in value.items():
        if mode not in (*MODES, "default"):
            raise RuleError(f"{where}: decision for unknown mode {mode!r} (modes: {', '.join(MODES)}, default)")
        if permission not in PERMISSIONS:
            raise RuleError(f"{where}: decision {permission!r} is not one of allow, ask, deny")
        out.append((str(mode), str(permission)))
    return tuple(out)


def parse_rule(data: Mapping[str, Any], where: str, defaults: Mapping[str, Any], source: str) -> Rule:
    if not isinstance(data, Mapping):
        raise RuleError(f"{where}: a rule must be a table")
    allowed = {"id", "category", "severity", "reason", "decision", "tools", "match", "waivable", "enabled", "pattern"}
    unknown = set(data) - allowed
    if unknown:
        raise RuleError(f"{where}: unknown rule key(s) {', '.join(sorted(unknown))}")
    rid = data.get("id")
    if not isinstance(rid, str) or not re.fullmatch(r"[a-z0-9_.\-]+", rid):
        raise RuleError(f"{where}: id must be a lower-case dotted name, got {rid!r}")
    severity = data.get("severity", "medium")
    if severity not in SEVERITIES:
        raise RuleError(f"{where} ({rid}): severity must be one of {', '.join(SEVERITIES)}")
    tools = data.get("tools", defaults.get("tools", ["Bash"]))
    if isinstance(tools, str):
        tools = [tools]
    return Rule(
        id=rid,
        category=str(data.get("category", defaults.get("category", "custom"))),
        severity=str(severity),
        reason=str(data.get("reason", "")) or rid,
        decisions=_decisions(data.get("decision", "ask"), f"{where} ({rid})"),
        tools=frozenset(tools),
        match=Matcher.parse(data.get("match", {}), f"{where} ({rid}).match"),
        waivable=bool(data.get("waivable", True)),
        enabled=bool(data.get("enabled", True)),
        source=source,
    )


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """How to read one tool's command line (data/tools.toml)."""

    aliases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    value_options: frozenset[str] = frozenset()
    global_value_options: frozenset[str] = frozenset()
    subcommands: Mapping[str, ToolSpec] = field(default_factory=dict)
    no_bundle: bool = False
    reads: str | None = None
    writes: str | None = None
    deletes: str | None = None
    modifies: str | None = None
    loads: str | None = None
    alias_of: tuple[str, ...] = ()
    kinds: frozenset[str] = frozenset()
    sender: bool = False
    sql_options: frozenset[str] = frozenset()
    sql_positional: int | None = None
    sql_stdin: bool = False
    sql_files: frozenset[str] = frozenset()
    redis: bool = False
    abbreviations: bool = False

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> ToolSpec:
        aliases = {k: tuple(v) if isinstance(v, list) else (v,) for k, v in dict(data.get("aliases", {})).items()}
        return cls(
            aliases=aliases,
            value_options=frozenset(data.get("value_options", ())),
            global_value_options=frozenset(data.get("global_value_options", ())),
            subcommands={k: cls.parse(v) for k, v in dict(data.get("subcommands", {})).items()},
            no_bundle=bool(data.get("no_bundle", False)),
            reads=data.get("reads"),
            writes=data.get("writes"),
            deletes=data.get("deletes"),
            modifies=data.get("modifies"),
            loads=data.get("loads"),
            alias_of=tuple(data.get("as", ())),
            kinds=frozenset(data.get("kinds", ())),
            sender=bool(data.get("sender", False)),
            sql_options=frozenset(data.get("sql_options", ())),
            sql_positional=data.get("sql_positional"),
            sql_stdin=bool(data.get("sql_stdin", False)),
            sql_files=frozenset(data.get("sql_files", ())),
            redis=bool(data.get("redis", False)),
            abbreviations=bool(data.get("abbreviations", False)),
        )


_EMPTY_SPEC = ToolSpec()


@dataclass(frozen=True, eq=False)
class RulePack:
    rules: tuple[Rule, ...]
    specs: Mapping[str, ToolSpec]

    def spec(self, name: str) -> ToolSpec:
        return self.specs.get(name, _EMPTY_SPEC)


_DATA_FILES_NOT_RULES = {"paths.toml", "tools.toml"}


@cache
def load_pack() -> RulePack:
    """The packaged rule packs and tool specs (validated; ids unique)."""
    from ultramax.safety.datafiles import data_files

    rules: list[Rule] = []
    specs: dict[str, ToolSpec] = {}
    for name, data in sorted(data_files().items()):
        if name == "tools.toml":
            specs = {tool: ToolSpec.parse(body) for tool, body in data.get("tools", {}).items()}
            continue
        if name in _DATA_FILES_NOT_RULES:
            continue
        defaults: dict[str, Any] = {k: data[k] for k in ("category", "tools") if k in data}
        for i, raw in enumerate(data.get("rule", [])):
            rules.append(parse_rule(raw, f"safety/data/{name} rule {i + 1}", defaults, f"pack:{name}"))
    seen: set[str] = set()
    for rule in rules:
        if rule.id in seen:
            raise RuleError(f"duplicate rule id {rule.id}")
        seen.add(rule.id)
    return RulePack(tuple(rules), specs)


# -- findings ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Finding:
    """One rule that matched one unit (a simple command, a path, an MCP call)."""

    rule_id: str
    category: str
    severity: str
    permission: str
    reason: str
    subject: str
    via: str = ""
    unit: int = -1
    waivable: bool = True

    @property
    def strength(self) -> int:
        return _STRENGTH[self.permission]

    def describe(self) -> str:
        subject = self.subject if len(self.subject) <= 160 else self.subject[:157] + "..."
        return f"{self.reason}: `{subject}`{self.via} [rule {self.rule_id}]"

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule_id,
            "category": self.category,
            "severity": self.severity,
            "permission": self.permission,
            "reason": self.reason,
            "subject": self.subject,
            "via": self.via.strip(" ()").removeprefix("via ") or None,
        }


def strongest(findings: Iterable[Finding]) -> Finding | None:
    best: Finding | None = None
    order = {s: i for i, s in enumerate(SEVERITIES)}
    for f in findings:
        if best is None or (f.strength, order.get(f.severity, 0)) > (best.strength, order.get(best.severity, 0)):
            best = f
    return best


# -- Claude Code rule syntax ---------------------------------------------------------------------------------
_EDIT_TOOLS = frozenset({"Edit", "Write", "MultiEdit", "NotebookEdit"})
_READ_TOOLS = frozenset({"Read", "Grep", "Glob", "NotebookRead", "LS"})


@dataclass(frozen=True, slots=True)
class ClaudePattern:
    """A Claude Code permission rule: ``Tool``, ``Tool(specifier)``, ``mcp__server__tool``."""

    text: str
    tool: str
    spec: str | None

    @classmethod
    def parse(cls, text: str) -> ClaudePattern:
        m = re.fullmatch(r"\s*([A-Za-z0-9_\-.*]+)\s*(?:\((.*)\))?\s*", text, re.S)
        if not m:
            raise RuleError(f"not a Claude Code rule: {text!r} (expected Tool or Tool(specifier))")
        return cls(text.strip(), m.group(1), m.group(2) if m.group(2) is not None else None)

    def matches_tool(self, tool: str) -> bool:
        if self.tool.startswith("mcp__"):
            if fnmatchcase(tool, self.tool):
                return True
            return tool.startswith(self.tool.rstrip("*").rstrip("_") + "__")
        if self.tool == "Edit":
            return tool in _EDIT_TOOLS
        if self.tool == "Read":
            return tool in _READ_TOOLS
        return self.tool in (tool, "*")

    def matches_command(self, text: str) -> bool:
        spec = self.spec
        if spec is None or spec.strip() in ("", "*", ":*"):
            return True
        spec = spec.strip()
        if spec.endswith(":*"):
            prefix = spec[:-2].rstrip()
            return text == prefix or text.startswith(prefix + " ")
        if spec.endswith(" *") and text == spec[:-2].rstrip():
            return True
        return _glob_regex(spec, slash=False).fullmatch(text) is not None

    def matches_path(self, path: str | None, ctx: PathContext) -> bool:
        if self.spec is None or self.spec.strip() in ("", "*", "**"):
            return True
        if path is None:
            return False
        spec = self.spec.strip()
        base = ctx.cwd or ctx.project or "/"
        if spec.startswith("//"):
            pattern = spec[1:]
        elif spec.startswith("~/") or spec == "~":
            pattern = ctx.home + spec[1:]
        elif spec.startswith("/"):
            pattern = (ctx.project or base).rstrip("/") + spec
        elif spec.startswith("./"):
            pattern = base.rstrip("/") + spec[1:]
        elif "/" not in spec.rstrip("/"):
            pattern = base.rstrip("/") + "/**/" + spec
        else:
            pattern = base.rstrip("/") + "/" + spec
        return _glob_regex(pattern, slash=True).fullmatch(path) is not None

    def matches_domain(self, url: str) -> bool:
        if not self.spec or not self.spec.startswith("domain:"):
            return self.spec is None
        host = re.sub(r"^[a-z]+://", "", url).split("/", 1)[0].split(":", 1)[0].lower()
        want = self.spec[len("domain:") :].strip().lower()
        return host == want or host.endswith("." + want) or fnmatchcase(host, want)


@lru_cache(maxsize=1024)
def _glob_regex(pattern: str, *, slash: bool) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if pattern.startswith("**/", i) and slash:
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if ch == "*":
            out.append("[^/]*" if slash else ".*")
        elif ch == "?":
            out.append("[^/]" if slash else ".")
        else:
            out.append(re.escape(ch))
        i += 1
    suffix = "(?:/.*)?" if slash else ""
    return re.compile("".join(out) + suffix, re.S)


# -- the rule set in force (packs + the user's settings) ------------------------------------------------------
@dataclass(frozen=True)
class UserPattern:
    label: str
    permission: str
    pattern: ClaudePattern


@dataclass(frozen=True, eq=False)
class RuleSet:
    pack: RulePack
    rules: tuple[Rule, ...]
    patterns: tuple[UserPattern, ...]
    problems: tuple[str, ...] = ()

    @cached_property
    def by_tool(self) -> dict[str, tuple[dict[str, tuple[Rule, ...]], tuple[Rule, ...]]]:
        """Rules per tool: (indexed by command name, rules for any command)."""
        tools = {t for r in self.rules for t in r.tools}
        out: dict[str, tuple[dict[str, tuple[Rule, ...]], tuple[Rule, ...]]] = {}
        for tool in tools:
            indexed: dict[str, list[Rule]] = {}
            generic: list[Rule] = []
            for rule in self.rules:
                if not rule.enabled or tool not in rule.tools:
                    continue
                names = rule.match.command_names()
                if names and all(not any(ch in n for ch in "*?[") for n in names):
                    for name in names:
                        indexed.setdefault(name, []).append(rule)
                else:
                    generic.append(rule)
            out[tool] = ({k: tuple(v) for k, v in indexed.items()}, tuple(generic))
        return out

    def candidates(self, tool: str, name: str | None) -> Iterable[tuple[Rule, bool]]:
        """Rules that may apply to a subject of ``tool`` named ``name``, each with whether the name matched."""
        entry = self.by_tool.get(tool)
        if entry is None:
            return ()
        indexed, generic = entry
        specific = indexed.get(name or "", ())
        return (*((r, True) for r in specific), *((r, False) for r in generic))

    def findings(
        self, tool: str, subject: Subject, mode: str, *, unit: int = 0, label: str = "", via: str = ""
    ) -> list[Finding]:
        out = []
        facets = subject.facets()
        for rule, named in self.candidates(tool, subject.name):
            gate = rule.match.gate
            if gate is not None and not gate & facets:
                continue
            if rule.match.test(subject, named=named and not rule.match.any_globbed):
                out.append(Finding(rule.id, rule.category, rule.severity, rule.decision(mode), rule.reason, label,
                                   via, unit, rule.waivable))  # fmt: skip
        return out

    def user_verdict(self, test: Any) -> UserPattern | None:
        """The strongest user pattern for which ``test(pattern)`` holds (deny > ask > allow)."""
        best: UserPattern | None = None
        for up in self.patterns:
            if (best is None or _STRENGTH[up.permission] > _STRENGTH[best.permission]) and test(up.pattern):
                best = up
        return best


def _setting(settings: Any, key: str, default: Any) -> Any:
    try:
        value = settings.get(key)
    except (KeyError, AttributeError):
        return default
    return default if value is None else value


def ruleset_for(settings: Any) -> RuleSet:
    """The packs with the user's ``safety.rules`` / ``safety.allow|ask|deny`` applied (cached per content)."""
    user = {key: _setting(settings, f"safety.{key}", []) for key in ("rules", "allow", "ask", "deny")}
    build = _setting(settings, "safety.buildDirs", [])
    fingerprint = json.dumps([user, build], sort_keys=True, default=str)
    return _ruleset(fingerprint)


@lru_cache(maxsize=32)
def _ruleset(fingerprint: str) -> RuleSet:
    user, _build = json.loads(fingerprint)
    pack = load_pack()
    rules = {r.id: r for r in pack.rules}
    order = [r.id for r in pack.rules]
    patterns: list[UserPattern] = []
    problems: list[str] = []
    for permission in ("deny", "ask", "allow"):
        for i, text in enumerate(user.get(permission) or []):
            try:
                patterns.append(UserPattern(f"safety.{permission}[{i}]", permission, ClaudePattern.parse(str(text))))
            except RuleError as exc:
                problems.append(f"safety.{permission}[{i}]: {exc}")
    for i, item in enumerate(user.get("rules") or []):
        where = f"safety.rules[{i}]"
        try:
            if isinstance(item, str):
                verb, _, rest = item.strip().partition(" ")
                if verb not in PERMISSIONS or not rest.strip():
                    raise RuleError(f"{where}: a rule string must be 'allow|ask|deny <Claude Code rule>', got {item!r}")
                patterns.append(UserPattern(where, verb, ClaudePattern.parse(rest)))
                continue
            if not isinstance(item, Mapping):
                raise RuleError(f"{where}: must be an object or a string")
            if "pattern" in item:
                decision = item.get("decision", "ask")
                if decision not in PERMISSIONS:
                    raise RuleError(f"{where}: decision must be allow, ask or deny")
                label = str(item.get("id") or where)
                patterns.append(UserPattern(label, str(decision), ClaudePattern.parse(str(item["pattern"]))))
                continue
            rid = item.get("id")
            if isinstance(rid, str) and rid in rules:
                rules[rid] = _patch(rules[rid], item, where)
            else:
                rule = parse_rule(item, where, {"category": "custom"}, "settings")
                rules[rule.id] = rule
                order.append(rule.id)
        except RuleError as exc:
            problems.append(str(exc))
    return RuleSet(pack, tuple(rules[i] for i in order), tuple(patterns), tuple(problems))


def _patch(rule: Rule, item: Mapping[str, Any], where: str) -> Rule:
    unknown = set(item) - {"id", "decision", "enabled", "reason", "severity", "match", "tools"}
    if unknown:
        raise RuleError(f"{where}: cannot change {', '.join(sorted(unknown))} of packaged rule {rule.id}")
    changes: dict[str, Any] = {"source": "pack+settings"}
    if "decision" in item:
        changes["decisions"] = _decisions(item["decision"], where)
    if "enabled" in item:
        if not rule.waivable and item["enabled"] is False:
            raise RuleError(f"{where}: rule {rule.id} protects the guard itself and cannot be disabled")
        changes["enabled"] = bool(item["enabled"])
    if "reason" in item:
        changes["reason"] = str(item["reason"])
    if "severity" in item:
        changes["severity"] = str(item["severity"])
    if "match" in item:
        changes["match"] = Matcher.parse(item["match"], f"{where}.match")
    if "tools" in item:
        tools = item["tools"]
        changes["tools"] = frozenset([tools] if isinstance(tools, str) else tools)
    if not rule.waivable and "decisions" in changes and dict(changes["decisions"]).get("default", "deny") != "deny":
        raise RuleError(f"{where}: rule {rule.id} protects the guard itself; its decision cannot be lowered")
    from dataclasses import replace

    return replace(rule, **changes)


# -- subjects: what a rule looks at -------------------------------------------------------------------------
class Subject:
    """The facts a matcher reads. Each kind of tool call fills in what applies to it."""

    name: str | None = None
    text: str = ""
    raw: str = ""
    env: Mapping[str, str] = {}
    privileged: bool = False
    via: tuple[str, ...] = ()
    sink: str = "tty"
    flags: frozenset[str] = frozenset()
    flag_abbrev: bool = False
    positionals: Sequence[str] = ()
    read_classes: Sequence[frozenset[str]] = ()
    write_classes: Sequence[frozenset[str]] = ()
    delete_classes: Sequence[frozenset[str]] = ()
    modify_classes: Sequence[frozenset[str]] = ()
    path_classes: Sequence[frozenset[str]] = ()
    stdin_kinds: frozenset[str] = frozenset()
    sent_kinds: frozenset[str] = frozenset()
    exec_kinds: frozenset[str] = frozenset()
    sql: frozenset[str] = frozenset()
    dynamic: frozenset[str] = frozenset()
    facts: frozenset[str] = frozenset()
    verbs: frozenset[str] = frozenset()

    def match_subcommand(self, options: tuple[tuple[str, ...], ...]) -> int | None:
        return None

    def facets(self) -> frozenset[str]:
        """The kinds of facts this subject has at all (rules gated on others are skipped)."""
        present = {
            "writes": self.write_classes, "deletes": self.delete_classes, "modifies": self.modify_classes,
            "reads": self.read_classes, "sql": self.sql, "exec": self.exec_kinds, "sends": self.sent_kinds,
            "stdin": self.stdin_kinds, "dynamic": self.dynamic, "fact": self.facts, "paths": self.path_classes,
            "verb": self.verbs,
        }  # fmt: skip
        return frozenset(k for k, v in present.items() if v)

    def target_classes(self, select: str, rest: int) -> Sequence[frozenset[str]]:
        return ()


class FactSubject(Subject):
    """Script-level facts (unparseable, too large ...) and other subjects made of facts only."""

    def __init__(self, facts: Iterable[str], text: str = "") -> None:
        self.facts = frozenset(facts)
        self.text = text[:4096]
        self.raw = self.text


class PathSubject(Subject):
    """A file tool (or an MCP tool acting on a path): the classes of its path."""

    def __init__(self, classes: frozenset[str], text: str, facts: Iterable[str] = ()) -> None:
        self.path_classes = (classes,)
        self.text = text
        self.raw = text
        self.facts = frozenset(facts)


def classify_word(text: str, pctx: PathContext, cwd: str | None, *, glob: bool = False) -> frozenset[str]:
    """Classes of one path argument (globs: ``dir/*`` is the directory's content)."""
    if glob and DYN not in text:
        parts = text.split("/")
        idx = next((i for i, p in enumerate(parts) if any(c in p for c in "*?[")), None)
        if idx is not None:
            head = "/".join(parts[:idx]) or ("/" if text.startswith("/") else ".")
            comp = parts[idx]
            last = idx == len(parts) - 1 or (idx == len(parts) - 2 and parts[-1] == "")
            if last and comp in ("*", ".*", "**", "*.*", "{*,.*}", ".[!.]*", "..?*"):
                base = resolve(head, pctx, cwd)
                classes = classify(base, pctx)
                if "temp_root" in classes:
                    return frozenset({"temp"})
                if "secret_dir" in classes:
                    return classes | {"secret"}
                return classes
            if last:
                return classify(resolve(text.replace("*", "x").replace("?", "x"), pctx, cwd), pctx)
            base = resolve(head, pctx, cwd)
            return classify(None if base is None else base.rstrip("/") + "/" + DYN, pctx)
    return classify(resolve(text, pctx, cwd), pctx)


__all__ += ["FactSubject", "PathSubject", "UserPattern", "classify_word", "strongest"]
