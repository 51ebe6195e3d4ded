"""``ultramax mcp serve``: build the project's gateway and serve it on stdio (for Claude Code) or streamable HTTP.

The gateway reads the user's and the project's pools, the project's settings and mode (which decide the
project-specific servers), starts every active server, and serves until its peer goes away (stdin closes) or it
is told to stop (SIGTERM / SIGINT); either way every server it started is stopped and reaped before it exits.
A control socket lets ``ultramax mcp health|restart`` reach it while it runs.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from ultramax.config import Settings, load_settings
from ultramax.errors import ConfigError
from ultramax.mcp.config import ActiveSet, PoolConfig, load_pool_config
from ultramax.mcp.control import serve_control
from ultramax.mcp.gateway import Gateway, GatewayOptions
from ultramax.modes import ModeSelection, detect_mode
from ultramax.observability import configure_logging
from ultramax.paths import Paths

if TYPE_CHECKING:
    from ultramax.mcp.streamable import SseOptions

__all__ = ["ProjectPools", "build_gateway", "project_pools", "run_gateway"]

log = logging.getLogger("ultramax.mcp")


@dataclass(frozen=True, slots=True)
class ProjectPools:
    """The pools configuration as it applies to one project."""

    config: PoolConfig
    active: ActiveSet
    settings: Settings
    mode: ModeSelection


def project_pools(paths: Paths, project_dir: Path | None, *, files: list[Path] | None = None) -> ProjectPools:
    settings = load_settings(paths, project_dir)
    selection = detect_mode(project_dir, settings)
    config = load_pool_config(paths, project_dir, files=files)
    listed = settings.get("ultramax.mcpServers") or list(selection.mode.mcp_servers)
    active = config.active(project_dir=project_dir, mode=selection.mode.name, mode_servers=listed)
    return ProjectPools(config, active, settings, selection)


def build_gateway(
    paths: Paths,
    project_dir: Path | None,
    *,
    files: list[Path] | None = None,
    prefix: bool | None = None,
    name: str = "ultramax",
    page_size: int | None = None,
) -> Gateway:
    pools = project_pools(paths, project_dir, files=files)
    configure_logging(paths.logs_dir, pools.settings.get("observability.logLevel"))
    for problem in pools.config.errors:
        log.error("mcp pools: %s", problem)
        print(f"ultramax mcp: {problem} (left out)", file=sys.stderr)
    settings = pools.settings
    options = GatewayOptions(
        prefix=settings.get("ultramax.mcpNamespacing") == "prefix" if prefix is None else prefix,
        page_size=page_size or settings.get("ultramax.mcpPageSize"),
        name=name,
        env_allow=tuple(settings.get("ultramax.mcpEnvAllowlist")),
    )
    return Gateway(pools.config, pools.active, paths=paths, project_dir=project_dir, options=options)


async def run_gateway(
    gateway: Gateway,
    *,
    transport: str = "stdio",
    host: str = "127.0.0.1",
    port: int = 0,
    ready: Any = None,
    sse: SseOptions | None = None,
) -> None:
    """Serve until the peer leaves or a signal arrives. ``ready`` (if given) is called with the HTTP URL;
    ``sse`` sets the HTTP face's SSE behaviour (priming ``retry``, polling, replay limits). An address it cannot
    listen on is a ConfigError, not the task groups' ExceptionGroup around it."""
    try:
        await _run_gateway(gateway, transport=transport, host=host, port=port, ready=ready, sse=sse)
    except BaseExceptionGroup as group:
        cause: BaseException = group
        while isinstance(cause, BaseExceptionGroup) and len(cause.exceptions) == 1:
            cause = cause.exceptions[0]
        if isinstance(cause, ConfigError):
            raise cause from None
        raise


async def _run_gateway(
    gateway: Gateway, *, transport: str, host: str, port: int, ready: Any, sse: SseOptions | None
) -> None:
    paths = gateway.paths
    stop = anyio.Event()
    async with anyio.create_task_group() as outer:
        outer.start_soon(_wait_for_signals, stop)
        await outer.start(
            lambda task_status: serve_control(
                paths, _control_handler(gateway), project_dir=gateway.project_dir, transport=transport,
                started=gateway.started, task_status=task_status,
            )
        )  # fmt: skip
        async with gateway.running(), anyio.create_task_group() as inner:
            if transport == "stdio":

                async def stdio() -> None:
                    await _serve_stdio(gateway)
                    inner.cancel_scope.cancel()

                inner.start_soon(stdio)
                await stop.wait()
                inner.cancel_scope.cancel()
            else:
                server = await _http_server(gateway, host, port, ready, sse)

                async def http() -> None:
                    try:
                        await server.serve(sockets=list(server.sockets))
                    finally:
                        for sock in server.sockets:
                            sock.close()
                        stop.set()

                inner.start_soon(http)
                await stop.wait()
                server.should_exit = True
        outer.cancel_scope.cancel()


async def _wait_for_signals(stop: anyio.Event) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
        async for signum in signals:
            log.info("mcp gateway: signal %d, stopping", signum)
            stop.set()
            return


async def _serve_stdio(gateway: Gateway) -> None:
    from ultramax.mcp.stdio import stdio_pipes

    async with stdio_pipes(intercept=gateway.fast.on_face_line) as (read, write):
        gateway.fast.attach(write)
        try:
            await gateway.server.run(read, write, gateway.initialization_options())
        finally:
            gateway.fast.closed()


async def _http_server(gateway: Gateway, host: str, port: int, ready: Any, sse: SseOptions | None) -> Any:
    import uvicorn

    from ultramax.mcp.streamable import streamable_http_app

    class Server(uvicorn.Server):
        sockets: tuple[socket.socket, ...] = ()

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:  # the gateway handles signals itself
            yield

    app = streamable_http_app(gateway.server, host=host, sse=sse)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:  # taken, or an address this machine does not have
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another --port (0 picks a free one) "
            "or --host"
        ) from exc
    url = f"http://{host}:{sock.getsockname()[1]}/mcp"
    print(f"ultramax mcp: serving streamable HTTP at {url}", file=sys.stderr, flush=True)
    if ready is not None:
        ready(url)
    server = Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    server.sockets = (sock,)
    return server


def _control_handler(gateway: Gateway) -> Any:
    def handle(request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "status":
            return {"ok": True, "status": gateway.status(), "at": time.time()}
        if op == "restart":
            server = request.get("server")
            if not isinstance(server, str) or not server:
                return {"ok": False, "error": "restart needs a server name"}
            return {"ok": True, "restarted": gateway.restart(server)}
        if op == "metrics":
            return {"ok": True, "metrics": gateway.metrics.exposition().decode()}
        return {"ok": False, "error": f"unknown op {op!r}; use status, restart or metrics"}

    return handle


async def check_once(gateway: Gateway, *, timeout: float = 30.0) -> dict[str, Any]:
    """Start the active servers, probe each once, stop them: ``ultramax mcp health`` when no gateway runs."""
    from ultramax.mcp.upstream import UpstreamFailure

    async with gateway.running():
        await gateway.wait_settled(timeout)
        for up in gateway.upstreams.values():
            if not up.available():
                continue
            try:
                latency = await up.probe()
            except UpstreamFailure as exc:
                up.health.record_failure(exc.reason, up.spec.pool.failure_threshold)
                continue
            up.health.record_success(latency, up.spec.pool.degraded_latency_ms / 1000)
        return gateway.status()
