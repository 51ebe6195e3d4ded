"""The MCP gateway: one MCP server for Claude Code in front of the project's pools.

It runs every active server (and its warm backups), aggregates their tools, resources and prompts (see
``catalog``), and forwards each request to a server chosen by the routing rules and the pool's strategy:

- candidates for ``server__tool``: the server itself (all its replicas), then the backups configured ``for`` it --
  unless the first routing rule matching it re-routes it (``server:tool`` glob) to the servers the rule names;
- primaries in a ``round-robin`` pool rotate per call; ``priority`` and ``manual`` keep their order;
- a server that is down (process exited, restarting, past the probe threshold) is skipped; if none is up the
  call waits (bounded by the pool's ``timeout_ms``) for one to come back;
- a call whose server gives no answer (died, connection closed, timed out) is retried on the next candidate
  when it is safe to retry: the tool is annotated ``readOnlyHint``, or the server / rule says ``retry_safe``.
  The failing server is restarted with backoff by its supervisor;
- where a rule says ``require_safety_check``, the safety engine runs in the call path, fail-closed: anything
  but allow (an ask included, the gateway cannot ask) refuses the call, and the decision is audited (``gate``).

Progress from the upstream is re-tagged with the caller's token; a downstream cancellation cancels the
upstream request (the SDK sends ``notifications/cancelled``); ``ping`` is answered locally. Upstream
``list_changed`` (or a failover that changes the lists) becomes a downstream ``list_changed``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import mcp_types as types
from mcp.server.caching import CacheableMethod, CacheHint
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import NotificationOptions, Server
from mcp.server.session import ServerSession
from mcp.server.subscriptions import (
    InMemorySubscriptionBus,
    ListenHandler,
    PromptsListChanged,
    ResourcesListChanged,
    ResourceUpdated,
    ToolsListChanged,
)
from mcp.shared.exceptions import MCPError, NoBackChannelError
from mcp.shared.jsonrpc_dispatcher import progress_token_from_params
from mcp.shared.message import ServerMessageMetadata
from mcp_types import INVALID_PARAMS, METHOD_NOT_FOUND
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from ultramax import __version__
from ultramax.errors import UltramaxError
from ultramax.mcp.catalog import AggregateView, page
from ultramax.mcp.config import ActiveSet, PoolConfig, RoutingRule
from ultramax.mcp.fastpath import FastCall, FastPath
from ultramax.mcp.gate import Decide, SafetyGate
from ultramax.mcp.health import McpMetrics
from ultramax.mcp.upstream import Upstream, UpstreamFailure, upstream_params
from ultramax.paths import Paths

__all__ = ["Gateway", "GatewayOptions"]

log = logging.getLogger("ultramax.mcp")

_MAX_SESSIONS = 64
_CACHEABLE: tuple[CacheableMethod, ...] = (
    "tools/list",
    "resources/list",
    "resources/templates/list",
    "prompts/list",
    "resources/read",
)
_EVENT_LOG = 200
_STOP_GRACE_S = 0.5
"""When the gateway stops: a server's time to exit after its stdin closes, and again after SIGTERM."""
_STOP_LIMIT_S = 1.5
"""When the gateway stops: what has not exited by then is killed (SIGKILL), whatever it was doing."""

Caller = ServerRequestContext[Any, Any] | FastCall
"""A downstream request waiting on an upstream: one the SDK serves, or one on the raw tools/call path."""


@dataclass(slots=True)
class _Plan:
    rule: RoutingRule | None
    gate: RoutingRule | None
    members: list[Upstream]
    rotate: int  # how many leading members take turns (0: none)
    retry_ok: bool
    turn: int = -1


@dataclass(frozen=True, slots=True)
class GatewayOptions:
    """How the gateway presents itself."""

    prefix: bool = True  # namespaced names (server__tool); False = pass-through
    page_size: int = 100
    name: str = "ultramax"  # the name Claude Code registers the gateway under (mcp__<name>__...)
    startup_wait_s: float = 10.0  # at most this long a first listing waits for the servers' first starts (each is
    # bounded by its startup_timeout_ms); a server that comes up later is announced with list_changed
    env_allow: tuple[str, ...] = ()


class Gateway:
    """Holds the upstreams and serves the downstream peer(s); run it with ``async with gateway.running()``."""

    def __init__(
        self,
        config: PoolConfig,
        active: ActiveSet,
        *,
        paths: Paths,
        project_dir: Path | None = None,
        options: GatewayOptions | None = None,
        metrics: McpMetrics | None = None,
        safety: Decide | None = None,
    ) -> None:
        self.config = config
        self.active = active
        self.paths = paths
        self.project_dir = project_dir
        self.options = options or GatewayOptions()
        self.metrics = metrics or McpMetrics()
        self.gate = SafetyGate(paths, project_dir, name=self.options.name, prefix=self.options.prefix, decide=safety)
        self.started = time.time()
        self.events: list[dict[str, Any]] = []
        self.upstreams: dict[str, Upstream] = {}
        self.namespaces: dict[str, list[Upstream]] = {}
        log_dir = paths.logs_dir / "mcp"
        for spec in active.servers:
            for replica in range(1, spec.replicas + 1):
                up = Upstream(
                    spec,
                    replica,
                    metrics=self.metrics,
                    log_dir=log_dir,
                    env_allow=self.options.env_allow,
                    project_dir=project_dir,
                    on_notification=self._on_upstream_notification,
                    on_state=self._on_upstream_state,
                    on_peer_request=self._relay_peer_request,
                )
                self.upstreams[up.id] = up
        for up in sorted(self.upstreams.values(), key=lambda u: (u.is_backup, u.spec.priority, u.replica)):
            self.namespaces.setdefault(up.namespace, []).append(up)
        self.view = AggregateView()
        self._digest: dict[str, str] = self.view.digest()
        self._available = {uid: False for uid in self.upstreams}
        self._changed = anyio.Event()
        self._settled = anyio.Event()
        self._rr: dict[str, int] = {}
        self._plans: dict[str, _Plan] = {}
        self._sessions: dict[int, ServerSession] = {}
        self._calling: dict[str, list[Caller]] = {}
        self._bus = InMemorySubscriptionBus()  # 2026-07-28 peers: changes go out on subscriptions/listen streams
        self._listen = ListenHandler(self._bus)
        self.server = self._build_server()
        self.fast = FastPath(self)  # the stdio face's raw tools/call path (serve.py attaches it)
        self.task_group: anyio.abc.TaskGroup | None = None

    # -- lifecycle -----------------------------------------------------------------------------------------
    @asynccontextmanager
    async def running(self) -> AsyncIterator[Gateway]:
        """Start every upstream; on exit stop them all (gracefully, then forcibly) and reap them."""
        try:
            async with anyio.create_task_group() as tg:
                self.task_group = tg
                for up in self.upstreams.values():
                    tg.start_soon(up.run)
                tg.start_soon(self._watch_settled)
                try:
                    yield self
                finally:
                    with anyio.CancelScope(shield=True):
                        await self.shutdown()
                    tg.cancel_scope.cancel()
                    self.task_group = None
        finally:
            self.gate.close()

    async def shutdown(self, timeout: float = _STOP_LIMIT_S) -> None:
        """Stop every upstream at once -- stdin closed, SIGTERM, SIGKILL (``_STOP_GRACE_S`` apart) -- and kill
        whatever is still running after ``timeout``: a hung or stubborn server never holds the gateway up."""
        self._listen.close()
        ups = list(self.upstreams.values())
        for up in ups:
            up.stop(grace=_STOP_GRACE_S)
        with anyio.move_on_after(timeout):
            for up in ups:
                await up.stopped.wait()
        late = [up for up in ups if not up.stopped.is_set()]
        for up in late:
            log.warning("mcp server %s did not stop within %g s; killing it", up.id, timeout)
            up.kill()
        with anyio.move_on_after(_STOP_GRACE_S):
            for up in late:
                await up.stopped.wait()

    async def _watch_settled(self) -> None:
        """Set ``_settled`` once every upstream has finished its first start (up or failed), or after
        ``startup_wait_s``: listings wait only until then, and list changes are announced from then on."""
        with anyio.move_on_after(self.options.startup_wait_s):
            while not all(
                up.starts and (up.available() or up.health.status != "starting") for up in self.upstreams.values()
            ):
                await self._changed.wait()
        self._settled.set()

    async def wait_settled(self, timeout: float | None = None) -> bool:
        with anyio.move_on_after(self.options.startup_wait_s if timeout is None else timeout):
            await self._settled.wait()
        return self._settled.is_set()

    def restart(self, server: str) -> list[str]:
        """Restart a server (every replica) or one replica by id; returns the ids restarted."""
        chosen = [u for u in self.upstreams.values() if server in (u.id, u.spec.name)]
        if not chosen:
            raise UltramaxError(f"no running MCP server called {server!r}; running: {', '.join(self.upstreams)}")
        for up in chosen:
            up.request_restart("restart requested", now=True)
        return [u.id for u in chosen]

    def status(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "project_dir": str(self.project_dir) if self.project_dir else None,
            "started": self.started,
            "prefix": self.options.prefix,
            "servers": [up.status() for up in self.upstreams.values()],
            "inactive": dict(self.active.inactive),
            "tools": len(self.view.tools),
            "resources": len(self.view.resources),
            "prompts": len(self.view.prompts),
            "clashes": list(self.view.clashes),
            "failovers": self.metrics.failover_count(),
            "fast_path": self.fast.stats(),
            "events": list(self.events[-50:]),
        }

    # -- state changes -----------------------------------------------------------------------------------
    async def _on_upstream_state(self, up: Upstream, reason: str) -> None:
        was, now = self._available.get(up.id, False), up.available()
        self._available[up.id] = now
        if was and not now and up.stopping():
            self._event("stopped", up, reason=reason)
        elif was and not now:
            successor = next((u for u in self._members(up.namespace) if u is not up and u.available()), None)
            to = successor.id if successor is not None else "none"
            self.metrics.failover(up.id, to)
            self._event("down", up, reason=reason, to=to)
            log.warning("mcp server %s down (%s); traffic for %s goes to %s", up.id, reason, up.namespace, to)
        elif now and not was:
            self._event("up", up, reason=reason, protocol=up.protocol_version)
        elif not now and up.failed_start is not None:
            self._event("start failed", up, reason=reason, next_timeout_s=up.startup_timeout_s)
        changed, self._changed = self._changed, anyio.Event()
        changed.set()
        await self._refresh_view()

    def _event(self, kind: str, up: Upstream, **fields: Any) -> None:
        self.events.append({"t": time.time(), "event": kind, "server": up.id, "pid": up.pid, **fields})
        del self.events[:-_EVENT_LOG]

    async def _refresh_view(self) -> None:
        catalogs = []
        for namespace, members in self.namespaces.items():
            source = next((u for u in members if u.available()), None) or next(
                (u for u in members if u.catalog.tools or u.catalog.resources or u.catalog.prompts), None
            )
            if source is not None:
                catalogs.append((namespace, source.catalog))
        view = AggregateView.build(catalogs, prefix=self.options.prefix)
        self._plans = {}  # routing plans depend on which server lists which tool
        for clash in set(view.clashes) - set(self.view.clashes):
            log.warning("mcp gateway (pass-through): %s", clash)
        self.view = view
        digest_now = view.digest()
        changed = [k for k in digest_now if digest_now[k] != self._digest.get(k)]
        self._digest = digest_now
        if changed and self._settled.is_set():
            await self._notify_list_changed(changed)

    async def _notify_list_changed(self, kinds: list[str]) -> None:
        if "tools" in kinds:
            await self._bus.publish(ToolsListChanged())
        if "prompts" in kinds:
            await self._bus.publish(PromptsListChanged())
        if "resources" in kinds:
            await self._bus.publish(ResourcesListChanged())
        for session in list(self._sessions.values()):
            try:
                if "tools" in kinds:
                    await session.send_tool_list_changed()
                if "prompts" in kinds:
                    await session.send_prompt_list_changed()
                if "resources" in kinds:
                    await session.send_resource_list_changed()
            except (anyio.ClosedResourceError, anyio.BrokenResourceError, MCPError):
                continue

    async def _on_upstream_notification(self, up: Upstream, message: types.ServerNotification) -> None:
        if isinstance(message, types.LoggingMessageNotification):
            params = message.params
            logger = params.logger or up.namespace
            ctx = self._caller(up)
            if isinstance(ctx, FastCall):
                # a raw call carries no per-request log opt-in: a 2026-07-28 caller gets nothing (as on the SDK
                # path); a handshake-era caller's session sends it tagged with the call's id, as for any call
                if ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS:
                    for session in list(self._sessions.values()):
                        await session.send_log_message(params.level, params.data, logger,
                                                       related_request_id=ctx.request_id)  # fmt: skip
                return
            if ctx is not None:
                await ctx.session.send_log_message(params.level, params.data, logger, related_request_id=ctx.request_id)
                return
            for session in list(self._sessions.values()):
                await session.send_log_message(params.level, params.data, logger)
        elif isinstance(message, types.ResourceUpdatedNotification):
            await self._bus.publish(ResourceUpdated(str(message.params.uri)))
            for session in list(self._sessions.values()):
                await session.send_resource_updated(message.params.uri)

    async def _relay_peer_request(self, up: Upstream, method: str, params: Any) -> Any:
        """Relay an upstream's sampling / elicitation request to the downstream request that is waiting on it."""
        ctx = self._caller(up)
        session: ServerSession | None = None
        if isinstance(ctx, FastCall):  # a raw call retried here: its peer's session (none on a 2026-07-28 face)
            if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
                return NoBackChannelError(method).error  # what the SDK path answers such a caller
            session = next(iter(self._sessions.values()), None)
        elif ctx is not None:
            session = ctx.session
        if ctx is None or session is None:
            return types.ErrorData(code=types.INVALID_REQUEST, message=f"{method}: no caller is waiting on {up.id}")
        request: Any
        result_type: Any
        if method == "sampling/createMessage":
            request, result_type = types.CreateMessageRequest(params=params), types.CreateMessageResult
        else:
            request, result_type = types.ElicitRequest(params=params), types.ElicitResult
        try:
            return await session.send_request(
                request, result_type, metadata=ServerMessageMetadata(related_request_id=ctx.request_id)
            )
        except MCPError as exc:  # NoBackChannelError too (a 2026-07-28 caller): the SDK's own refusal
            return exc.error

    def _remember(self, ctx: ServerRequestContext[Any, Any]) -> None:
        self.fast.learn(ctx.protocol_version)
        if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
            return  # 2026-07-28 peers hear of changes on subscriptions/listen streams, not on this channel
        key = id(getattr(ctx.session, "_connection", ctx.session))
        if key not in self._sessions:
            if len(self._sessions) >= _MAX_SESSIONS:
                self._sessions.pop(next(iter(self._sessions)))
            self._sessions[key] = ctx.session

    # -- routing ----------------------------------------------------------------------------------------
    def _members(self, namespace: str) -> list[Upstream]:
        return self.namespaces.get(namespace, [])

    def candidates(self, namespace: str, tool: str | None = None, rule: RoutingRule | None = None) -> list[Upstream]:
        """The upstreams that may serve a request, in the order they are tried (see the module docstring)."""
        primaries, backups = self._members_for(namespace, tool, rule)
        if _rotates(primaries):
            key = f"{namespace}:{','.join(u.id for u in primaries)}"
            turn = self._rr.get(key, 0)
            self._rr[key] = turn + 1
            shift = turn % len(primaries)
            primaries = primaries[shift:] + primaries[:shift]
        return primaries + backups

    def _members_for(
        self, namespace: str, tool: str | None, rule: RoutingRule | None
    ) -> tuple[list[Upstream], list[Upstream]]:
        """(primaries, backups) that may serve a request, best first, before any round-robin turn."""
        route = rule.route(namespace, tool) if rule is not None and tool is not None else None
        names = list(route) if route else [namespace]
        primaries: list[Upstream] = []
        backups: list[Upstream] = []
        for name in names:
            for up in self.upstreams.values():
                if up.spec.name == name:
                    (backups if up.is_backup else primaries).append(up)
        for name in names:
            for spec in self.config.backups_for(name):
                backups.extend(u for u in self.upstreams.values() if u.spec.name == spec.name and u not in backups)
        if tool is not None:
            primaries = [u for u in primaries if _offers(u, tool)]
            backups = [u for u in backups if _offers(u, tool)]
        if not _rotates(primaries):
            primaries.sort(key=lambda u: (u.spec.priority, u.replica))
        backups.sort(key=lambda u: (u.spec.priority, u.replica))
        return primaries, backups

    async def _pick(self, candidates: list[Upstream], tried: set[tuple[str, int]], deadline: float) -> Upstream | None:
        """The first candidate that is up and not yet tried in its current life; waits (bounded) for one."""
        while True:
            for up in candidates:
                if up.available() and (up.id, up.starts) not in tried:
                    return up
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not any(not u.stopped.is_set() for u in candidates):
                return None
            with anyio.move_on_after(remaining):
                await self._changed.wait()

    def retry_safe(self, up: Upstream, tool: str, rule: RoutingRule | None) -> bool:
        if rule is not None and rule.retry_safe is not None:
            return rule.retry_safe
        item = up.catalog.tool(tool) or {}
        annotations = item.get("annotations") or {}
        return bool(annotations.get("readOnlyHint")) or up.spec.retry_safe(tool)

    def _caller(self, up: Upstream) -> Caller | None:
        """The downstream request most recently sent to ``up`` and still waiting (for request-scoped relays)."""
        calls = self._calling.get(up.id)
        return calls[-1] if calls else None

    def calling(self, up: Upstream) -> list[Caller]:
        """The downstream requests waiting on ``up``, oldest first."""
        return self._calling.setdefault(up.id, [])

    def deadline(self, candidates: list[Upstream]) -> float:
        """How long a request may wait for one of ``candidates`` to be up."""
        return time.monotonic() + max(u.spec.probe_timeout_s for u in candidates)

    async def forward(
        self,
        ctx: Caller,
        method: str,
        namespace: str,
        params: dict[str, Any],
        *,
        upstream_name: str | None = None,
        name_key: str | None = None,
        retry_ok: bool | None = None,
        rule: RoutingRule | None = None,
        candidates: list[Upstream] | None = None,
        deadline: float | None = None,
        tried: set[tuple[str, int]] | None = None,
        failures: list[UpstreamFailure] | None = None,
    ) -> dict[str, Any]:
        """Forward one request to the namespace's servers, failing over when the answer cannot come.

        ``deadline``, ``tried`` and ``failures`` carry on a call whose first attempt failed elsewhere (a raw
        call whose server went away)."""
        if candidates is None:
            candidates = self.candidates(namespace, upstream_name if method == "tools/call" else None, rule)
        if not candidates:
            raise MCPError(code=METHOD_NOT_FOUND, message=f"no server serves {namespace}")
        if deadline is None:
            deadline = self.deadline(candidates)
        tried = set() if tried is None else tried
        failures = [] if failures is None else failures
        progress = self._progress_relay(ctx)
        while True:
            up = await self._pick(candidates, tried, deadline)
            if up is None:
                break
            tried.add((up.id, up.starts))
            out = upstream_params(params, modern=up.modern)
            if name_key is not None and upstream_name is not None:
                out[name_key] = upstream_name
            waiting = self.calling(up)  # the calls _caller relays sampling/elicitation for
            waiting.append(ctx)
            try:
                result = await up.forward(
                    method, out, progress=progress, timeout=(up.spec.timeout_ms or 0) / 1000 or None
                )
            except UpstreamFailure as exc:
                failures.append(exc)
                refused = self._failed(up, exc, method, retry_ok, ctx)
                if refused is not None:
                    return refused
                continue
            finally:
                waiting.remove(ctx)
            self.metrics.call(up.id, "error" if result.get("isError") else "ok")
            if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
                result.setdefault("resultType", "complete")
            return result
        why = "; ".join(f.reason for f in failures) or "no server is up"
        if method == "tools/call":
            return _error_result(f"no server could answer {namespace}: {why}", ctx)
        raise MCPError(code=types.INTERNAL_ERROR, message=f"no server could answer {method} for {namespace}: {why}")

    def _failed(
        self, up: Upstream, exc: UpstreamFailure, method: str, retry_ok: bool | None, ctx: Caller
    ) -> dict[str, Any] | None:
        """After ``up`` gave no answer: restart it if it hangs on, and the call's error result when it must not
        be retried elsewhere (None: try the next candidate)."""
        if exc.kind == "closed" and (up.child is None or up.child.alive()):
            up.request_restart(f"call failed: {exc.reason}")
        if exc.sent and not retry_ok:
            self.metrics.call(up.id, "failed")
            return _error_result(
                f"{up.id} failed during {method} ({exc.reason}); not retried on another server because "
                "the tool is not marked safe to retry (readOnlyHint, or retry_safe in the pool config)",
                ctx,
            )
        self._event("retry", up, method=method, reason=exc.reason)
        return None

    async def continue_call(self, call: FastCall, exc: UpstreamFailure) -> dict[str, Any]:
        """A raw tools/call whose server gave no answer, carried on as a failed SDK-path call is."""
        refused = self._failed(call.up, exc, "tools/call", call.plan.retry_ok, call)
        if refused is not None:
            return refused
        return await self.forward(
            call, "tools/call", call.namespace, call.params, upstream_name=call.tool, name_key="name",
            retry_ok=call.plan.retry_ok, rule=call.plan.rule, candidates=call.candidates, deadline=call.deadline,
            tried={(call.up.id, call.starts)}, failures=[exc],
        )  # fmt: skip

    def _progress_relay(self, ctx: Caller) -> Any:
        if isinstance(ctx, FastCall) or progress_token_from_params(ctx.params) is None:
            return None  # the caller did not ask for progress

        last = -float("inf")

        async def relay(progress: float, total: float | None, message: str | None) -> None:
            nonlocal last
            if progress <= last:  # a retry on a backup starts counting again; progress must only increase
                return
            last = progress
            await ctx.session.report_progress(progress, total, message)

        return relay

    # -- the downstream server -----------------------------------------------------------------------------
    def _build_server(self) -> Server[Any]:
        server: Server[Any] = Server(
            self.options.name,
            version=__version__,
            instructions="ultramax MCP gateway: tools of the project's pooled servers"
            + (", named <server>__<tool>." if self.options.prefix else "."),
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
            on_list_resources=self._list_resources,
            on_list_resource_templates=self._list_templates,
            on_read_resource=self._read_resource,
            on_subscribe_resource=self._subscribe,
            on_unsubscribe_resource=self._unsubscribe,
            on_list_prompts=self._list_prompts,
            on_get_prompt=self._get_prompt,
            on_completion=self._complete,
            on_subscriptions_listen=self._listen,
            # lists change whenever an upstream does: 2026-07-28 clients must not keep them (list_changed says when)
            cache_hints={m: CacheHint(ttl_ms=0, scope="private") for m in _CACHEABLE},
        )
        server.middleware = []  # the SDK's default OpenTelemetry span per message: no exporter here, only cost
        server.add_request_handler("logging/setLevel", types.SetLevelRequestParams, self._set_level)
        server.add_notification_handler("notifications/initialized", types.NotificationParams, self._initialized)
        return server

    def initialization_options(self) -> Any:
        return self.server.create_initialization_options(NotificationOptions(True, True, True))

    async def _initialized(self, ctx: ServerRequestContext[Any, Any], params: Any) -> None:
        self._remember(ctx)

    async def _ready(self, ctx: ServerRequestContext[Any, Any]) -> None:
        """Remember the peer; before the servers' first start has settled, wait for it (bounded)."""
        self._remember(ctx)
        if not self._settled.is_set():
            await self.wait_settled()

    async def _list_tools(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> Any:
        await self._ready(ctx)
        items, cursor = page([e.item for e in self.view.tools], params.cursor if params else None,
                             self.options.page_size)  # fmt: skip
        return _with_cursor({"tools": items}, cursor, ctx)

    async def _call_tool(self, ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams) -> Any:
        self._remember(ctx)
        entry = self.view.tool_index.get(params.name)
        if entry is None and not self._settled.is_set():
            await self._ready(ctx)
            entry = self.view.tool_index.get(params.name)
        if entry is None:
            return _error_result(f"Unknown tool: {params.name}", ctx)
        plan = self.plan_for(params.name, entry.namespace, entry.upstream_name)
        if plan.gate is not None:
            refusal = self.gate.check(entry.namespace, entry.upstream_name, plan.gate, dict(params.arguments or {}))
            if refusal is not None:
                return _error_result(refusal, ctx)
        return await self.forward(
            ctx, "tools/call", entry.namespace, dict(ctx.params or {}), upstream_name=entry.upstream_name,
            name_key="name", retry_ok=plan.retry_ok, rule=plan.rule, candidates=self.turn(plan),
        )  # fmt: skip

    def settled(self) -> bool:
        return self._settled.is_set()

    def plan_for(self, name: str, namespace: str, tool: str) -> _Plan:
        """The routing plan of the tool the caller knows as ``name`` (cached until the catalog changes)."""
        plan = self._plans.get(name)
        if plan is None:
            plan = self._plans[name] = self._plan(namespace, tool)
        return plan

    def tool_error(self, text: str, protocol_version: str) -> dict[str, Any]:
        """A tool error result for a caller of ``protocol_version``."""
        return _error_result(text, protocol_version)

    def _plan(self, namespace: str, tool: str) -> _Plan:
        """How calls of one tool are routed: worked out once per catalog, not per call."""
        rule = self.config.rule_for(namespace, tool)
        primaries, backups = self._members_for(namespace, tool, rule)
        members = primaries + backups
        gate = self.config.safety_rule(namespace, tool, {u.spec.name for u in members})
        retry_ok = self.retry_safe(members[0], tool, rule) if members else False
        return _Plan(rule, gate, members, len(primaries) if _rotates(primaries) else 0, retry_ok)

    def turn(self, plan: _Plan) -> list[Upstream]:
        """The plan's candidates, with its round-robin primaries turned by one on every call."""
        if not plan.rotate:
            return plan.members
        plan.turn += 1
        return self.rotation(plan, plan.turn)

    @staticmethod
    def rotation(plan: _Plan, turn: int) -> list[Upstream]:
        """The plan's candidates at round-robin ``turn`` (without taking the turn)."""
        if not plan.rotate:
            return plan.members
        shift = turn % plan.rotate
        head = plan.members[: plan.rotate]
        return head[shift:] + head[:shift] + plan.members[plan.rotate :]

    async def _list_resources(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> Any:
        await self._ready(ctx)
        items, cursor = page([e.item for e in self.view.resources], params.cursor if params else None,
                             self.options.page_size)  # fmt: skip
        return _with_cursor({"resources": items}, cursor, ctx)

    async def _list_templates(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> Any:
        await self._ready(ctx)
        items, cursor = page([e.item for e in self.view.templates], params.cursor if params else None,
                             self.options.page_size)  # fmt: skip
        return _with_cursor({"resourceTemplates": items}, cursor, ctx)

    def _owner(self, uri: str) -> str:
        owner = self.view.resource_owner(uri)
        if owner is None:
            with_resources = [ns for ns, m in self.namespaces.items() if any("resources" in u.capabilities for u in m)]
            if len(with_resources) == 1:
                return with_resources[0]
            raise MCPError(code=INVALID_PARAMS, message=f"Resource not found: {uri}")
        return owner

    async def _read_resource(self, ctx: ServerRequestContext[Any, Any], params: types.ReadResourceRequestParams) -> Any:
        await self._ready(ctx)
        return await self.forward(ctx, "resources/read", self._owner(str(params.uri)), dict(ctx.params or {}),
                                  retry_ok=True)  # fmt: skip

    async def _subscribe(self, ctx: ServerRequestContext[Any, Any], params: types.SubscribeRequestParams) -> Any:
        await self._ready(ctx)
        return await self.forward(ctx, "resources/subscribe", self._owner(str(params.uri)), dict(ctx.params or {}),
                                  retry_ok=True)  # fmt: skip

    async def _unsubscribe(self, ctx: ServerRequestContext[Any, Any], params: types.UnsubscribeRequestParams) -> Any:
        await self._ready(ctx)
        return await self.forward(ctx, "resources/unsubscribe", self._owner(str(params.uri)),
                                  dict(ctx.params or {}), retry_ok=True)  # fmt: skip

    async def _list_prompts(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> Any:
        await self._ready(ctx)
        items, cursor = page([e.item for e in self.view.prompts], params.cursor if params else None,
                             self.options.page_size)  # fmt: skip
        return _with_cursor({"prompts": items}, cursor, ctx)

    async def _get_prompt(self, ctx: ServerRequestContext[Any, Any], params: types.GetPromptRequestParams) -> Any:
        await self._ready(ctx)
        entry = self.view.prompt_index.get(params.name)
        if entry is None:
            raise MCPError(code=INVALID_PARAMS, message=f"Unknown prompt: {params.name}")
        return await self.forward(ctx, "prompts/get", entry.namespace, dict(ctx.params or {}),
                                  upstream_name=entry.upstream_name, name_key="name", retry_ok=True)  # fmt: skip

    async def _complete(self, ctx: ServerRequestContext[Any, Any], params: types.CompleteRequestParams) -> Any:
        await self._ready(ctx)
        raw = dict(ctx.params or {})
        ref = dict(raw.get("ref") or {})
        if ref.get("type") == "ref/prompt":
            entry = self.view.prompt_index.get(str(ref.get("name")))
            if entry is None:
                raise MCPError(code=INVALID_PARAMS, message=f"Unknown prompt: {ref.get('name')}")
            raw["ref"] = {**ref, "name": entry.upstream_name}
            namespace = entry.namespace
        else:
            namespace = self._owner(str(ref.get("uri")))
        return await self.forward(ctx, "completion/complete", namespace, raw, retry_ok=True)

    async def _set_level(self, ctx: ServerRequestContext[Any, Any], params: types.SetLevelRequestParams) -> Any:
        await self._ready(ctx)
        for members in self.namespaces.values():
            for up in members:
                if "logging" in up.capabilities and up.available():
                    try:
                        await up.forward("logging/setLevel", {"level": params.level}, timeout=up.spec.probe_timeout_s)
                    except (MCPError, UpstreamFailure) as exc:
                        log.debug("logging/setLevel on %s failed: %s", up.id, exc)
        return {}


def _rotates(primaries: list[Upstream]) -> bool:
    return len(primaries) > 1 and all(u.spec.pool.strategy == "round-robin" for u in primaries)


def _offers(up: Upstream, tool: str) -> bool:
    """Whether the upstream lists ``tool`` (an upstream that has never listed anything may still offer it)."""
    return not up.catalog.tools or up.catalog.tool(tool) is not None


def _error_result(text: str, ctx: Caller | str) -> dict[str, Any]:
    """A tool error the model can read (never a protocol error: the model may then try something else)."""
    result: dict[str, Any] = {"content": [{"type": "text", "text": text}], "isError": True}
    version = ctx if isinstance(ctx, str) else ctx.protocol_version
    if version in MODERN_PROTOCOL_VERSIONS:
        result["resultType"] = "complete"
    return result


def _with_cursor(result: dict[str, Any], cursor: str | None, ctx: ServerRequestContext[Any, Any]) -> dict[str, Any]:
    if cursor is not None:
        result["nextCursor"] = cursor
    if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
        result["resultType"] = "complete"
    return result
