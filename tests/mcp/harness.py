"""The gateway as Claude Code runs it (``ultramax mcp serve`` over stdio), driven by the official ``mcp`` SDK client.

The client session lives in an anyio blocking portal (an event loop in a thread), so synchronous tests can
share one gateway and call it like a library. The official servers the tests put behind the gateway come from
``scripts/install-mcp-servers.sh`` (``.cache/mcp-servers``); tests that need them skip with the reason when
they are absent. ``ULTRAMAX_MCP_SERVERS`` points at another install (and must then be right).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

import ultramax
from tests.conftest import UltramaxEnv, process_gone, wait_for
from ultramax.mcp.control import GatewayInfo, query_gateway, running_gateways

REPO = Path(__file__).resolve().parents[2]
# the gateways the tests start import the ultramax under test (a work tree may share another checkout's venv)
SOURCE = str(Path(ultramax.__file__).resolve().parents[1])
SERVERS_ENV = "ULTRAMAX_MCP_SERVERS"
DEFAULT_SERVERS = REPO / ".cache" / "mcp-servers"
FIXTURE_SERVER = Path(__file__).with_name("fixture_server.py")


def servers_dir() -> Path | None:
    configured = os.environ.get(SERVERS_ENV)
    if configured:
        path = Path(configured)
        if not (path / "node_modules" / ".bin" / "mcp-server-everything").exists():
            raise FileNotFoundError(f"{SERVERS_ENV}={configured!r} holds no mcp-server-everything")
        return path
    if (DEFAULT_SERVERS / "node_modules" / ".bin" / "mcp-server-everything").exists():
        return DEFAULT_SERVERS
    return None


def require_servers() -> Path:
    found = servers_dir()
    if found is None:
        pytest.skip(
            "the official MCP servers are not installed: run scripts/install-mcp-servers.sh "
            f"(installs @modelcontextprotocol/server-* and mcp-server-time into {DEFAULT_SERVERS})"
        )
    return found


class Servers:
    """Commands of the installed official servers, as pool entries."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def bin(self, name: str) -> str:
        return str(self.root / "node_modules" / ".bin" / name)

    def everything(self, **extra: Any) -> dict[str, Any]:
        return {"command": self.bin("mcp-server-everything"), "args": ["stdio"], **extra}

    def memory(self, memory_file: Path, **extra: Any) -> dict[str, Any]:
        return {"command": self.bin("mcp-server-memory"), "env": {"MEMORY_FILE_PATH": str(memory_file)}, **extra}

    def filesystem(self, root: Path, **extra: Any) -> dict[str, Any]:
        return {"command": self.bin("mcp-server-filesystem"), "args": [str(root)], **extra}

    def time(self, **extra: Any) -> dict[str, Any]:
        return {"command": str(self.root / "venv" / "bin" / "mcp-server-time"), "args": ["--local-timezone", "UTC"],
                **extra}  # fmt: skip

    @staticmethod
    def fixture(label: str, *, handshake_only: bool = False, **extra: Any) -> dict[str, Any]:
        """The tests' own small SDK server (tools that change the list, sleep, record, die); ``handshake_only``
        makes it a handshake-era server, as the TypeScript servers are."""
        args = [str(FIXTURE_SERVER), "--label", label, *(["--handshake-only"] if handshake_only else [])]
        return {"command": sys.executable, "args": args, **extra}


def make_env(root: Path) -> UltramaxEnv:
    """A test user under ``root`` for a module-scoped gateway (the ``umx`` fixture is per test)."""
    env = UltramaxEnv(root=root, home=root / "user", claude_dir=root / "user" / ".claude", ultramax_home=root / "umx")
    env.claude_dir.mkdir(parents=True)
    env.user_settings.write_text("{}", encoding="utf-8")
    return env


def records(path: Path) -> list[dict[str, Any]]:
    """The JSONL events the fixture server wrote to ``FIXTURE_RECORD`` (none yet: empty)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def calls_by(gw: Gateway, server: str, outcome: str = "ok") -> float:
    """The gateway's ``mcp_gateway_calls_total`` for ``server`` and ``outcome``."""
    prefix = f'mcp_gateway_calls_total{{outcome="{outcome}",server_name="{server}"}} '
    line = next((ln for ln in gw.metrics().splitlines() if ln.startswith(prefix)), None)
    return float(line.split()[-1]) if line else 0.0


def write_pools(umx: UltramaxEnv, data: dict[str, Any], name: str = "primary.json") -> Path:
    path = umx.claude_dir / "mcp" / "pools" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return path


class Gateway:
    """A running ``ultramax mcp serve`` and an SDK client session connected to it."""

    def __init__(self, umx: UltramaxEnv, project: Path, *, mode: str = "legacy", args: tuple[str, ...] = (),
                 env: dict[str, str] | None = None, elicitation_callback: Any = None) -> None:  # fmt: skip
        self.umx = umx
        self.elicitation_callback = elicitation_callback
        self.project = project
        self.notifications: list[Any] = []
        self.stderr_path = umx.root / f"gateway-{os.urandom(3).hex()}.stderr"
        environ = {
            "HOME": str(umx.home),
            "ULTRAMAX_HOME": str(umx.ultramax_home),
            "PATH": os.environ.get("PATH", os.defpath),
            "PYTHONPATH": os.pathsep.join(p for p in (SOURCE, os.environ.get("PYTHONPATH")) if p),
            **(env or {}),
        }
        self.params = StdioServerParameters(
            command=sys.executable,
            args=["-m", "ultramax.cli.main", "--project-dir", str(project), "mcp", "serve", *args],
            env=environ,
            cwd=str(project),
        )
        self.mode = mode
        self._stack = contextlib.ExitStack()
        self.portal: BlockingPortal | None = None
        self.client: Client | None = None

    def __enter__(self) -> Gateway:
        try:
            self.portal = self._stack.enter_context(start_blocking_portal())
            errlog = self._stack.enter_context(self.stderr_path.open("w", encoding="utf-8"))
            client = Client(stdio_client(self.params, errlog=errlog), mode=self.mode, cache=None,
                            message_handler=self._on_message,
                            elicitation_callback=self.elicitation_callback)  # fmt: skip
            self.client = self._stack.enter_context(self.portal.wrap_async_context_manager(client))
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    async def _on_message(self, message: Any) -> None:
        self.notifications.append(message)

    # -- calls ----------------------------------------------------------------------------------------------
    def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        assert self.portal is not None
        return self.portal.call(fn, *args)

    @property
    def session(self) -> Any:
        assert self.client is not None
        return self.client.session

    def call(self, name: str, arguments: dict[str, Any] | None = None, **kwargs: Any) -> types.CallToolResult:
        assert self.portal is not None and self.client is not None
        client = self.client

        async def go() -> types.CallToolResult:
            return await client.call_tool(name, arguments or {}, **kwargs)

        return self.portal.call(go)

    def text(self, name: str, arguments: dict[str, Any] | None = None) -> str:
        result = self.call(name, arguments)
        assert not result.is_error, result
        return result_text(result)

    def tools(self) -> list[types.Tool]:
        async def go() -> list[types.Tool]:
            assert self.client is not None
            tools: list[types.Tool] = []
            cursor: str | None = None
            while True:
                page = await self.client.session.list_tools(params=types.PaginatedRequestParams(cursor=cursor))
                tools += page.tools
                cursor = page.next_cursor
                if not cursor:
                    return tools

        tools: list[types.Tool] = self.run(go)
        return tools

    # -- introspection through the control socket ------------------------------------------------------------
    def info(self) -> GatewayInfo:
        found: list[GatewayInfo] = []

        def listed() -> bool:
            found[:] = running_gateways(self.umx.paths, self.project)
            return bool(found)

        wait_for(listed, 10, "the gateway's control socket")
        return found[0]

    def status(self) -> dict[str, Any]:
        reply = query_gateway(self.info(), {"op": "status"})
        assert reply["ok"], reply
        status: dict[str, Any] = reply["status"]
        return status

    def server(self, server_id: str) -> dict[str, Any]:
        return next(s for s in self.status()["servers"] if s["server"] == server_id)

    def metrics(self) -> str:
        reply = query_gateway(self.info(), {"op": "metrics"})
        assert reply["ok"], reply
        return str(reply["metrics"])

    def pid_of(self, server_id: str) -> int:
        pid = self.server(server_id)["pid"]
        assert isinstance(pid, int), f"{server_id} has no process"
        return pid

    def wait_up(self, server_id: str, *, other_than: int | None = None, timeout: float = 20) -> int:
        """Wait until the server runs and is healthy (in a process other than ``other_than``); its pid."""

        def up() -> bool:
            s = self.server(server_id)
            return s["status"] == "healthy" and s["pid"] is not None and s["pid"] != other_than

        wait_for(up, timeout, f"{server_id} to be up")
        return self.pid_of(server_id)

    def kill(self, server_id: str, sig: int = signal.SIGKILL) -> int:
        pid = self.pid_of(server_id)
        os.kill(pid, sig)
        return pid


def result_text(result: types.CallToolResult) -> str:
    return "".join(c.text for c in result.content if isinstance(c, types.TextContent))


@contextlib.contextmanager
def gateway(umx: UltramaxEnv, project: Path, **kwargs: Any) -> Iterator[Gateway]:
    with Gateway(umx, project, **kwargs) as gw:
        yield gw


__all__ = [
    "Gateway",
    "Servers",
    "anyio",
    "gateway",
    "process_gone",
    "require_servers",
    "result_text",
    "servers_dir",
    "write_pools",
]
