"""Bring Claude Code's own MCP servers into pools, and make the gateway the project's one MCP entry.

Claude Code keeps servers in three scopes (``claude mcp add --scope``): ``local`` (``~/.claude.json`` under
``projects[<path>].mcpServers``), ``project`` (``.mcp.json`` in the project) and ``user`` (``~/.claude.json`` at
the top level); for one name, local beats project beats user. Stdio and HTTP servers convert to pool entries
(``${VAR}`` references are kept: the pools expand them the same way); SSE and WebSocket servers cannot be
pooled and stay registered with Claude Code directly.

``activate`` moves the project's ``.mcp.json`` servers into ``.claude/mcp/pools/imported.json`` and rewrites
``.mcp.json`` to hold the gateway (plus anything that could not be pooled), after a private backup of the old
file. A file that is not valid JSON is never rewritten.
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from ultramax.errors import ConfigError, json_problem
from ultramax.fsutil import atomic_write_json, private_dir
from ultramax.mcp.config import NAME_SEPARATOR, project_pools_dir, user_pools_dir
from ultramax.paths import Paths

__all__ = [
    "GATEWAY_NAME",
    "ActivationResult",
    "ImportedServer",
    "activate",
    "claude_code_servers",
    "claude_json_path",
    "convert_entry",
    "gateway_entry",
    "import_servers",
    "is_gateway_entry",
]

Scope = Literal["local", "project", "user"]
GATEWAY_NAME = "ultramax"


@dataclass(frozen=True, slots=True)
class ImportedServer:
    """One server found in Claude Code's configuration."""

    name: str
    scope: Scope
    source: str
    entry: dict[str, Any]
    shadowed_by: Scope | None = None


@dataclass(slots=True)
class ActivationResult:
    mcp_json: Path
    pools_file: Path | None = None
    backup: Path | None = None
    imported: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    changed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "mcp_json": str(self.mcp_json),
            "pools_file": str(self.pools_file) if self.pools_file else None,
            "backup": str(self.backup) if self.backup else None,
            "imported": self.imported,
            "kept": self.kept,
            "notes": self.notes,
            "changed": self.changed,
        }


def claude_json_path(paths: Paths) -> Path:
    """``~/.claude.json`` (inside ``CLAUDE_CONFIG_DIR`` when that is set)."""
    if paths.claude_dir.name == ".claude":
        return paths.claude_dir.parent / ".claude.json"
    return paths.claude_dir / ".claude.json"


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from exc
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON ({json_problem(exc)}); "
                          "fix it by hand -- ultramax never rewrites a file it cannot parse") from exc  # fmt: skip
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must be a JSON object")
    return data


def _servers_of(data: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    servers = (data or {}).get("mcpServers")
    if not isinstance(servers, dict):
        return {}
    return {str(k): v for k, v in servers.items() if isinstance(v, dict)}


def claude_code_servers(paths: Paths, project_dir: Path | None) -> list[ImportedServer]:
    """Every MCP server Claude Code would load for ``project_dir``, with the scope that wins for each name."""
    found: list[ImportedServer] = []
    claude_json = claude_json_path(paths)
    user_data = _read_json(claude_json)
    local: dict[str, dict[str, Any]] = {}
    if project_dir is not None and user_data:
        projects = user_data.get("projects")
        if isinstance(projects, dict):
            local = _servers_of(projects.get(str(project_dir)))
    project: dict[str, dict[str, Any]] = {}
    if project_dir is not None:
        project = _servers_of(_read_json(project_dir / ".mcp.json"))
    scopes: list[tuple[Scope, str, dict[str, dict[str, Any]]]] = [
        ("local", str(claude_json), local),
        ("project", str(project_dir / ".mcp.json") if project_dir else "", project),
        ("user", str(claude_json), _servers_of(user_data)),
    ]
    winners: dict[str, Scope] = {}
    for scope, source, servers in scopes:
        for name, entry in servers.items():
            winner = winners.setdefault(name, scope)
            found.append(ImportedServer(name, scope, source, entry, None if winner == scope else winner))
    return found


def convert_entry(entry: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """A Claude Code server entry as a pool server, or (None, why it cannot be pooled)."""
    kind = entry.get("type", "stdio" if "command" in entry else None)
    if kind == "stdio":
        command = entry.get("command")
        if not isinstance(command, str) or not command:
            return None, "stdio entry without a command"
        out: dict[str, Any] = {"command": command}
        args, env = entry.get("args"), entry.get("env")
        if args is not None and not isinstance(args, list):
            return None, f"args must be an array of strings, got {type(args).__name__}"  # a string is not split
        if env is not None and not isinstance(env, dict):
            return None, f"env must be an object of NAME: value, got {type(env).__name__}"
        if args:
            out["args"] = [str(a) for a in args]
        if env:
            out["env"] = {str(k): str(v) for k, v in env.items()}
        if entry.get("cwd"):
            out["cwd"] = str(entry["cwd"])
        if isinstance(entry.get("timeout"), int) and entry["timeout"] >= 1000:
            out["timeout_ms"] = entry["timeout"]
        return out, None
    if kind in ("http", "streamable-http"):
        url = entry.get("url")
        if not isinstance(url, str) or not url:
            return None, "http entry without a url"
        out = {"type": "http", "url": url}
        headers = entry.get("headers")
        if headers is not None and not isinstance(headers, dict):
            return None, f"headers must be an object, got {type(headers).__name__}"
        if headers:
            out["headers"] = {str(k): str(v) for k, v in headers.items()}
        if entry.get("headersHelper") or entry.get("oauth"):
            return None, "uses headersHelper/oauth, which the gateway cannot run; left with Claude Code"
        return out, None
    return None, f"type {kind!r} cannot be pooled (stdio and http can); left with Claude Code"


def gateway_entry(python: Path | None = None) -> dict[str, Any]:
    """The ``.mcp.json`` entry that runs the gateway with this interpreter (absolute path: no PATH shims)."""
    interpreter = python or Path(sys.executable)
    interpreter = interpreter if interpreter.is_absolute() else interpreter.absolute()
    return {"type": "stdio", "command": str(interpreter), "args": ["-m", "ultramax.cli.main", "mcp", "serve"]}


def is_gateway_entry(entry: dict[str, Any]) -> bool:
    args = [str(a) for a in entry.get("args") or []]
    text = " ".join([str(entry.get("command", "")), *args])
    return "mcp" in args and "serve" in args and "ultramax" in text


def _pool_file_servers(path: Path) -> dict[str, Any]:
    data = _read_json(path) or {}
    pools = data.get("pools") if isinstance(data.get("pools"), dict) else {}
    primary = (pools or {}).get("primary") if isinstance((pools or {}).get("primary"), dict) else {}
    servers = (primary or {}).get("servers")
    return dict(servers) if isinstance(servers, dict) else {}


def _write_pool_file(path: Path, servers: dict[str, Any], note: str, backups: Path | None = None) -> None:
    """Set the servers of the file's primary pool, keeping everything else the user put there (routing rules
    with their safety checks, other pools, health settings); the file as it was is backed up first."""
    data = _read_json(path)  # a file that does not parse is refused, never rewritten
    if data is None:
        data = {"version": "8.0", "description": note}
    pools = data.get("pools")
    if not isinstance(pools, dict):
        pools = data["pools"] = {}
    primary = pools.get("primary")
    if not isinstance(primary, dict):
        primary = pools["primary"] = {"strategy": "priority"}
    if primary.get("servers") == servers:
        return
    primary["servers"] = servers
    if backups is not None and path.exists():
        private_dir(backups)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        backup = backups / f"{path.parent.parent.name}-{path.name}.{stamp}"
        shutil.copy2(path, backup)
        backup.chmod(0o600)
    # the servers' env and headers carry their tokens, copied from ~/.claude.json (which Claude Code keeps 0600)
    # or .mcp.json: the pool file is the user's alone, like the file they came from
    private_dir(path.parent)
    atomic_write_json(path, data, mode=0o600)


def import_servers(
    paths: Paths, project_dir: Path | None, *, scopes: tuple[Scope, ...] = ("user", "local")
) -> ActivationResult:
    """Copy Claude Code's user/local-scope servers into ``~/.claude/mcp/pools/imported.json`` (Claude Code's own
    files are left alone: remove the originals with ``claude mcp remove`` once the gateway serves them)."""
    target = user_pools_dir(paths) / "imported.json"
    result = ActivationResult(mcp_json=claude_json_path(paths), pools_file=target)
    existing = _pool_file_servers(target)
    servers = dict(existing)
    for found in claude_code_servers(paths, project_dir):
        if found.scope not in scopes or is_gateway_entry(found.entry):
            continue
        if found.shadowed_by is not None:
            result.notes.append(f"{found.name} ({found.scope}): shadowed by the {found.shadowed_by} entry; skipped")
            continue
        converted, why = convert_entry(found.entry)
        if converted is None:
            result.kept.append(found.name)
            result.notes.append(f"{found.name}: {why}")
            continue
        if NAME_SEPARATOR in found.name:
            result.notes.append(f"{found.name}: names may not contain {NAME_SEPARATOR!r}; skipped")
            continue
        if found.scope == "local" and project_dir is not None:
            converted["projects"] = [project_dir.name]
        if found.name in servers and servers[found.name] != converted:
            result.notes.append(f"{found.name}: already in {target} with other settings; kept the pool's")
            continue
        servers[found.name] = converted
        result.imported.append(found.name)
    if servers != existing:
        _write_pool_file(
            target, servers, "Imported from Claude Code's configuration by `ultramax mcp import`.", paths.backups_dir
        )
        result.changed = True
    return result


def activate(paths: Paths, project_dir: Path, *, python: Path | None = None, dry_run: bool = False) -> ActivationResult:
    """Pool the project's ``.mcp.json`` servers and register the gateway as its MCP entry."""
    mcp_json = project_dir / ".mcp.json"
    data = _read_json(mcp_json)
    servers = _servers_of(data)
    result = ActivationResult(mcp_json=mcp_json)
    pools_file = project_pools_dir(project_dir) / "imported.json"
    pooled = _pool_file_servers(pools_file)
    new_pooled = dict(pooled)
    new_entries: dict[str, Any] = {}
    for name, entry in servers.items():
        if is_gateway_entry(entry):
            continue
        converted, why = convert_entry(entry)
        if converted is None or NAME_SEPARATOR in name:
            new_entries[name] = entry
            result.kept.append(name)
            result.notes.append(f"{name}: {why or f'names may not contain {NAME_SEPARATOR!r}'}")
            continue
        if name in new_pooled and new_pooled[name] != converted:
            result.notes.append(f"{name}: already pooled in {pools_file} with other settings; kept the pool's")
        else:
            new_pooled[name] = converted
        result.imported.append(name)
    new_entries[GATEWAY_NAME] = gateway_entry(python)
    new_data = {**(data or {}), "mcpServers": new_entries}
    for found in claude_code_servers(paths, project_dir):
        if found.scope != "project" and found.shadowed_by is None and not is_gateway_entry(found.entry):
            result.notes.append(
                f"{found.name} is registered in Claude Code's {found.scope} scope and still loads directly; "
                "`ultramax mcp import` pools it, then `claude mcp remove` it"
            )
    if new_pooled != pooled:
        result.pools_file = pools_file
    result.changed = new_data != data or new_pooled != pooled
    if dry_run or not result.changed:
        return result
    if new_pooled != pooled:
        _write_pool_file(
            pools_file,
            new_pooled,
            "Imported from the project's .mcp.json by `ultramax mcp activate`.",
            paths.backups_dir,
        )
    if data is not None and new_data != data:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        backup = paths.backups_dir / f"mcp.json.{project_dir.name}.{stamp}"
        private_dir(backup.parent)
        backup.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        backup.chmod(0o600)
        result.backup = backup
    if new_data != data:
        atomic_write_json(mcp_json, new_data)
    return result
