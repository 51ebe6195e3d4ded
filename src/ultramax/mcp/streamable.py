"""The gateway's streamable HTTP face (``ultramax mcp serve --transport http``), with resumable SSE streams.

The official SDK serves the protocol; this module gives each 2025-era session its own bounded event store
(``events.ReplayStore``) and the SSE behaviour of the 2025-11-25 transport (SEP-1699):

- a request's SSE stream opens with a priming event -- an event id, empty data and the ``retry`` field -- so
  the client holds a cursor before anything else happens;
- with ``poll_ms`` set, a call still running after that long has its stream closed by the gateway (the call
  goes on; its messages are stored); the client reconnects after ``retry`` ms with ``GET`` and
  ``Last-Event-ID`` and gets what it missed, then the rest of the stream on that connection until the response;
- a connection the client lost is resumed the same way; an unknown or expired ``Last-Event-ID`` is answered
  ``400`` with the reason before any stream starts.

Whether a client can take priming events is decided by the version its session negotiated (>= 2025-11-25),
not only by the ``MCP-Protocol-Version`` header of the one request: a request that names an older version on a
2025-11-25 session still goes to a client that speaks 2025-11-25 (the conformance suite's polling probe sends
such a request). The 2026-07-28 era has no resumable streams and is served by the SDK as it is.

This relies on the SDK's transport internals (``mcp`` 2.3: ``_admit_session``, ``_mint_priming_event``,
``_create_session_message``, ``_create_event_data``, ``_run_sse_writer``, ``_replay_events``); the tests in
``tests/mcp/test_http_resume.py`` and the conformance suite fail loudly if those change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from uuid import uuid4

import anyio
import mcp_types as types
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.server.auth.middleware.bearer_auth import AuthorizationContext
from mcp.server.lowlevel import Server
from mcp.server.streamable_http import (
    GET_STREAM_KEY,
    EventMessage,
    SSEEvent,
    StreamableHTTPServerTransport,
    StreamId,
)
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.message import SessionMessage
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, LATEST_HANDSHAKE_VERSION
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route
from starlette.types import Send

from ultramax.mcp.events import EventReplayError, ReplayLimits, ReplayStore

__all__ = ["SseOptions", "streamable_http_app"]

_RESUMABLE_FROM = "2025-11-25"  # the first version whose clients take priming events and resume on GET


@dataclass(frozen=True, slots=True)
class SseOptions:
    """SSE behaviour of the HTTP face (see the module docstring)."""

    retry_ms: int = 1000  # the reconnection delay announced in each priming event
    poll_ms: int = 0  # close a running call's stream after this long (0: keep it open until the call ends)
    limits: ReplayLimits = field(default_factory=ReplayLimits)

    def __post_init__(self) -> None:
        if self.retry_ms < 0 or self.poll_ms < 0:
            raise ValueError(f"SSE retry and poll times cannot be negative: {self}")


class _ResumableTransport(StreamableHTTPServerTransport):
    """One session's transport: its own replay store, priming by the session's version, optional polling."""

    def __init__(self, session_id: str, options: SseOptions, **kwargs: Any) -> None:
        self._poll_s = options.poll_ms / 1000 if options.poll_ms else None
        self._store = ReplayStore(options.limits, detach=self.close_sse_stream)
        self._session_version: str | None = None
        super().__init__(session_id, event_store=self._store, retry_interval=options.retry_ms, **kwargs)

    def _version(self, header_version: str) -> str:
        """The version deciding SSE behaviour: the request's, or the session's if that is later."""
        session = self._session_version
        return session if session is not None and session > header_version else header_version

    def _create_session_message(
        self, message: types.JSONRPCRequest, request: Request, request_id: Any, protocol_version: str
    ) -> SessionMessage:
        if message.method == "initialize":  # what the server will agree to: the client's version if it has it
            known = protocol_version in HANDSHAKE_PROTOCOL_VERSIONS
            self._session_version = protocol_version if known else LATEST_HANDSHAKE_VERSION
        return super()._create_session_message(message, request, request_id, self._version(protocol_version))

    async def _mint_priming_event(self, stream_id: StreamId, protocol_version: str) -> SSEEvent | None:
        if stream_id == GET_STREAM_KEY:
            return None  # the standalone stream has no request to prime for (and is resumed by the SDK itself)
        return await super()._mint_priming_event(stream_id, self._version(protocol_version))

    def _create_event_data(self, event_message: EventMessage) -> SSEEvent:
        if event_message.event_id:
            data = self._store.data(event_message.event_id)  # serialised once, when it was stored
            if data is not None:
                return {"event": "message", "data": data, "id": event_message.event_id}
        return super()._create_event_data(event_message)

    async def _run_sse_writer(
        self,
        request_id: Any,
        sse_stream_writer: MemoryObjectSendStream[SSEEvent],
        request_stream_reader: MemoryObjectReceiveStream[EventMessage],
        priming_event: SSEEvent | None,
    ) -> None:
        if priming_event is None or self._poll_s is None:
            await super()._run_sse_writer(request_id, sse_stream_writer, request_stream_reader, priming_event)
            return
        with anyio.move_on_after(self._poll_s) as held:
            await super()._run_sse_writer(request_id, sse_stream_writer, request_stream_reader, priming_event)
        if held.cancelled_caught:  # the call goes on; the client polls for the rest with its last event id
            self.close_sse_stream(request_id)

    async def _replay_events(self, last_event_id: str, request: Request, send: Send) -> None:
        try:
            self._store.locate(last_event_id)
        except EventReplayError as exc:
            response = self._create_error_response(str(exc), HTTPStatus.BAD_REQUEST)
            await response(request.scope, request.receive, send)
            return
        await super()._replay_events(last_event_id, request, send)

    async def terminate(self) -> None:
        self._store.close()
        await super().terminate()


class _SessionManager(StreamableHTTPSessionManager):
    """The SDK's session manager, with a :class:`_ResumableTransport` (and its own store) per session."""

    def __init__(self, app: Server[Any], sse: SseOptions, **kwargs: Any) -> None:
        super().__init__(app, retry_interval=sse.retry_ms, **kwargs)
        self.sse = sse

    def _admit_session(self, requestor: AuthorizationContext | None) -> StreamableHTTPServerTransport | None:
        if self.max_sessions is not None and len(self._server_instances) >= self.max_sessions:
            return None
        transport = _ResumableTransport(
            uuid4().hex,
            self.sse,
            is_json_response_enabled=self.json_response,
            security_settings=self.security_settings,
            idle_timeout=self.session_idle_timeout,
        )
        session_id = transport.mcp_session_id
        assert session_id is not None
        if requestor is not None:
            self._session_owners[session_id] = requestor
        self._server_instances[session_id] = transport
        return transport


def streamable_http_app(server: Server[Any], *, host: str = "127.0.0.1", sse: SseOptions | None = None) -> Starlette:
    """The ASGI app serving ``server`` at ``/mcp`` (what the SDK's ``streamable_http_app`` builds, resumable).

    On a loopback host, DNS-rebinding protection is on (Host and Origin must be loopback), as in the SDK.
    """
    security = None
    if host in ("127.0.0.1", "localhost", "::1"):
        security = TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
            allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
        )
    manager = _SessionManager(server, sse or SseOptions(), security_settings=security)
    return Starlette(
        routes=[Route("/mcp", endpoint=StreamableHTTPASGIApp(manager))],
        lifespan=lambda app: manager.run(),
    )
