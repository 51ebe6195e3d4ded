"""MCP server pools: the seed's ``~/.claude/mcp/pools/*.json`` format, validated, plus which servers a project runs.

A pools file holds ``pools`` (``primary``, ``failover``, ``project-specific`` or any other name), each with a
``strategy`` (round-robin / priority / manual), health-check timing and ``servers``, and ``routing.rules``
(``pattern``, ``servers``, ``require_safety_check``). Every file in the user's pools directory is read, then
the project's ``.claude/mcp/pools/*.json`` (whose servers belong to that project). Problems are reported with
the file, the key and what is wrong; an invalid server or rule is left out and the rest still loads, so one
typo never takes every tool away. ``${VAR}`` and ``${VAR:-default}`` expand from the gateway's environment when
a server starts (an unset variable without a default is kept literally and reported, as Claude Code does).

Roles follow the pool's ``activation``: ``always`` (primary), ``on-primary-failure`` (failover: servers with
``for`` naming the server they back up, kept warm and used when it fails) and ``on-demand`` (project-specific:
on only where the project's mode lists the server or ``projects`` names the project or its mode).
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Literal

from ultramax.config import Problem
from ultramax.errors import ConfigError, json_problem
from ultramax.paths import Paths
from ultramax.redact import redact, redact_argv

__all__ = [
    "DEFAULT_STARTUP_TIMEOUT_MS",
    "NAME_SEPARATOR",
    "ActiveSet",
    "PoolConfig",
    "PoolSpec",
    "RoutingRule",
    "ServerSpec",
    "expand_vars",
    "load_pool_config",
    "parse_pool_document",
    "pool_files",
    "user_pools_dir",
]

Strategy = Literal["round-robin", "priority", "manual"]
Activation = Literal["always", "on-primary-failure", "on-demand"]
Transport = Literal["stdio", "http"]

DEFAULT_STARTUP_TIMEOUT_MS = 30000
"""How long a server has, from its start, to answer the handshake and list what it offers (``startup_timeout_ms``):
Claude Code's own default (``MCP_TIMEOUT``), so a server that starts under Claude Code starts behind the gateway
(a first ``npx``/``uvx`` run fetching a package is not killed mid-download); the first listing does not wait
that long for it (``GatewayOptions.startup_wait_s``)."""

NAME_SEPARATOR = "__"
"""Between a server's name and its tool's name in the gateway's namespaced tool names (``memory__read_graph``)."""

STRATEGIES: tuple[str, ...] = ("round-robin", "priority", "manual")
ACTIVATIONS: tuple[str, ...] = ("always", "on-primary-failure", "on-demand")
_DEFAULT_ACTIVATION = {"failover": "on-primary-failure", "project-specific": "on-demand"}
_DEFAULT_STRATEGY = {"failover": "priority", "project-specific": "manual"}

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,47}$")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

_TOP_KEYS = ("version", "description", "pools", "routing")
_POOL_KEYS = (
    "strategy",
    "activation",
    "description",
    "health_check_interval_ms",
    "timeout_ms",
    "startup_timeout_ms",
    "failure_threshold",
    "degraded_latency_ms",
    "servers",
)
_SERVER_KEYS = (
    "type",
    "command",
    "args",
    "env",
    "cwd",
    "url",
    "headers",
    "priority",
    "disabled",
    "projects",
    "for",
    "replicas",
    "retry_safe",
    "description",
    "health_endpoint",
    "timeout_ms",
    "startup_timeout_ms",
    "protocol",
)
_RULE_KEYS = ("pattern", "servers", "require_safety_check", "retry_safe", "description")


@dataclass(frozen=True, slots=True)
class PoolSpec:
    """One pool: how its servers are chosen and checked."""

    name: str
    file: str
    strategy: Strategy = "round-robin"
    activation: Activation = "always"
    health_check_interval_ms: int = 5000
    timeout_ms: int = 10000
    startup_timeout_ms: int = DEFAULT_STARTUP_TIMEOUT_MS
    failure_threshold: int = 3
    degraded_latency_ms: int = 1000
    description: str = ""


@dataclass(frozen=True, slots=True)
class ServerSpec:
    """One configured MCP server (one process per replica)."""

    name: str
    pool: PoolSpec
    transport: Transport = "stdio"
    command: str = ""
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    url: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    priority: int = 1
    disabled: bool = False
    projects: tuple[str, ...] = ()
    backup_for: str | None = None
    replicas: int = 1
    retry_all: bool = False
    retry_tools: tuple[str, ...] = ()
    description: str = ""
    timeout_ms: int | None = None
    startup_timeout_ms: int | None = None  # None: the pool's
    project_scoped: bool = False
    protocol: str = "auto"  # "auto" (server/discover, else the handshake) or "legacy" (the handshake, and the
    # gateway relays the server's sampling / elicitation requests to the caller)

    @property
    def file(self) -> str:
        return self.pool.file

    @property
    def call_timeout_s(self) -> float:
        return (self.timeout_ms or self.pool.timeout_ms) / 1000

    @property
    def probe_timeout_s(self) -> float:
        return self.pool.timeout_ms / 1000

    @property
    def startup_timeout_s(self) -> float:
        """How long a start may take (handshake and first listing) before it counts as failed."""
        return (self.startup_timeout_ms or self.pool.startup_timeout_ms) / 1000

    @property
    def interval_s(self) -> float:
        return self.pool.health_check_interval_ms / 1000

    def retry_safe(self, tool: str) -> bool:
        """Whether the configuration marks ``tool`` safe to retry on another server (beyond readOnlyHint)."""
        return self.retry_all or any(fnmatchcase(tool, p) for p in self.retry_tools)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "pool": self.pool.name,
            "file": self.file,
            "transport": self.transport,
            "activation": self.pool.activation,
            "strategy": self.pool.strategy,
            "priority": self.priority,
            "replicas": self.replicas,
        }
        # printed by `mcp list`: arguments and URLs can carry a password or a token (--dsn postgres://u:pw@...)
        if self.transport == "stdio":
            out["command"] = redact_argv([self.command, *self.args])
        else:
            out["url"] = redact(self.url)
        if self.backup_for:
            out["for"] = self.backup_for
        if self.projects:
            out["projects"] = list(self.projects)
        if self.disabled:
            out["disabled"] = True
        if self.description:
            out["description"] = self.description
        return out


@dataclass(frozen=True, slots=True)
class RoutingRule:
    """Calls matching ``pattern`` are served by ``servers`` (in order), optionally through the safety gate.

    A pattern ``category:tool-glob`` (the seed's ``file:*``, ``trade:*``) matches the tools of the rule's own
    servers whose names match the glob, and also ``server:tool`` when the part before ``:`` names (or globs)
    the server. A pattern without ``:`` matches the bare tool name or the namespaced ``server__tool``.
    """

    pattern: str
    servers: tuple[str, ...]
    require_safety_check: bool = False
    retry_safe: bool | None = None
    file: str = ""
    index: int = 0

    def matches(self, server: str, tool: str) -> bool:
        if ":" in self.pattern:
            prefix, tool_glob = self.pattern.split(":", 1)
            if not fnmatchcase(tool, tool_glob):
                return False
            return server in self.servers or fnmatchcase(server, prefix)
        return fnmatchcase(tool, self.pattern) or fnmatchcase(f"{server}{NAME_SEPARATOR}{tool}", self.pattern)

    def route(self, server: str, tool: str) -> tuple[str, ...] | None:
        """The servers a matching call goes to, or None when the call stays with its own server (and backups).

        A category match (the call's server is one of the rule's) keeps the call where it is addressed -- the
        rule then only groups and gates; an explicit match (``server:tool`` glob, bare tool glob) sends the call
        to the rule's servers.
        """
        if not self.servers or not self.matches(server, tool):
            return None
        if ":" in self.pattern and not fnmatchcase(server, self.pattern.split(":", 1)[0]):
            return None
        return self.servers

    def to_dict(self) -> dict[str, Any]:
        return {
            "pattern": self.pattern,
            "servers": list(self.servers),
            "require_safety_check": self.require_safety_check,
            "file": self.file,
        }


@dataclass(frozen=True, slots=True)
class ActiveSet:
    """What runs for one project: the servers in use and why each of the others is off."""

    servers: tuple[ServerSpec, ...]
    inactive: Mapping[str, str]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.servers)


@dataclass(slots=True)
class PoolConfig:
    """Every pools file read, merged: servers by name, pools, routing rules and what was wrong."""

    servers: dict[str, ServerSpec] = field(default_factory=dict)
    pools: dict[str, PoolSpec] = field(default_factory=dict)
    rules: list[RoutingRule] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    def raise_for_errors(self) -> None:
        if self.errors:
            raise ConfigError("invalid MCP pool configuration:\n  " + "\n  ".join(str(p) for p in self.errors))

    def backups_for(self, name: str) -> list[ServerSpec]:
        """The failover servers configured ``for`` ``name``, best first."""
        found = [s for s in self.servers.values() if s.backup_for == name]
        return sorted(found, key=lambda s: (s.priority, s.name))

    def rule_for(self, server: str, tool: str) -> RoutingRule | None:
        """The first routing rule matching the tool (rules are tried in file order)."""
        return next((r for r in self.rules if r.matches(server, tool)), None)

    def safety_rule(self, server: str, tool: str, servers: Iterable[str]) -> RoutingRule | None:
        """The rule that puts this call through the safety gate, if any: a ``require_safety_check`` rule that
        matches the call, or one that routes to a server the call may land on (a backup counts for its primary).
        Whatever other rule routed the call, landing on a gated server never skips the gate."""
        landing = set(servers)
        landing |= {s.backup_for for n in landing if (s := self.servers.get(n)) is not None and s.backup_for}
        for rule in self.rules:
            if rule.require_safety_check and (rule.matches(server, tool) or landing & set(rule.servers)):
                return rule
        return None

    def active(self, *, project_dir: Path | None, mode: str | None, mode_servers: Iterable[str] = ()) -> ActiveSet:
        """The servers that run for this project and mode, and the reason each other server is off.

        Primary servers run unless disabled or limited by ``projects`` to other projects; project-specific
        (on-demand) ones run where the mode lists them (``ultramax.mcpServers``) or ``projects`` names the
        project directory or the mode; failover servers run (warm) whenever the server they back up runs.
        """
        listed = set(mode_servers)
        words = {w for w in (mode, project_dir.name if project_dir else None) if w}
        active: dict[str, ServerSpec] = {}
        inactive: dict[str, str] = {}
        for spec in self.servers.values():
            if spec.backup_for:
                continue
            matched = bool(words & set(spec.projects))
            if spec.project_scoped:
                active[spec.name] = spec
            elif spec.pool.activation == "on-demand":
                if spec.name in listed or matched:
                    active[spec.name] = spec
                else:
                    inactive[spec.name] = f"project-specific: not in mode {mode or '-'}'s servers" + (
                        f" and projects {list(spec.projects)} do not name this project" if spec.projects else ""
                    )
            elif spec.disabled:
                inactive[spec.name] = "disabled"
            elif spec.projects and not matched:
                inactive[spec.name] = f"only for projects {list(spec.projects)}"
            else:
                active[spec.name] = spec
        for spec in self.servers.values():
            if not spec.backup_for:
                continue
            if spec.backup_for in active and not spec.disabled:
                active[spec.name] = spec
            else:
                inactive[spec.name] = "disabled" if spec.disabled else f"backs up {spec.backup_for}, which is off"
        return ActiveSet(tuple(active.values()), inactive)


# -- loading ------------------------------------------------------------------------------------------------
def user_pools_dir(paths: Paths) -> Path:
    """``~/.claude/mcp/pools`` (under ``CLAUDE_CONFIG_DIR`` when set)."""
    return paths.claude_dir / "mcp" / "pools"


def project_pools_dir(project_dir: Path) -> Path:
    return project_dir / ".claude" / "mcp" / "pools"


def pool_files(paths: Paths, project_dir: Path | None = None) -> list[tuple[Path, bool]]:
    """(file, belongs to the project) for every pools file, user files first, each directory sorted by name."""
    found = [(f, False) for f in sorted(user_pools_dir(paths).glob("*.json"))]
    if project_dir is not None:
        found += [(f, True) for f in sorted(project_pools_dir(project_dir).glob("*.json"))]
    return found


def load_pool_config(
    paths: Paths, project_dir: Path | None = None, *, files: Iterable[Path] | None = None
) -> PoolConfig:
    """Read and validate the pools files (or exactly ``files``) into one configuration. Never raises for content."""
    config = PoolConfig()
    chosen = [(Path(f), False) for f in files] if files is not None else pool_files(paths, project_dir)
    for path, project_scoped in chosen:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            config.errors.append(Problem(str(path), "", f"cannot read ({exc.strerror or exc})"))
            continue
        try:
            data = json.loads(raw.decode("utf-8")) if raw.strip() else {}
        except UnicodeDecodeError:
            config.errors.append(Problem(str(path), "", "not UTF-8 text"))
            continue
        except json.JSONDecodeError as exc:
            config.errors.append(Problem(str(path), "", f"not valid JSON ({json_problem(exc)})"))
            continue
        config.files.append(path)
        parse_pool_document(data, str(path), config, project_scoped=project_scoped)
    _check_references(config)
    return config


def parse_pool_document(data: Any, file: str, config: PoolConfig, *, project_scoped: bool = False) -> None:
    """Validate one pools document and add what is valid in it to ``config``."""
    if not isinstance(data, dict):
        config.errors.append(Problem(file, "", f"must be a JSON object, got {_json_type(data)}"))
        return
    _unknown_keys(data, _TOP_KEYS, _Loc(file, "", config))
    version = data.get("version")
    if version is not None and not isinstance(version, str):
        config.errors.append(Problem(file, "version", f"must be a string, got {_short(version)}"))
    pools = data.get("pools", {})
    if not isinstance(pools, dict):
        config.errors.append(Problem(file, "pools", f"must be an object of pools, got {_json_type(pools)}"))
        pools = {}
    for pool_name, body in pools.items():
        _parse_pool(str(pool_name), body, _Loc(file, "", config), project_scoped)
    routing = data.get("routing", {})
    if not isinstance(routing, dict):
        config.errors.append(Problem(file, "routing", f"must be an object, got {_json_type(routing)}"))
        return
    _unknown_keys(routing, ("rules",), _Loc(file, "routing", config))
    rules = routing.get("rules", [])
    if not isinstance(rules, list):
        config.errors.append(Problem(file, "routing.rules", f"must be an array, got {_json_type(rules)}"))
        return
    for i, body in enumerate(rules):
        rule = _parse_rule(body, _Loc(file, f"routing.rules[{i}]", config), i)
        if rule is not None:
            config.rules.append(rule)


def _parse_pool(name: str, body: Any, at: _Loc, project_scoped: bool) -> None:
    file, config = at.file, at.config
    key = f"pools.{name}"
    here = _Loc(file, key, config)
    if not isinstance(body, dict):
        config.errors.append(Problem(file, key, f"must be an object, got {_json_type(body)}"))
        return
    _unknown_keys(body, _POOL_KEYS, here)
    strategy = _choice(body, "strategy", STRATEGIES, _DEFAULT_STRATEGY.get(name, "round-robin"), here)
    activation = _choice(body, "activation", ACTIVATIONS, _DEFAULT_ACTIVATION.get(name, "always"), here)
    interval = _int(body, "health_check_interval_ms", 5000, here, minimum=100)
    timeout = _int(body, "timeout_ms", 10000, here, minimum=100)
    startup = _int(body, "startup_timeout_ms", DEFAULT_STARTUP_TIMEOUT_MS, here, minimum=100, maximum=600000)
    threshold = _int(body, "failure_threshold", 3, here, minimum=1)
    degraded = _int(body, "degraded_latency_ms", 1000, here, minimum=1)
    description = _str(body, "description", "", here)
    pool = PoolSpec(  # a bad pool-level value is reported and replaced by its default: the servers still load
        name=name,
        file=file,
        strategy=strategy,  # type: ignore[arg-type]
        activation=activation,  # type: ignore[arg-type]
        health_check_interval_ms=interval,
        timeout_ms=timeout,
        startup_timeout_ms=startup,
        failure_threshold=threshold,
        degraded_latency_ms=degraded,
        description=description,
    )
    if name in config.pools and config.pools[name].file != file:
        name_key = f"{name}@{file}"
        config.pools[name_key] = pool
    else:
        config.pools[name] = pool
    servers = body.get("servers", {})
    if not isinstance(servers, dict):
        config.errors.append(Problem(file, f"{key}.servers", f"must be an object, got {_json_type(servers)}"))
        return
    if not servers:
        config.warnings.append(Problem(file, f"{key}.servers", "no servers in this pool"))
    for server_name, server_body in servers.items():
        spec = _parse_server(str(server_name), server_body, pool, _Loc(file, f"{key}.servers.{server_name}", config))
        if spec is None:
            continue
        if project_scoped:
            spec = replace(spec, project_scoped=True)
        existing = config.servers.get(spec.name)
        if existing is not None:
            config.errors.append(
                Problem(file, f"{key}.servers.{spec.name}", f"server name already defined in {existing.file} "
                        f"(pools.{existing.pool.name}); server names must be unique across all pools files")
            )  # fmt: skip
            continue
        config.servers[spec.name] = spec


def _parse_server(name: str, body: Any, pool: PoolSpec, at: _Loc) -> ServerSpec | None:
    key, file, config = at.key, at.file, at.config
    if not isinstance(body, dict):
        config.errors.append(Problem(file, key, f"must be an object, got {_json_type(body)}"))
        return None
    bad = len(config.errors)
    if not _NAME.match(name) or NAME_SEPARATOR in name:
        config.errors.append(
            Problem(file, key, f"server name {name!r} must be 1-48 letters, digits, '.', '_' or '-', start with a "
                    f"letter or digit and not contain {NAME_SEPARATOR!r} (the gateway's namespace separator)")
        )  # fmt: skip
    _unknown_keys(body, _SERVER_KEYS, at)
    kind = _choice(body, "type", ("stdio", "http", "streamable-http"), "", at)
    command = _str(body, "command", "", at)
    url = _str(body, "url", "", at)
    transport: Transport = "http" if kind in ("http", "streamable-http") or (url and not kind) else "stdio"
    if transport == "stdio" and not command:
        config.errors.append(Problem(file, f"{key}.command", "required for a stdio server (or give type http and url)"))
    if transport == "http" and not url:
        config.errors.append(Problem(file, f"{key}.url", "required for an http server"))
    if transport == "http" and url and not re.match(r"^(https?://|\$\{)", url):
        config.errors.append(Problem(file, f"{key}.url", f"must be an http(s) URL, got {url!r}"))
    args = _str_list(body, "args", at)
    env = _str_map(body, "env", at)
    headers = _str_map(body, "headers", at)
    cwd = _str(body, "cwd", "", at) or None
    priority = _int(body, "priority", 1, at, minimum=0)
    disabled = _bool(body, "disabled", False, at)
    projects = _str_list(body, "projects", at)
    backup_for = _str(body, "for", "", at) or None
    replicas = _int(body, "replicas", 1, at, minimum=1, maximum=16)
    description = _str(body, "description", "", at)
    timeout = _int(body, "timeout_ms", 0, at, minimum=0) or None
    startup = None
    if "startup_timeout_ms" in body:  # else the pool's
        startup = _int(body, "startup_timeout_ms", 0, at, minimum=100, maximum=600000) or None
    protocol = _choice(body, "protocol", ("auto", "legacy"), "auto", at)
    retry_all, retry_tools = False, ()
    retry = body.get("retry_safe")
    if isinstance(retry, bool):
        retry_all = retry
    elif isinstance(retry, list) and all(isinstance(t, str) for t in retry):
        retry_tools = tuple(retry)
    elif retry is not None:
        config.errors.append(
            Problem(file, f"{key}.retry_safe", f"must be true/false or an array of tool globs, got {_short(retry)}")
        )
    if body.get("health_endpoint") is not None:
        config.warnings.append(
            Problem(file, f"{key}.health_endpoint", "ignored: health is checked with MCP requests (ping, tools/list)")
        )
    if backup_for and pool.activation != "on-primary-failure":
        config.warnings.append(
            Problem(file, f"{key}.for", f"pool {pool.name} has activation {pool.activation}; the server is still "
                    "used as a backup only")
        )  # fmt: skip
    if pool.activation == "on-primary-failure" and not backup_for:
        config.errors.append(Problem(file, f"{key}.for", "required in a failover pool: the server this one backs up"))
    for field_key, value in (("command", command), ("url", url), ("cwd", cwd or "")):
        _check_vars(value, _Loc(file, f"{key}.{field_key}", config))
    for i, arg in enumerate(args):
        _check_vars(arg, _Loc(file, f"{key}.args[{i}]", config))
    for env_key, value in {**env, **headers}.items():
        _check_vars(value, _Loc(file, f"{key}.{'env' if env_key in env else 'headers'}.{env_key}", config))
    if len(config.errors) > bad:
        return None
    return ServerSpec(
        name=name,
        pool=pool,
        transport=transport,
        command=command,
        args=tuple(args),
        env=env,
        cwd=cwd,
        url=url,
        headers=headers,
        priority=priority,
        disabled=disabled,
        projects=tuple(projects),
        backup_for=backup_for,
        replicas=replicas,
        retry_all=retry_all,
        retry_tools=retry_tools,
        description=description,
        timeout_ms=timeout,
        startup_timeout_ms=startup,
        protocol=protocol,
    )


def _parse_rule(body: Any, at: _Loc, index: int) -> RoutingRule | None:
    key, file, config = at.key, at.file, at.config
    if not isinstance(body, dict):
        config.errors.append(Problem(file, key, f"must be an object, got {_json_type(body)}"))
        return None
    bad = len(config.errors)
    _unknown_keys(body, _RULE_KEYS, at)
    pattern = _str(body, "pattern", "", at)
    if not pattern:
        config.errors.append(Problem(file, f"{key}.pattern", "required: a glob over server:tool or a tool name"))
    servers = _str_list(body, "servers", at)
    safety = _bool(body, "require_safety_check", False, at)
    retry = body.get("retry_safe")
    if retry is not None and not isinstance(retry, bool):
        config.errors.append(Problem(file, f"{key}.retry_safe", f"must be true or false, got {_short(retry)}"))
    if len(config.errors) > bad:
        return None
    return RoutingRule(pattern, tuple(servers), safety, retry, file, index)


def _check_references(config: PoolConfig) -> None:
    """Cross-file checks: backups name real servers, rules name real servers and can match something."""
    for spec in list(config.servers.values()):
        if spec.backup_for is None:
            continue
        target = config.servers.get(spec.backup_for)
        key = f"pools.{spec.pool.name}.servers.{spec.name}.for"
        if target is None:
            config.errors.append(Problem(spec.file, key, f"names no configured server: {spec.backup_for!r}"
                                         + _suggest(spec.backup_for, config.servers)))  # fmt: skip
            del config.servers[spec.name]
        elif target.backup_for is not None:
            config.errors.append(Problem(spec.file, key, f"{spec.backup_for!r} is itself a backup; back up the "
                                         "primary server instead"))  # fmt: skip
            del config.servers[spec.name]
    for rule in config.rules:
        key = f"routing.rules[{rule.index}]"
        for name in rule.servers:
            if name not in config.servers:
                config.errors.append(Problem(rule.file, f"{key}.servers", f"names no configured server: {name!r}"
                                             + _suggest(name, config.servers)))  # fmt: skip
        prefix = rule.pattern.split(":", 1)[0] if ":" in rule.pattern else None
        if prefix is not None and not rule.servers and not any(fnmatchcase(n, prefix) for n in config.servers):
            severity = config.errors if rule.require_safety_check else config.warnings
            severity.append(
                Problem(rule.file, f"{key}.pattern", f"{rule.pattern!r} names no configured server and the rule "
                        "lists no servers, so it matches nothing; add \"servers\" or use <server>:<tool-glob>")
            )  # fmt: skip


# -- ${VAR} expansion ------------------------------------------------------------------------------------------
def expand_vars(value: str, env: Mapping[str, str] | None = None) -> tuple[str, list[str]]:
    """Expand ``${VAR}`` / ``${VAR:-default}``; returns the text and the names that were unset (kept literally)."""
    source = os.environ if env is None else env
    missing: list[str] = []

    def sub(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in source:
            return source[name]
        if default is not None:
            return default
        missing.append(name)
        return match.group(0)

    return _VAR.sub(sub, value), missing


def _check_vars(value: str, at: _Loc) -> None:
    if "$" not in value:
        return
    for match in _VAR.finditer(value):
        if match.group(1) not in os.environ and match.group(2) is None:
            at.config.warnings.append(
                Problem(at.file, at.key, f"${{{match.group(1)}}} is not set in this environment; it is passed "
                        f"literally unless set when the gateway starts (or write ${{{match.group(1)}:-default}})")
            )  # fmt: skip
    if "${" in _VAR.sub("", value):
        at.error("", f"malformed variable reference in {value!r}; use ${{NAME}} or ${{NAME:-default}}")


# -- small typed readers -----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Loc:
    """Where a value sits: the file, the dotted key of its parent, and the configuration collecting problems."""

    file: str
    key: str
    config: PoolConfig

    def error(self, k: str, message: str) -> None:
        where = ".".join(p for p in (self.key, k) if p)
        self.config.errors.append(Problem(self.file, where, message))


def _unknown_keys(body: Mapping[str, Any], known: tuple[str, ...], at: _Loc) -> None:
    for k in body:
        if k not in known:
            at.error(str(k), "unknown key" + _suggest(str(k), known))


def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _choice(body: Mapping[str, Any], k: str, choices: tuple[str, ...], default: str, at: _Loc) -> str:
    value = body.get(k, default)
    if value == default:
        return default
    if not isinstance(value, str) or value not in choices:
        at.error(k, f"must be one of {', '.join(choices)}; got {_short(value)}")
        return default
    return value


def _int(body: Mapping[str, Any], k: str, default: int, at: _Loc, *, minimum: int | None = None,
         maximum: int | None = None) -> int:  # fmt: skip
    value = body.get(k, default)
    if not isinstance(value, int) or isinstance(value, bool):
        at.error(k, f"must be an integer, got {_short(value)}")
        return default
    if minimum is not None and value < minimum:
        at.error(k, f"must be at least {minimum}, got {value}")
        return default
    if maximum is not None and value > maximum:
        at.error(k, f"must be at most {maximum}, got {value}")
        return default
    return value


def _bool(body: Mapping[str, Any], k: str, default: bool, at: _Loc) -> bool:
    value = body.get(k, default)
    if not isinstance(value, bool):
        at.error(k, f"must be true or false, got {_short(value)}")
        return default
    return value


def _str(body: Mapping[str, Any], k: str, default: str, at: _Loc) -> str:
    value = body.get(k, default)
    if value is None:
        return default
    if not isinstance(value, str):
        at.error(k, f"must be a string, got {_short(value)}")
        return default
    return value


def _str_list(body: Mapping[str, Any], k: str, at: _Loc) -> list[str]:
    value = body.get(k, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        at.error(k, f"must be an array of strings, got {_short(value)}")
        return []
    return list(value)


def _str_map(body: Mapping[str, Any], k: str, at: _Loc) -> dict[str, str]:
    value = body.get(k, {})
    if not isinstance(value, dict):
        at.error(k, f"must be an object of strings, got {_short(value)}")
        return {}
    out: dict[str, str] = {}
    for name, v in value.items():
        if not isinstance(v, str):
            at.error(f"{k}.{name}", f"must be a string, got {_short(v)}")
            continue
        out[str(name)] = v
    return out


def _json_type(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."
