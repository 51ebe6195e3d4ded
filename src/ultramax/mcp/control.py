"""How the CLI reaches a running gateway: a Unix socket per gateway and an info file next to it.

Each ``ultramax mcp serve`` writes ``<ULTRAMAX_HOME>/mcp/gateway-<pid>.json`` (pid, project, socket) and listens
on ``gateway-<pid>.sock`` for one JSON request per connection: ``{"op": "status"}``, ``{"op": "restart",
"server": NAME}`` or ``{"op": "metrics"}``. The client side is standard library only. Files of gateways that no
longer run are removed when found.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import SocketStream

from ultramax.errors import UltramaxError
from ultramax.fsutil import atomic_write_json, private_dir
from ultramax.paths import Paths

__all__ = ["GatewayInfo", "control_dir", "query_gateway", "running_gateways", "serve_control"]

_MAX_REQUEST = 64 * 1024


def control_dir(paths: Paths) -> Path:
    return paths.home / "mcp"


@dataclass(frozen=True, slots=True)
class GatewayInfo:
    pid: int
    project_dir: str | None
    socket: str
    transport: str
    started: float
    info_file: Path

    def to_dict(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "project_dir": self.project_dir,
            "socket": self.socket,
            "transport": self.transport,
            "started": self.started,
        }


def running_gateways(paths: Paths, project_dir: Path | None = None) -> list[GatewayInfo]:
    """Gateways of this user that are alive (optionally only those serving ``project_dir``)."""
    found = []
    for info_file in sorted(control_dir(paths).glob("gateway-*.json")):
        try:
            data = json.loads(info_file.read_text(encoding="utf-8"))
            info = GatewayInfo(
                int(data["pid"]), data.get("project_dir"), str(data["socket"]), str(data.get("transport", "stdio")),
                float(data.get("started", 0)), info_file,
            )  # fmt: skip
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if not _alive(info.pid):
            with contextlib.suppress(OSError):
                info_file.unlink()
                Path(info.socket).unlink(missing_ok=True)
            continue
        if project_dir is not None and info.project_dir != str(project_dir):
            continue
        found.append(info)
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def query_gateway(info: GatewayInfo, request: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
    """Send one request to a gateway and return its reply (UltramaxError if it cannot be reached)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(info.socket)
            sock.sendall(json.dumps(request).encode() + b"\n")
            sock.shutdown(socket.SHUT_WR)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
    except OSError as exc:
        raise UltramaxError(f"cannot reach the MCP gateway (pid {info.pid}) at {info.socket}: {exc}") from exc
    try:
        reply = json.loads(b"".join(chunks) or b"{}")
    except ValueError as exc:
        raise UltramaxError(f"the MCP gateway (pid {info.pid}) sent an unreadable reply") from exc
    if not isinstance(reply, dict):
        raise UltramaxError(f"the MCP gateway (pid {info.pid}) sent an unreadable reply")
    return reply


async def serve_control(
    paths: Paths,
    handler: Callable[[dict[str, Any]], dict[str, Any]],
    *,
    project_dir: Path | None,
    transport: str,
    started: float,
    task_status: anyio.abc.TaskStatus[GatewayInfo] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Listen for CLI requests until cancelled; the info file and socket are removed on the way out."""
    directory = control_dir(paths)
    private_dir(directory)
    pid = os.getpid()
    sock_path = directory / f"gateway-{pid}.sock"
    info_file = directory / f"gateway-{pid}.json"
    sock_path.unlink(missing_ok=True)
    listener = await anyio.create_unix_listener(sock_path)
    os.chmod(sock_path, 0o600)
    info = GatewayInfo(pid, str(project_dir) if project_dir else None, str(sock_path), transport, started, info_file)
    try:
        atomic_write_json(info_file, info.to_dict(), mode=0o600)

        async def serve_one(stream: SocketStream) -> None:
            async with stream:
                data = b""
                with anyio.move_on_after(5):
                    while len(data) < _MAX_REQUEST:
                        try:
                            chunk = await stream.receive()
                        except (anyio.EndOfStream, anyio.BrokenResourceError):
                            break
                        data += chunk
                        if b"\n" in chunk:
                            break
                try:
                    request = json.loads(data or b"{}")
                    reply = handler(request if isinstance(request, dict) else {})
                except (ValueError, UltramaxError) as exc:
                    reply = {"ok": False, "error": str(exc)}
                with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                    await stream.send(json.dumps(reply, default=str).encode())

        task_status.started(info)
        async with listener:
            await listener.serve(serve_one)
    finally:
        info_file.unlink(missing_ok=True)
        sock_path.unlink(missing_ok=True)
