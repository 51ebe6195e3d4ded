"""Layer 15, execution isolation: trading is forced to paper, and risky shell work is put to the user.

The Alpaca server picks live or paper from ``ALPACA_PAPER_TRADE`` in *its* environment, and any value but
true/1/yes (case-insensitive) means live -- a typo, ``on``, a stray space, an unset variable it inherits. The
layer reads the environment the server will run with (the MCP gateway passes it; else the server's ``env``
in Claude Code's scopes: local in ``~/.claude.json``, the project's ``.mcp.json``, user in ``~/.claude.json``)
and refuses every write unless it proves paper, unless the user chose ``safety.tradingMode: live`` (then
the confirmation gate puts every order to the user). In trading mode, shell commands that call the live
trading endpoint directly or set ``ALPACA_PAPER_TRADE`` to a live value are refused, and commands that ask to
run outside Claude Code's sandbox (``dangerouslyDisableSandbox``) are put to the user.
"""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ultramax.safety.engine import LayerVerdict, SafetyRequest
from ultramax.safety.layers_core import failure, verdict
from ultramax.safety.mcp_risk import classify

__all__ = ["PAPER_VALUES", "ExecutionIsolationLayer", "paper_value", "server_env"]

PAPER_VALUES = ("true", "1", "yes")  # alpaca-mcp-server v2: paper = value.lower() in these; all else is live


def paper_value(value: str | None) -> bool:
    """Whether the Alpaca server treats this ``ALPACA_PAPER_TRADE`` value as paper (v2 semantics)."""
    return value is not None and value.lower() in PAPER_VALUES


_CONFIG_CACHE: dict[Path, tuple[tuple[int, int], Any]] = {}


def _read_json(path: Path) -> Any:
    try:
        st = path.stat()
    except OSError:
        return None
    stamp = (st.st_mtime_ns, st.st_size)
    cached = _CONFIG_CACHE.get(path)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = None
    if len(_CONFIG_CACHE) > 64:
        _CONFIG_CACHE.clear()
    _CONFIG_CACHE[path] = (stamp, data)
    return data


def server_env(request: SafetyRequest, server: str) -> tuple[dict[str, str] | None, str]:
    """The environment block MCP server ``server`` runs with, and where it was found.

    The gateway passes it as ``request.metadata["mcp_server_env"]``. Otherwise Claude Code's scopes are read
    in its precedence: local (``~/.claude.json`` projects[<project>]), project (``.mcp.json``), user
    (``~/.claude.json``).
    """
    given = request.metadata.get("mcp_server_env")
    if isinstance(given, dict):
        return {str(k): str(v) for k, v in given.items()}, "the MCP gateway"
    home = request.home or Path(os.environ.get("HOME") or Path.home())
    user_file = home / ".claude.json"
    user = _read_json(user_file)
    candidates: list[tuple[Any, str]] = []
    if request.project_dir is not None and isinstance(user, dict):
        projects = user.get("projects")
        if isinstance(projects, dict):
            local = projects.get(str(request.project_dir))
            if isinstance(local, dict):
                candidates.append((local.get("mcpServers"), f"{user_file} (local scope)"))
    if request.project_dir is not None:
        project_file = request.project_dir / ".mcp.json"
        project = _read_json(project_file)
        if isinstance(project, dict):
            candidates.append((project.get("mcpServers"), str(project_file)))
    if isinstance(user, dict):
        candidates.append((user.get("mcpServers"), f"{user_file} (user scope)"))
    for servers, where in candidates:
        if isinstance(servers, dict) and isinstance(servers.get(server), dict):
            env = servers[server].get("env") or {}
            if not isinstance(env, dict):
                return None, where
            return {str(k): str(v) for k, v in env.items()}, where
    return None, "nowhere"


_LIVE_HOSTS = ("api.alpaca.markets",)


class ExecutionIsolationLayer:
    """Layer 15 (see the module docstring)."""

    name = "execution_isolation"
    order = 15

    def check(self, request: SafetyRequest) -> LayerVerdict | None:
        tool = request.tool
        if tool == "Bash":
            return self._shell(request) if request.mode.strict else None
        if not tool.startswith("mcp__"):
            return None
        op = classify(request)
        if not op.trading or not op.writes or op.server is None:
            return None
        if request.settings.get("safety.tradingMode") == "live":
            return None  # chosen deliberately; the confirmation gate puts every live order to the user
        env, where = server_env(request, op.server)
        if env is None:
            return failure(
                request,
                f"cannot find the configuration of MCP server {op.server!r} to prove it trades on paper; "
                f"register it with ALPACA_PAPER_TRADE=true in its env (.mcp.json)",
                self.name,
                "isolation.server_unknown",
            )
        value = env.get("ALPACA_PAPER_TRADE")
        if value is None:
            return verdict(
                request,
                "deny",
                f"MCP server {op.server!r} ({where}) does not set ALPACA_PAPER_TRADE, so it would trade with whatever "
                "its inherited environment says; set ALPACA_PAPER_TRADE=true in its env",
                self.name,
                "isolation.paper_unset",
            )
        if "${" in value:
            return verdict(
                request,
                "deny",
                f"MCP server {op.server!r} ({where}) takes ALPACA_PAPER_TRADE from a variable ({value}); ultramax "
                "cannot prove it is paper -- write ALPACA_PAPER_TRADE=true literally",
                self.name,
                "isolation.paper_unproven",
            )
        if not paper_value(value):
            return verdict(
                request,
                "deny",
                f"MCP server {op.server!r} ({where}) runs LIVE: ALPACA_PAPER_TRADE={value!r} is not true/1/yes, and "
                "the Alpaca server treats every other value as live. Trading is forced to paper "
                "(safety.tradingMode=paper)",
                self.name,
                "isolation.live_endpoint",
            )
        return None

    def _shell(self, request: SafetyRequest) -> LayerVerdict | None:
        command = request.input.get("command")
        if request.input.get("dangerouslyDisableSandbox") is True:
            return verdict(
                request,
                "ask",
                "this command asks to run outside Claude Code's sandbox; trading mode puts that to you",
                self.name,
                "isolation.unsandboxed",
            )
        if not isinstance(command, str) or ("alpaca.markets" not in command and "ALPACA_PAPER_TRADE" not in command):
            return None
        try:
            words = shlex.split(command, comments=False, posix=True)
        except ValueError:
            words = command.split()
        for word in words:
            name, eq, value = word.partition("=")
            if eq and name.endswith("ALPACA_PAPER_TRADE") and not paper_value(value.strip("'\"")):
                return verdict(
                    request,
                    "deny",
                    f"the command sets ALPACA_PAPER_TRADE={value!r}, which the Alpaca server reads as LIVE; "
                    "trading is forced to paper",
                    self.name,
                    "isolation.live_shell",
                )
            candidate = word if "://" in word else f"https://{word}"
            try:
                host = (urlsplit(candidate).hostname or "").lower()
            except ValueError:
                continue
            if host in _LIVE_HOSTS:
                return verdict(
                    request,
                    "deny",
                    f"the command calls the live trading endpoint {host} directly, outside ultramax's order checks; "
                    "trade through the paper MCP server",
                    self.name,
                    "isolation.live_shell",
                )
        return None
