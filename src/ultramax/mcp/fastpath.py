"""The gateway's raw path for ``tools/call``: relayed line to line, without the SDK's per-request machinery.

On the stdio face a ``tools/call`` line is recognised before the SDK parses it. When it is safe the gateway
relays it as JSON straight to the chosen upstream's pipe -- tool name de-namespaced, id replaced by one of
its own (``ultramax-raw-<n>``) -- and relays the answer line back with the caller's id: no pydantic message
models, no task per request, no memory streams. The checks and transforms are the SDK's own functions (request
validated per era, params rebuilt for the upstream's era by ``upstream_params`` as ``Upstream.forward`` does and,
for a 2026-07-28 upstream, stamped by the SDK client session's own per-request stamp -- the ``_meta`` envelope of
protocol version, client info and capabilities -- result validated for the upstream's era and shaped for the
caller's), so what the caller gets is what the SDK path would give it; routing, the round-robin turn, the safety
gate and its audit, metrics and the ``_calling`` record (for log relays) are the gateway's own, called the same
way. A 2026-07-28 upstream's ``input_required`` (or other) result type is relayed as the SDK path relays it
(validated for that era, kept, shaped for the caller by the SDK runner's rules); a request a server sends its
client mid-call is never a raw call's answer and is handled by the SDK client session, on either path.

The raw path is taken only when all of these hold, and the SDK path handles the call otherwise:

- the face's session is up (the SDK already served this peer a request) and the request is valid for its era;
- no progress token and no per-request log level (2026-07-28) -- those need the SDK's per-request session;
- the tool is known and its first candidate (same rotation as the SDK path) is up, a stdio child of either era
  (handshake, or 2026-07-28 when the SDK client's stamp is at hand) not pinned to ``legacy`` (such servers may ask
  the caller questions), whose pipe is open and not pushing back. A server's per-call timeout is kept as the SDK
  keeps it (cancelled upstream, then failover).

A ``notifications/cancelled`` for a raw call is forwarded with the upstream's id (the same notification, in both
eras, as the SDK client's courtesy cancel: 2026-07-28 keeps it on the stream transports). If the upstream goes away
(or answers with a connection-closed / timeout error) while a raw call waits, the call continues on the SDK
path exactly as a failed SDK call does: retried on the next candidate when retry-safe, else the same error.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
import mcp_types as types
from mcp.shared.dispatcher import as_request_id, coerce_request_id
from mcp.shared.exceptions import MCPError
from mcp.shared.inbound import InboundLadderRejection, classify_inbound_request
from mcp.shared.jsonrpc_dispatcher import progress_token_from_params
from mcp_types import (
    CONNECTION_CLOSED,
    CORE_RESULT_TYPES,
    INTERNAL_ERROR,
    LOG_LEVEL_META_KEY,
    PROTOCOL_VERSION_META_KEY,
    REQUEST_TIMEOUT,
    SERVER_INFO_META_KEY,
    RequestId,
)
from mcp_types import methods as _methods
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS
from pydantic import ValidationError

from ultramax.mcp.process import PipeWriter, RawLink, dumps_line, loads_line
from ultramax.mcp.upstream import NO_TIMEOUT_S, Upstream, UpstreamFailure, clean_result, upstream_params

if TYPE_CHECKING:
    from mcp.server.lowlevel import Server

    from ultramax.mcp.gateway import Gateway, _Plan

__all__ = ["FastCall", "FastPath", "face_result", "upstream_result"]

try:  # the SDK client's own rule for fields of later revisions (private): the raw path drops what the SDK drops
    from mcp.client.session import _later_revision_fields
except ImportError:  # pragma: no cover -- a later mcp 2.x moved it: the raw path switches off, the SDK path serves
    _later_revision_fields = None  # type: ignore[assignment]

log = logging.getLogger("ultramax.mcp")

_METHOD = "tools/call"
_REQUEST_KEYS = frozenset({"jsonrpc", "id", "method", "params"})


def upstream_result(up: Upstream, raw: dict[str, Any]) -> dict[str, Any]:
    """An upstream's ``tools/call`` result as the SDK client's ``send_request`` and ``Upstream.forward`` hand it
    on: validated for the upstream's era (``MCPError`` if invalid), later revisions' fields (none at 2026-07-28)
    and the upstream's envelope stamps dropped; any ``resultType`` (``input_required`` included) kept as is."""
    version = up.protocol_version or "2025-11-25"
    ttl = raw.get("ttlMs")  # a negative cache ttl is floored to 0 before validation, as the SDK client does
    if isinstance(ttl, int | float) and not isinstance(ttl, bool) and ttl < 0:
        raw["ttlMs"] = 0
    try:
        _methods.validate_server_result(_METHOD, version, raw)
    except KeyError:
        pass
    except ValidationError as exc:
        raise MCPError(code=INTERNAL_ERROR, message=f"{up.id} returned an invalid {_METHOD} result: "
                       f"{exc.errors()[0].get('msg', exc)}") from None  # fmt: skip
    if _later_revision_fields is not None and not (foreign := _later_revision_fields(_METHOD, version)).isdisjoint(raw):
        raw = {key: value for key, value in raw.items() if key not in foreign}
    return clean_result(raw)


def face_result(server: Server[Any], version: str, result: dict[str, Any]) -> dict[str, Any]:
    """A ``tools/call`` result shaped for a caller of ``version`` as the SDK's server runner shapes it: the
    gateway's ``resultType`` default, the per-version sieve (``MCPError`` if invalid), the serverInfo stamp."""
    modern = version in MODERN_PROTOCOL_VERSIONS
    dumped = dict(result)
    if modern:
        dumped.setdefault("resultType", "complete")
    result_type = dumped.get("resultType")
    if not modern or not isinstance(result_type, str) or result_type in CORE_RESULT_TYPES:
        try:
            dumped = _methods.serialize_server_result(_METHOD, version, dumped)
        except ValidationError:
            log.error("mcp gateway: a %s result failed the %s surface", _METHOD, version)
            raise MCPError(code=INTERNAL_ERROR, message="Handler returned an invalid result") from None
    if not modern:
        return dumped
    if dumped.get("resultType") is None:
        dumped["resultType"] = "complete"
    meta = dumped.get("_meta")
    if meta is None:
        dumped["_meta"] = {SERVER_INFO_META_KEY: server.server_info_stamp}
    elif isinstance(meta, dict) and meta.get(SERVER_INFO_META_KEY) is None:
        dumped["_meta"] = {**meta, SERVER_INFO_META_KEY: server.server_info_stamp}
    return dumped


@dataclass(slots=True, eq=False)
class FastCall:
    """One downstream ``tools/call`` on the raw path."""

    fast: FastPath
    face_id: RequestId
    key: RequestId
    protocol_version: str  # the caller's, for this request
    params: dict[str, Any]
    namespace: str
    tool: str
    arguments: dict[str, Any]
    plan: _Plan
    up: Upstream
    link: RawLink
    stamp: Callable[[dict[str, Any], Any], None] | None = None  # the SDK client's, for a 2026-07-28 upstream
    candidates: list[Upstream] = field(default_factory=list)
    deadline: float = 0.0
    starts: int = 0
    upstream_id: str = ""
    wait: float | None = None  # the server's per-call timeout (seconds)
    timer: asyncio.TimerHandle | None = None
    released: bool = False  # the upstream is done with it (answered, or gone)
    scope: anyio.CancelScope | None = None  # set while the call continues on the SDK path
    cancelled: bool = False

    @property
    def request_id(self) -> RequestId:
        """The caller's id (what a relayed log message is tagged with)."""
        return self.face_id

    def answered(self, result: dict[str, Any] | None, error: types.ErrorData | None) -> None:
        self.fast.answered(self, result, error)

    def lost(self) -> None:
        self.fast.failed(self, UpstreamFailure(self.up.id, "connection closed"))


def _model_line(message: types.JSONRPCResponse | types.JSONRPCError) -> bytes:
    return message.model_dump_json(by_alias=True, exclude_unset=True).encode() + b"\n"


class FastPath:
    """The raw ``tools/call`` path of one gateway's stdio face (see the module docstring)."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.face: PipeWriter | None = None
        self.version: str | None = None  # the face's protocol era, once the SDK has served the peer
        self.calls: dict[RequestId, FastCall] = {}
        self.counts: Counter[str] = Counter()

    # -- the face ------------------------------------------------------------------------------------------
    def attach(self, face: Any) -> None:
        """Serve the raw path on this face (a ``PipeWriter``; any other stream keeps every call on the SDK)."""
        if (
            isinstance(face, PipeWriter)
            and self.gateway.server.cache_hints.get(_METHOD) is None
            and _later_revision_fields is not None
        ):
            self.face = face

    def learn(self, protocol_version: str) -> None:
        """The SDK served the peer a request at ``protocol_version``: its session is up."""
        if self.version is None:
            self.version = protocol_version

    def closed(self) -> None:
        """The face is gone: nobody waits for the raw calls any more."""
        self.face = None
        for call in list(self.calls.values()):
            self._drop(call)

    def stats(self) -> dict[str, Any]:
        taken = self.counts["taken"]
        return {"taken": taken, "fallbacks": {k: v for k, v in sorted(self.counts.items()) if k != "taken"},
                "pending": len(self.calls), "attached": self.face is not None}  # fmt: skip

    def on_face_line(self, line: bytes) -> bool:
        """True when the line was handled here (a raw call, or a cancellation of one)."""
        if self.face is None or self.version is None:
            return False
        try:
            if b'"tools/call"' in line:
                return self._request(line)
            if self.calls and b"notifications/cancelled" in line:
                return self._cancel(line)
        except Exception:  # a pipe callback: a fault here must not close the caller's pipe; the SDK takes the line
            log.exception("mcp gateway: the raw tools/call path failed on a line; left to the SDK path")
        return False

    def _request(self, line: bytes) -> bool:
        try:
            message = loads_line(line)
        except ValueError:
            return False
        if type(message) is not dict or message.keys() != _REQUEST_KEYS or message["method"] != _METHOD:
            return False
        face_id, params = message["id"], message["params"]
        if message["jsonrpc"] != "2.0" or as_request_id(face_id) is None or type(params) is not dict:
            return False
        admitted = self._admit(face_id, params)
        if isinstance(admitted, str):
            self._count(admitted)
            return False
        # committed from here on, once each as on the SDK path: the round-robin turn, the gate (decides and
        # audits), the send
        call = admitted
        self.calls[call.key] = call
        self._count("taken")
        try:
            gateway = self.gateway
            call.candidates = gateway.turn(call.plan)
            call.deadline = gateway.deadline(call.candidates)
            gate = call.plan.gate
            if gate is not None:
                refusal = gateway.gate.check(call.namespace, call.tool, gate, call.arguments)
                if refusal is not None:
                    self._respond(call, gateway.tool_error(refusal, call.protocol_version))
                    return True
            self._send(call)
        except Exception as exc:  # noqa: BLE001 -- committed: answered as the SDK answers a handler that raised
            self._fault(call, exc)
        return True

    def _admit(self, face_id: RequestId, params: dict[str, Any]) -> FastCall | str:
        """The call, validated and routed as the SDK path would; else why it stays on the SDK path.

        Nothing changes state here: a call that falls back is handled from scratch by the SDK path (its
        round-robin turn, its gate decision and audit are taken there).
        """
        gateway = self.gateway
        key = coerce_request_id(face_id)
        if key in self.calls:
            return "duplicate id"
        version = self.version
        assert version is not None
        meta = params.get("_meta")
        if version in MODERN_PROTOCOL_VERSIONS:
            route = classify_inbound_request({"method": _METHOD, "params": params})
            if isinstance(route, InboundLadderRejection):
                return "invalid"
            version = route.protocol_version
            if isinstance(meta, dict) and LOG_LEVEL_META_KEY in meta:
                return "log level"
        elif isinstance(meta, dict) and PROTOCOL_VERSION_META_KEY in meta:
            return "invalid"  # a 2026-07-28 envelope on a handshake-era session: the SDK refuses it
        if progress_token_from_params(params) is not None:
            return "progress"
        try:
            _methods.validate_client_request(_METHOD, version, params)
        except (ValidationError, KeyError, ValueError):
            return "invalid"
        # validated for the era just above: a string name and an object (or no) arguments
        name: str = params["name"]
        arguments: dict[str, Any] = params.get("arguments") or {}
        entry = gateway.view.tool_index.get(name) if gateway.settled() else None
        if entry is None:
            return "unknown tool"
        plan = gateway.plan_for(name, entry.namespace, entry.upstream_name)
        candidates = gateway.rotation(plan, plan.turn + 1)
        if not candidates:
            return "unknown tool"
        up = next((u for u in candidates if u.available()), None)
        if up is None:
            return "no server up"
        link = up.link
        if link is None or not link.writable() or up.child is None or not up.child.alive():
            return "upstream transport"
        stamp = None
        if up.protocol_version in MODERN_PROTOCOL_VERSIONS:
            stamp = up.request_stamp()  # the SDK client's envelope for a 2026-07-28 server, stamped on the request
            if stamp is None:
                return "upstream era"
        elif up.protocol_version not in HANDSHAKE_PROTOCOL_VERSIONS:
            return "upstream era"
        if up.spec.protocol == "legacy":
            return "pinned to legacy"  # such a server may ask the caller questions mid-call: the SDK relays them
        return FastCall(self, face_id, key, version, params, entry.namespace, entry.upstream_name,
                        dict(arguments), plan, up, link, stamp)  # fmt: skip

    def _send(self, call: FastCall) -> None:
        up = call.up
        # the params as Upstream.forward and the SDK client build them: rebuilt for the upstream's era, the tool
        # de-namespaced, then (2026-07-28) the client session's own stamp adds the _meta envelope
        out = upstream_params(call.params, modern=call.stamp is not None)
        out["name"] = call.tool
        if call.stamp is not None:
            call.stamp({"method": _METHOD, "params": out}, {})
        if not out.get("_meta"):
            out.pop("_meta", None)  # the SDK sends no empty _meta
        call.starts = up.starts
        self.gateway.calling(up).append(call)
        up.inflight += 1
        call.link.issue(call, _METHOD, out)
        call.wait = (up.spec.timeout_ms or 0) / 1000 or None
        if call.wait is not None:  # the SDK's clock, which starts once the request is written
            call.timer = asyncio.get_running_loop().call_later(call.wait, self._timed_out, call)

    def _timed_out(self, call: FastCall) -> None:
        """No answer within the server's timeout: cancelled upstream, and the call goes on as a timed-out SDK call
        does (retried on the next candidate when it is safe to)."""
        call.timer = None
        if call.link.pending.get(call.upstream_id) is not call:
            return
        call.link.cancel(call, f"timed out after {call.wait}s")
        self.failed(call, UpstreamFailure(call.up.id, f"no answer within {call.wait:g} s", kind="timeout"))

    def _cancel(self, line: bytes) -> bool:
        try:
            message = loads_line(line)
        except ValueError:
            return False
        if type(message) is not dict or message.get("method") != "notifications/cancelled":
            return False
        params = message.get("params")
        rid = as_request_id(params.get("requestId")) if type(params) is dict else None
        call = self.calls.get(coerce_request_id(rid)) if rid is not None else None
        if call is None:
            return False
        call.cancelled = True
        if call.scope is not None:
            call.scope.cancel()  # on the SDK path after a failure: the SDK sends the upstream's cancellation
        else:
            call.link.cancel(call)
            self._drop(call)
        return True

    # -- answers --------------------------------------------------------------------------------------------
    def answered(self, call: FastCall, result: dict[str, Any] | None, error: types.ErrorData | None) -> None:
        """The upstream answered a raw call (``result`` or ``error``)."""
        try:
            self._answered(call, result, error)
        except Exception as exc:  # noqa: BLE001 -- a pipe callback: answered as the SDK answers a handler that raised
            self._fault(call, exc)

    def _answered(self, call: FastCall, result: dict[str, Any] | None, error: types.ErrorData | None) -> None:
        up = call.up
        if error is not None and error.code == CONNECTION_CLOSED:
            self.failed(call, UpstreamFailure(up.id, "connection closed"))
            return
        if error is not None and error.code == REQUEST_TIMEOUT:
            wait = call.wait or NO_TIMEOUT_S
            self.failed(call, UpstreamFailure(up.id, f"no answer within {wait:g} s", kind="timeout"))
            return
        self._release(call)
        if error is not None:
            self._respond_error(call, MCPError(code=error.code, message=error.message, data=error.data))
            return
        assert result is not None
        try:
            out = upstream_result(up, result)
        except MCPError as exc:
            self._respond_error(call, exc)
            return
        self.gateway.metrics.call(up.id, "error" if out.get("isError") else "ok")
        self._respond(call, out)

    def failed(self, call: FastCall, failure: UpstreamFailure) -> None:
        """The upstream gave no answer: the call goes on as a failed SDK-path call does."""
        self._release(call)
        if self.gateway.task_group is None:
            self._drop(call)
            return
        self.gateway.task_group.start_soon(self._continue, call, failure)

    async def _continue(self, call: FastCall, failure: UpstreamFailure) -> None:
        if call.cancelled:
            return  # cancelled by the caller before the failure was acted on: no retry, no answer
        with anyio.CancelScope() as scope:
            call.scope = scope
            try:
                result = await self.gateway.continue_call(call, failure)
            except MCPError as exc:
                self._respond_error(call, exc)
                return
            except Exception as exc:  # noqa: BLE001 -- the task's top: answered as the SDK answers a handler that raised
                self._fault(call, exc)
                return
            self._respond(call, result)
        if scope.cancelled_caught:
            self._drop(call)

    # -- bookkeeping and writes -----------------------------------------------------------------------------
    def _release(self, call: FastCall) -> None:
        """The upstream is done with the call (answered or gone)."""
        if call.released:
            return
        call.released = True
        if call.timer is not None:
            call.timer.cancel()
            call.timer = None
        up = call.up
        up.inflight -= 1
        waiting = self.gateway.calling(up)
        if call in waiting:
            waiting.remove(call)

    def _drop(self, call: FastCall) -> None:
        if self.calls.pop(call.key, None) is None:
            return
        if call.upstream_id:
            call.link.pending.pop(call.upstream_id, None)
            self._release(call)

    def _respond(self, call: FastCall, result: dict[str, Any]) -> None:
        try:
            shaped = face_result(self.gateway.server, call.protocol_version, result)
        except MCPError as exc:
            self._respond_error(call, exc)
            return
        try:
            line = dumps_line({"jsonrpc": "2.0", "id": call.face_id, "result": shaped})
        except ValueError:  # a non-finite float: written as the SDK writes it
            line = _model_line(types.JSONRPCResponse(jsonrpc="2.0", id=call.face_id, result=shaped))
        self._write(call, line)

    def _respond_error(self, call: FastCall, exc: MCPError) -> None:
        self._write(call, _model_line(types.JSONRPCError(jsonrpc="2.0", id=call.face_id, error=exc.error)))

    def _write(self, call: FastCall, line: bytes) -> None:
        if self.calls.pop(call.key, None) is None or call.cancelled:
            return  # cancelled by the caller: never answered (as the SDK does)
        face = self.face
        if face is None or face.transport.is_closing():
            return
        face.transport.write(line)

    def _fault(self, call: FastCall, exc: Exception) -> None:
        """An unexpected error in a call's handling: logged, and the caller gets what the SDK's dispatcher gives
        for a handler that raised (an error with code 0 and the exception's text)."""
        log.error("mcp gateway: raw tools/call of %s failed", call.tool, exc_info=exc)
        if call.upstream_id:
            self._release(call)
        self._respond_error(call, MCPError(code=0, message=str(exc)))

    def _count(self, outcome: str) -> None:
        self.counts[outcome] += 1
        self.gateway.metrics.fast_path(outcome)
