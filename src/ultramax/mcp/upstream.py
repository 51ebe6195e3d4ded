"""One upstream MCP server as the gateway holds it: started, negotiated, probed, listed, restarted with backoff.

``Upstream.run`` is a supervisor: it starts the server (a child process, or an HTTP connection), negotiates the
protocol era with the official SDK client (``server/discover``, falling back to the ``initialize`` handshake),
loads the server's tools, resources, prompts and templates (every page), probes it every health interval, and
when the process exits, a probe threshold is crossed or a restart is asked for, tears it down and starts it
again after an exponential backoff (reset once a server stayed up for a while).

A start is bounded: a server that does not answer the handshake and list what it offers within its
``startup_timeout_ms`` (30 s by default, as Claude Code's own) is reported unhealthy with that reason, killed,
and started again after the backoff -- with twice the time on each attempt that ran out (up to 60 s), so a
server that is only slow to start (``npx`` fetching a package) still comes up. ``stop`` ends a start in
progress at once.

Requests are forwarded raw (``forward``): the downstream parameters are rebuilt for this server's era -- the
2026-07-28 ``_meta`` envelope and the downstream progress token are dropped (the SDK stamps its own), other
``_meta`` keys such as ``traceparent`` are kept -- and the result comes back as the server sent it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client  # the SDK's own defaults, as its URL path uses
from mcp.shared.dispatcher import ProgressFnT
from mcp.shared.exceptions import MCPError
from mcp_types import CONNECTION_CLOSED, REQUEST_TIMEOUT
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import TypeAdapter, ValidationError

from ultramax import __version__
from ultramax.mcp.config import ServerSpec, expand_vars
from ultramax.mcp.health import HealthRecord, McpMetrics
from ultramax.mcp.process import ChildProcess, RawLink, child_environment, spawn_stdio_server

__all__ = ["NO_TIMEOUT_S", "Catalog", "RawRequest", "Upstream", "UpstreamFailure", "clean_result", "upstream_params"]

log = logging.getLogger("ultramax.mcp")

_RAW: Any = TypeAdapter(dict[str, Any])  # the raw result dict (send_request types its adapter as a model)
_MAX_PAGES = 100
_STABLE_AFTER_S = 30.0
_BACKOFF_FIRST_S = 0.2
_BACKOFF_MAX_S = 30.0
_STARTUP_TIMEOUT_MAX_S = 60.0
_ABORTED_START_GRACE_S = 0.1  # a server that has not answered its handshake will not exit politely either
_ENVELOPE_PREFIX = "io.modelcontextprotocol/"
NO_TIMEOUT_S = 7 * 86400.0
"""The wait of a call without a configured timeout: hung servers are caught by the probes instead."""


class RawRequest(types.Request[dict[str, Any] | None, str]):
    """A request forwarded as-is: method and params straight from the downstream peer (nulls kept)."""


class UpstreamFailure(Exception):
    """The server gave no answer: it is down, the connection closed, or the request timed out."""

    def __init__(self, server: str, reason: str, *, kind: str = "closed", sent: bool = True) -> None:
        super().__init__(f"{server}: {reason}")
        self.server = server
        self.reason = reason
        self.kind = kind  # "down" (not running), "closed" (connection lost), "timeout"
        self.sent = sent


@dataclass(slots=True)
class Catalog:
    """What a server offers, as its raw wire dicts (all pages)."""

    tools: list[dict[str, Any]] = field(default_factory=list)
    resources: list[dict[str, Any]] = field(default_factory=list)
    templates: list[dict[str, Any]] = field(default_factory=list)
    prompts: list[dict[str, Any]] = field(default_factory=list)
    instructions: str | None = None

    def tool(self, name: str) -> dict[str, Any] | None:
        return next((t for t in self.tools if t.get("name") == name), None)


def upstream_params(params: Mapping[str, Any] | None, *, modern: bool) -> dict[str, Any]:
    """Downstream request params rebuilt for an upstream of the given era (see the module docstring)."""
    out = dict(params or {})
    meta = out.get("_meta")
    if isinstance(meta, Mapping):
        kept = {k: v for k, v in meta.items() if k != "progressToken" and not k.startswith(_ENVELOPE_PREFIX)}
        if kept:
            out["_meta"] = kept
        else:
            out.pop("_meta", None)
    if not modern:
        out.pop("inputResponses", None)
        out.pop("requestState", None)
    return out


def clean_result(result: dict[str, Any]) -> dict[str, Any]:
    """An upstream result with the upstream's own envelope stamps (``io.modelcontextprotocol/*``) removed."""
    meta = result.get("_meta")
    if isinstance(meta, dict) and any(k.startswith(_ENVELOPE_PREFIX) for k in meta):
        kept = {k: v for k, v in meta.items() if not k.startswith(_ENVELOPE_PREFIX)}
        result = dict(result)
        if kept:
            result["_meta"] = kept
        else:
            del result["_meta"]
    return result


NotificationSink = Callable[["Upstream", types.ServerNotification], Awaitable[None]]
StateSink = Callable[["Upstream", str], Awaitable[None]]
PeerRequestSink = Callable[["Upstream", str, Any], Awaitable[Any]]
"""Relays a server-to-client request (sampling, elicitation) to the downstream peer: (upstream, method, params)."""


class Upstream:
    """One process (replica) of a configured server, kept running by ``run``."""

    def __init__(
        self,
        spec: ServerSpec,
        replica: int = 1,
        *,
        namespace: str | None = None,
        metrics: McpMetrics | None = None,
        log_dir: Path | None = None,
        env_allow: tuple[str, ...] = (),
        project_dir: Path | None = None,
        on_notification: NotificationSink | None = None,
        on_state: StateSink | None = None,
        on_peer_request: PeerRequestSink | None = None,
    ) -> None:
        self.spec = spec
        self.replica = replica
        self.id = spec.name if spec.replicas == 1 else f"{spec.name}#{replica}"
        self.namespace = namespace or spec.backup_for or spec.name
        self.is_backup = spec.backup_for is not None
        self.metrics = metrics or McpMetrics()
        self.log_dir = log_dir
        self.env_allow = env_allow
        self.project_dir = project_dir
        self.on_notification = on_notification
        self.on_state = on_state
        self.on_peer_request = on_peer_request
        self.health = HealthRecord(self.id)
        self.catalog = Catalog()
        self.protocol_version: str | None = None
        self.server_info: dict[str, Any] | None = None
        self.capabilities: dict[str, Any] = {}
        self.http_refusal: str | None = None  # the last HTTP status >= 400 an HTTP server answered with
        self.child: ChildProcess | None = None
        self.link: RawLink | None = None  # the child's pipe for the gateway's raw tools/call path
        self.restarts = 0
        self.starts = 0
        self.inflight = 0
        self.last_exit: str | None = None
        self.failed_start: str | None = None  # why the last start failed, until a start succeeds
        self.stopped = anyio.Event()
        self._client: Client | None = None
        self._changed = anyio.Event()
        self._restart = anyio.Event()
        self._restart_now = anyio.Event()  # an operator's restart: no backoff
        self._stop = anyio.Event()
        self._restart_reason = ""
        self._startup_timeout = spec.startup_timeout_s  # grows while starts run out of time
        self._starting: anyio.CancelScope | None = None  # the start in progress (connect, first listing)
        self._up_since: float | None = None  # monotonic time the current lifetime came up
        self._stop_grace: float | None = None

    # -- state --------------------------------------------------------------------------------------------------
    @property
    def modern(self) -> bool:
        return self.protocol_version in MODERN_PROTOCOL_VERSIONS

    @property
    def pid(self) -> int | None:
        return self.child.pid if self.child is not None and self.child.alive() else None

    def request_stamp(self) -> Callable[[dict[str, Any], Any], None] | None:
        """The SDK client session's own per-request stamp (``send_request`` applies it to every request: on a
        2026-07-28 connection the ``_meta`` envelope of protocol version, client info and capabilities), for the
        raw tools/call path to stamp its requests alike. None when not connected, or when a later SDK moved it
        (private): the raw path then leaves such servers to the SDK path."""
        client = self._client
        stamp = getattr(client.session, "_stamp", None) if client is not None else None
        return stamp if callable(stamp) else None

    @property
    def startup_timeout_s(self) -> float:
        """How long the next start may take (the configured ``startup_timeout_ms``, doubled per start that ran out)."""
        return self._startup_timeout

    def available(self) -> bool:
        """Connected, its process alive, and not past the failure threshold."""
        if self._client is None or self.health.status in ("unhealthy", "starting", "stopped"):
            return False
        return self.child is None or self.child.alive()

    async def wait_available(self) -> None:
        """Return once the server is available (callers bound the wait with a timeout)."""
        while not self.available():
            await self._changed.wait()

    def request_restart(self, reason: str, *, now: bool = False) -> None:
        """Tear the server down and start it again (used by health, failed calls and ``ultramax mcp restart``).
        ``now`` (an operator's restart) also cuts short a backoff in progress; health and failed calls do not,
        or a server that keeps failing would be restarted in a loop."""
        if now:
            self._restart_now.set()
        if not self._restart.is_set():
            self._restart_reason = reason
            self._restart.set()
            self._abort_start()

    def stop(self, grace: float | None = None) -> None:
        """Stop for good (a start in progress is abandoned at once). ``grace`` bounds how long the process gets
        to exit after its stdin closes, and again after SIGTERM, before it is killed."""
        if grace is not None:
            self._stop_grace = grace
            if self.child is not None:
                self.child.grace = min(self.child.grace, grace)
        self._stop.set()
        self._restart_reason = "stopping"
        self._restart.set()
        self._abort_start()

    def kill(self) -> None:
        """SIGKILL the server's process group now (for a stop that takes too long)."""
        if self.child is not None:
            self.child.kill()

    def _abort_start(self) -> None:
        if self._starting is not None:
            self._starting.cancel()

    def stopping(self) -> bool:
        return self._stop.is_set()

    def status(self) -> dict[str, Any]:
        return {
            **self.health.to_dict(),
            "namespace": self.namespace,
            "role": "backup" if self.is_backup else "primary",
            "pool": self.spec.pool.name,
            "pid": self.pid,
            "protocol_version": self.protocol_version,
            "server_info": self.server_info,
            "tools": len(self.catalog.tools),
            "restarts": self.restarts,
            "startup_timeout_s": self.startup_timeout_s,
            "inflight": self.inflight,
            "last_exit": self.last_exit,
        }

    async def _set_status(self, reason: str) -> None:
        changed, self._changed = self._changed, anyio.Event()
        changed.set()
        self.metrics.set_health(self.id, self.health.status)
        if self.on_state is not None:
            await self.on_state(self, reason)

    # -- supervisor -------------------------------------------------------------------------------------------
    async def run(self) -> None:
        """Keep the server running until ``stop``; returns once it is stopped and its process reaped."""
        backoff = _BACKOFF_FIRST_S
        try:
            while not self.stopping():
                reason = await self._one_lifetime()
                if self.stopping():
                    break
                self.restarts += 1
                self.metrics.restarted(self.id)
                if self._up_since is None:
                    log.warning("mcp server %s did not start (%s); trying again in %.1f s", self.id, reason, backoff)
                else:
                    if time.monotonic() - self._up_since > _STABLE_AFTER_S:
                        backoff = _BACKOFF_FIRST_S  # it had been up a while: a fresh failure, not a crash loop
                    log.warning("mcp server %s went down (%s); restarting in %.1f s", self.id, reason, backoff)
                with anyio.move_on_after(backoff):
                    await self._wait_stop()
                backoff = min(backoff * 2, _BACKOFF_MAX_S)
        finally:
            self.health.mark_down("stopped", stopped=True)
            self.metrics.set_health(self.id, "stopped")
            self.stopped.set()
            changed, self._changed = self._changed, anyio.Event()
            changed.set()

    async def _wait_stop(self) -> None:
        """Wait out a backoff: until stopped, or until an operator asks for a restart (``request_restart``
        with ``now`` sets ``_restart`` too, so one event wakes the wait)."""
        while not self.stopping() and not self._restart_now.is_set():
            await self._restart.wait()
            if self.stopping() or self._restart_now.is_set():
                return
            self._restart = anyio.Event()

    async def _one_lifetime(self) -> str:
        """Start (within the startup timeout), serve until something ends it, tear down. Returns why it ended."""
        self._restart = anyio.Event()
        self._restart_now = anyio.Event()
        self.starts += 1
        self._up_since = None
        limit = self._startup_timeout
        phase = "the handshake"
        reason = "unknown"
        with anyio.CancelScope(deadline=anyio.current_time() + limit) as starting:
            self._starting = starting
            try:
                async with self._connect(limit) as client:
                    self._client = client
                    self.protocol_version = client.protocol_version
                    info = client.server_info
                    self.server_info = info.model_dump(mode="json", exclude_none=True) if info else None
                    caps = client.session.server_capabilities
                    self.capabilities = caps.model_dump(by_alias=True, mode="json", exclude_none=True) if caps else {}
                    phase = "the first listing of its tools, resources and prompts"
                    started = time.perf_counter()
                    await self.refresh_catalog()
                    starting.deadline = math.inf
                    self._starting = None
                    self._up_since = time.monotonic()
                    self._startup_timeout = self.spec.startup_timeout_s
                    self.failed_start = None
                    self.health.mark_up(time.perf_counter() - started)
                    self.last_exit = None
                    await self._set_status("up")
                    reason = await self._serve()
                    self._end_link()  # raw calls hear of the end when the SDK's calls do (the client closes next)
            except MCPError as exc:
                reason = f"handshake failed: {exc.error.message}"
                if self.http_refusal:
                    reason = f"{reason} ({self.http_refusal})"
            except OSError as exc:
                reason = f"cannot start: {exc.strerror or exc}"
            except (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream):
                reason = "connection closed during start"
            except Exception as exc:  # noqa: BLE001 -- any failure to start is a reason to retry later, never a crash
                reason = start_failure(exc)
                if self.http_refusal and reason.startswith("handshake failed"):
                    reason = f"{reason} ({self.http_refusal})"
            finally:
                self._starting = None
                self._end_link()
                self._client = None
                exited = self.child is not None and not self.child.alive()
                if exited and self.child is not None:
                    code = self.child.returncode
                    self.last_exit = f"exit code {code}" if code is not None and code >= 0 else f"signal {-(code or 0)}"
                if self._up_since is None and starting.cancel_called:  # the start was cut short
                    if self.stopping():
                        reason = "stopped while starting"
                    elif anyio.current_time() >= starting.deadline:
                        reason = f"no answer to {phase} within {limit:g} s"
                        self._startup_timeout = min(2 * limit, max(self.spec.startup_timeout_s, _STARTUP_TIMEOUT_MAX_S))
                    else:
                        reason = f"start abandoned: {self._restart_reason}"
                elif exited and reason.startswith("connection closed"):
                    reason = f"the server exited ({self.last_exit}) before the handshake finished"
                self.failed_start = reason if self._up_since is None and not self.stopping() else None
                self.health.mark_down(reason, stopped=self.stopping())
                with anyio.CancelScope(shield=True):
                    await self._set_status(reason)
        return reason

    def _end_link(self) -> None:
        link, self.link = self.link, None
        if link is not None:
            link.end()

    async def _serve(self) -> str:
        """Wait until the process exits, a restart is requested, or probes cross the threshold."""
        outcome = ""
        async with anyio.create_task_group() as tg:

            async def watch_exit() -> None:
                nonlocal outcome
                if self.child is None:
                    await anyio.sleep_forever()
                    return
                await self.child.exited.wait()
                code = self.child.returncode
                outcome = f"process exited ({'signal ' + str(-code) if code is not None and code < 0 else code})"
                tg.cancel_scope.cancel()

            async def watch_restart() -> None:
                nonlocal outcome
                await self._restart.wait()
                outcome = outcome or self._restart_reason
                tg.cancel_scope.cancel()

            tg.start_soon(watch_exit)
            tg.start_soon(watch_restart)
            tg.start_soon(self._monitor)
        return outcome or "stopped"

    @asynccontextmanager
    async def _connect(self, startup_timeout: float) -> AsyncIterator[Client]:
        spec = self.spec
        options: dict[str, Any] = {
            "mode": "legacy" if spec.protocol == "legacy" else "auto",
            "cache": None,
            "message_handler": self._on_message,
            "client_info": _CLIENT_INFO,
            # a backstop only: the start's own deadline bounds the handshake; probes and calls bound themselves
            "read_timeout_seconds": max(startup_timeout, spec.probe_timeout_s) + 1.0,
        }
        if self.on_peer_request is not None and spec.protocol == "legacy":
            # only a server pinned to the handshake era may ask its client questions; advertising sampling and
            # elicitation to others would make them list tools the caller (2026-07-28 Claude Code) cannot serve
            options["sampling_callback"] = self._sampling
            options["elicitation_callback"] = self._elicitation
        if spec.transport == "http":
            url, _ = expand_vars(spec.url)
            # the SDK's own HTTP client (its timeouts and redirects), carrying the server's headers: its token
            headers = {key: expand_vars(value)[0] for key, value in spec.headers.items()}
            self.http_refusal = None
            http = create_mcp_http_client(headers=headers or None)

            async def note_refusal(response: Any) -> None:
                # the SDK reports any refused request as "Server returned an error response": keep the status,
                # so an expired token reads as 401, not as a broken server
                if response.status_code >= 400 and response.request.method == "POST":  # not the optional GET
                    self.http_refusal = f"HTTP {response.status_code} {response.reason_phrase}".strip()

            http.event_hooks["response"].append(note_refusal)
            async with (
                http,
                Client(streamable_http_client(url, http_client=http), **options) as client,
            ):
                yield client
            return
        argv, env = self.command()
        log_path = self.log_dir / f"{self.id.replace('#', '-')}.log" if self.log_dir else None

        @asynccontextmanager
        async def transport() -> AsyncIterator[Any]:
            # what the server's own env gives it (its tokens) is redacted from its stderr whatever it looks like
            given = [env[key] for key in self.spec.env if key in env]
            async with spawn_stdio_server(
                self.id, argv, env=env, cwd=self._cwd(), stderr_path=log_path, secrets=given
            ) as (child, read, write):
                self.child = child
                if self._stop_grace is not None:
                    child.grace = min(child.grace, self._stop_grace)
                self.link = RawLink(write)
                child.framer.intercept = self.link.on_line
                child.framer.on_end = self.link.end
                try:
                    yield read, write
                finally:
                    starting = self._starting
                    if starting is not None and starting.cancel_called:  # a start that ran out of time, or stopped
                        child.grace = min(child.grace, _ABORTED_START_GRACE_S)

        async with Client(transport(), **options) as client:
            yield client

    def command(self) -> tuple[list[str], dict[str, str]]:
        """The argv and environment this server starts with (variables expanded)."""
        spec = self.spec
        missing: list[str] = []
        command, m = expand_vars(spec.command)
        missing += m
        args = []
        for arg in spec.args:
            value, m = expand_vars(arg)
            missing += m
            args.append(value)
        extra: dict[str, str] = {}
        if self.project_dir is not None:
            extra["CLAUDE_PROJECT_DIR"] = str(self.project_dir)
        for key, raw in spec.env.items():
            value, m = expand_vars(raw)
            missing += m
            extra[key] = value
        if missing:
            log.warning("mcp server %s: unset variables kept literally: %s", self.id, ", ".join(sorted(set(missing))))
        return [command, *args], child_environment(self.env_allow, extra)

    def _cwd(self) -> str | None:
        if self.spec.cwd:
            return expand_vars(self.spec.cwd)[0]
        return str(self.project_dir) if self.project_dir is not None else None

    # -- health ---------------------------------------------------------------------------------------------
    async def probe(self) -> float:
        """One protocol probe (ping, or tools/list on a 2026-07-28 connection); returns its latency in seconds."""
        client = self._client
        if client is None:
            raise UpstreamFailure(self.id, "not connected", kind="down", sent=False)
        started = time.perf_counter()
        try:
            with anyio.fail_after(self.spec.probe_timeout_s):
                if self.modern:
                    listing = await client.session.send_request(RawRequest(method="tools/list", params={}), _RAW)
                else:
                    await client.session.send_ping()
                    listing = None
        except TimeoutError:
            why = f"probe timed out after {self.spec.probe_timeout_s:g} s"
            raise UpstreamFailure(self.id, why, kind="timeout") from None
        except MCPError as exc:
            raise UpstreamFailure(self.id, f"probe failed: {exc.error.message}") from None
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            raise UpstreamFailure(self.id, "connection closed") from None
        latency = time.perf_counter() - started
        if listing is not None and listing.get("nextCursor") is None and listing.get("tools") != self.catalog.tools:
            await self.refresh_catalog()
            await self._set_status("tools changed")
        return latency

    async def _monitor(self) -> None:
        pool = self.spec.pool
        while True:
            await anyio.sleep(self.spec.interval_s)
            try:
                latency = await self.probe()
            except UpstreamFailure as exc:
                before = self.health.status
                reason = exc.reason
                if self.health.record_failure(exc.reason, pool.failure_threshold):
                    if self.child is not None:
                        self.child.grace = 0.25  # it no longer answers: it will not exit politely either
                    reason = f"{pool.failure_threshold} consecutive failed probes ({exc.reason})"
                    self.request_restart(reason)
                if self.health.status != before:
                    await self._set_status(reason)
                continue
            before = self.health.status
            self.metrics.observe_latency(self.id, latency)
            self.health.record_success(latency, pool.degraded_latency_ms / 1000)
            if self.health.status != before:
                await self._set_status("probe")

    # -- catalog and notifications ------------------------------------------------------------------------------
    async def refresh_catalog(self) -> None:
        client = self._client
        if client is None:
            return
        caps = self.capabilities
        catalog = Catalog(instructions=client.session.instructions)
        if "tools" in caps:
            catalog.tools = await self._drain("tools/list", "tools")
        if "resources" in caps:
            catalog.resources = await self._drain("resources/list", "resources")
            catalog.templates = await self._drain("resources/templates/list", "resourceTemplates", optional=True)
        if "prompts" in caps:
            catalog.prompts = await self._drain("prompts/list", "prompts")
        self.catalog = catalog

    async def _drain(self, method: str, key: str, *, optional: bool = False) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(_MAX_PAGES):
            params = {"cursor": cursor} if cursor else {}
            try:
                page = await self.forward(method, params, timeout=self.spec.probe_timeout_s)
            except MCPError:
                if optional:
                    return items
                raise
            items.extend(x for x in page.get(key, []) if isinstance(x, dict))
            cursor = page.get("nextCursor")
            if not cursor:
                break
        return items

    async def _sampling(self, context: Any, params: types.CreateMessageRequestParams) -> Any:
        assert self.on_peer_request is not None
        return await self.on_peer_request(self, "sampling/createMessage", params)

    async def _elicitation(self, context: Any, params: types.ElicitRequestParams) -> Any:
        assert self.on_peer_request is not None
        return await self.on_peer_request(self, "elicitation/create", params)

    async def _on_message(self, message: Any) -> None:
        if isinstance(message, Exception):
            log.debug("mcp server %s transport error: %s", self.id, message)
            return
        if isinstance(
            message,
            types.ToolListChangedNotification | types.ResourceListChangedNotification
            | types.PromptListChangedNotification,
        ):  # fmt: skip
            try:
                await self.refresh_catalog()
            except (MCPError, UpstreamFailure) as exc:
                log.debug("mcp server %s: refresh after list_changed failed: %s", self.id, exc)
            await self._set_status("list changed")
            return
        if self.on_notification is not None:
            await self.on_notification(self, message)

    # -- forwarding -------------------------------------------------------------------------------------------
    async def forward(
        self,
        method: str,
        params: dict[str, Any] | None,
        *,
        progress: ProgressFnT | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Send one request and return the raw result.

        An error answer from the server is raised as ``MCPError`` (it is an answer: never retried elsewhere);
        no answer at all raises ``UpstreamFailure``.
        """
        client = self._client
        if client is None or (self.child is not None and not self.child.alive()):
            raise UpstreamFailure(self.id, "not running", kind="down", sent=False)
        wait = NO_TIMEOUT_S if timeout is None else timeout
        self.inflight += 1
        try:
            result = await client.session.send_request(
                RawRequest(method=method, params=params),
                _RAW,
                request_read_timeout_seconds=wait,
                progress_callback=progress,
            )
        except MCPError as exc:
            if exc.code == CONNECTION_CLOSED:
                raise UpstreamFailure(self.id, "connection closed") from None
            if exc.code == REQUEST_TIMEOUT:
                raise UpstreamFailure(self.id, f"no answer within {wait:g} s", kind="timeout") from None
            raise
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            raise UpstreamFailure(self.id, "connection closed") from None
        except ValidationError as exc:
            raise MCPError(code=types.INTERNAL_ERROR, message=f"{self.id} returned an invalid {method} result: "
                           f"{exc.errors()[0].get('msg', exc)}") from None  # fmt: skip
        finally:
            self.inflight -= 1
        return clean_result(result)


_CLIENT_INFO = types.Implementation(name="ultramax-gateway", version=__version__)


def start_failure(exc: BaseException) -> str:
    """Why a server failed to start, in words: the task group's wrapper ("unhandled errors in a TaskGroup")
    is taken off, down to the error that caused it."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    if isinstance(exc, MCPError):
        message = exc.error.message
        return "connection closed during start" if "closed" in message.lower() else f"handshake failed: {message}"
    if isinstance(exc, anyio.ClosedResourceError | anyio.BrokenResourceError | anyio.EndOfStream):
        return "connection closed during start"
    if isinstance(exc, TimeoutError):
        return "no answer to the handshake in time"
    return f"{type(exc).__name__}: {exc}"
