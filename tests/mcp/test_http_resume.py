"""Resumable SSE streams on the gateway's HTTP face, driven by real HTTP clients on loopback (SEP-1699).

The gateway runs in-process (its event loop in a blocking portal) on a loopback port with the tests' fixture
server behind it, pass-through names. A raw ``http.client`` connection reads the SSE wire event by event, so
the tests see ids, ``retry`` and where a stream ends; the official SDK client shows an ordinary client resumes
transparently. The fixture's ``sleep`` tool reports progress ten times and records when it has finished, which
lets a test wait (bounded) until a call's events were all produced while no client was connected.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
import uvicorn
from anyio.from_thread import BlockingPortal, start_blocking_portal
from mcp import Client
from mcp.server.streamable_http import GET_STREAM_KEY, EventMessage

from tests.conftest import UltramaxEnv, wait_for
from tests.mcp.harness import Servers, result_text
from ultramax.mcp.events import EventReplayError, ReplayLimits, ReplayStore
from ultramax.mcp.serve import build_gateway
from ultramax.mcp.streamable import SseOptions, streamable_http_app

VERSION = "2025-11-25"


@dataclass
class HttpGateway:
    """A gateway serving HTTP on loopback, and what it was asked."""

    port: int
    record: Path
    portal: BlockingPortal
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (method, Last-Event-ID)
    connections: dict[int, http.client.HTTPConnection] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def finished(self, what: str) -> bool:
        if not self.record.exists():
            return False
        return any(json.loads(line)["event"] == what for line in self.record.read_text().splitlines() if line)

    # -- the raw wire ------------------------------------------------------------------------------------
    def open(self, method: str, body: dict[str, Any] | None = None, **headers: str) -> http.client.HTTPResponse:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
        sent = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": VERSION, **headers}
        if body is not None:
            sent["Content-Type"] = "application/json"
        conn.request(method, "/mcp", body=json.dumps(body) if body is not None else None, headers=sent)
        resp = conn.getresponse()
        self.connections[id(resp)] = conn
        return resp

    def drop(self, resp: http.client.HTTPResponse) -> None:
        """Hang up: the client's connection is gone (what a network failure looks like to the server)."""
        resp.close()
        self.connections.pop(id(resp)).close()

    def close(self) -> None:
        for conn in self.connections.values():
            conn.close()
        self.connections.clear()

    def initialize(self, version: str = VERSION) -> str:
        """A new session (handshake at ``version``); returns its id."""
        resp = self.open("POST", {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "resume-test", "version": "1"}}},
            **{"MCP-Protocol-Version": version})  # fmt: skip
        session = resp.getheader("mcp-session-id")
        assert resp.status == 200 and session, resp.read()
        assert any(e.get("data") for e in sse_events(resp))  # the initialize result
        self.drop(resp)
        note = self.open("POST", {"jsonrpc": "2.0", "method": "notifications/initialized"},
                         **{"Mcp-Session-Id": session, "MCP-Protocol-Version": version})  # fmt: skip
        assert note.status == 202, note.read()
        self.drop(note)
        return session

    def call_sleep(self, session: str, seconds: float, request_id: int = 1, version: str = VERSION) -> Any:
        body = {
            "jsonrpc": "2.0",
            "id": request_id,
            "method": "tools/call",
            "params": {"name": "sleep", "arguments": {"seconds": seconds}, "_meta": {"progressToken": "p"}},
        }
        return self.open("POST", body, **{"Mcp-Session-Id": session, "MCP-Protocol-Version": version})

    def resume(self, session: str, last_event_id: str) -> http.client.HTTPResponse:
        return self.open("GET", None, **{"Mcp-Session-Id": session, "Last-Event-ID": last_event_id})


def sse_events(resp: http.client.HTTPResponse) -> Iterator[dict[str, str]]:
    """The SSE events of a response, as their fields, until the server ends the stream."""
    event: dict[str, str] = {}
    while True:
        line = resp.readline()
        if not line:
            return
        text = line.decode().rstrip("\r\n")
        if not text:
            if event:
                yield event
            event = {}
        elif not text.startswith(":"):
            name, _, value = text.partition(":")
            event[name] = value[1:] if value.startswith(" ") else value


@contextlib.contextmanager
def http_gateway(umx: UltramaxEnv, sse: SseOptions) -> Iterator[HttpGateway]:
    record = umx.root / "fixture.jsonl"
    pools = umx.root / "pools.json"
    server = Servers.fixture("resume", env={"FIXTURE_RECORD": str(record)})
    pools.write_text(json.dumps({"pools": {"primary": {"servers": {"lab": server}}}}))
    gateway = build_gateway(umx.paths, umx.project("resume"), files=[pools], prefix=False)
    app = streamable_http_app(gateway.server, sse=sse)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    with start_blocking_portal() as portal:
        gw = HttpGateway(sock.getsockname()[1], record, portal)

        async def recording(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                headers = dict(scope["headers"])
                last = headers.get(b"last-event-id")
                gw.requests.append((scope["method"], last.decode() if last is not None else None))
            await app(scope, receive, send)

        with portal.wrap_async_context_manager(gateway.running()):
            http_server = uvicorn.Server(
                uvicorn.Config(recording, log_level="warning", lifespan="on", timeout_graceful_shutdown=5)
            )
            serving = portal.start_task_soon(http_server.serve, [sock])
            try:
                wait_for(lambda: http_server.started or serving.done(), 30, "the HTTP face to start")
                assert http_server.started, serving.result()
                yield gw
            finally:
                gw.close()
                http_server.should_exit = True
                serving.result(timeout=30)
                sock.close()


def _messages(events: list[dict[str, str]]) -> list[dict[str, Any]]:
    return [json.loads(e["data"]) for e in events if e.get("data")]


def _progress(messages: list[dict[str, Any]]) -> list[float]:
    return [m["params"]["progress"] for m in messages if m.get("method") == "notifications/progress"]


def test_a_call_stream_opens_with_a_priming_event_carrying_an_id_and_the_retry_delay(umx: UltramaxEnv) -> None:
    with http_gateway(umx, SseOptions(retry_ms=1500)) as gw:
        session = gw.initialize()
        resp = gw.call_sleep(session, 0.05)
        assert resp.status == 200 and resp.getheader("content-type", "").startswith("text/event-stream")
        events = list(sse_events(resp))
    first = events[0]
    assert first["id"] and first["retry"] == "1500" and first.get("data", "") == ""
    assert all(e.get("id") for e in events)  # every event carries an id: any of them is a cursor
    messages = _messages(events)
    assert _progress(messages) == list(range(1, 11)) and messages[-1]["id"] == 1  # the stream ends with the answer


def test_events_missed_while_disconnected_are_replayed_after_reconnecting_with_last_event_id(
    umx: UltramaxEnv,
) -> None:
    with http_gateway(umx, SseOptions()) as gw:
        session = gw.initialize()
        resp = gw.call_sleep(session, 0.3)
        priming = next(sse_events(resp))
        gw.drop(resp)  # the client's connection drops right after the priming event; the call goes on
        wait_for(lambda: gw.finished("sleep-done"), 20, "the call to finish while nobody listens")
        resumed = gw.resume(session, priming["id"])
        assert resumed.status == 200, resumed.read()
        events = list(sse_events(resumed))  # ends by itself: a request's stream ends with its response
    messages = _messages(events)
    assert _progress(messages) == list(range(1, 11))
    assert messages[-1]["id"] == 1 and messages[-1]["result"]["content"][0]["text"] == "slept 0.3 s"
    assert all(e["id"] != priming["id"] for e in events)  # nothing from before the cursor comes again


def test_a_resume_from_the_middle_of_a_stream_sends_only_what_came_after_the_cursor(umx: UltramaxEnv) -> None:
    with http_gateway(umx, SseOptions()) as gw:
        session = gw.initialize()
        resp = gw.call_sleep(session, 0.3)
        stream = sse_events(resp)
        seen = [next(stream) for _ in range(4)]  # the priming event and three progress notifications
        gw.drop(resp)
        wait_for(lambda: gw.finished("sleep-done"), 20, "the call to finish")
        events = list(sse_events(gw.resume(session, seen[-1]["id"])))
    assert _progress(_messages(seen)) == [1, 2, 3]
    assert _progress(_messages(events)) == list(range(4, 11)) and _messages(events)[-1]["id"] == 1


def test_when_polling_the_gateway_closes_a_long_calls_stream_and_the_client_resumes_it(umx: UltramaxEnv) -> None:
    with http_gateway(umx, SseOptions(retry_ms=10, poll_ms=100)) as gw:
        session = gw.initialize()
        resp = gw.call_sleep(session, 0.6)
        before = list(sse_events(resp))  # ends after ~100 ms, before the answer
        assert before[0]["retry"] == "10"
        assert not any(m.get("id") == 1 for m in _messages(before)), "the stream was not closed mid-call"
        after = list(sse_events(gw.resume(session, before[-1]["id"])))
    messages = _messages(before) + _messages(after)
    assert _progress(messages) == list(range(1, 11)) and messages[-1]["id"] == 1  # nothing lost, nothing twice


def test_the_official_sdk_client_gets_its_result_across_a_closed_stream(umx: UltramaxEnv) -> None:
    with http_gateway(umx, SseOptions(retry_ms=10, poll_ms=100)) as gw:

        async def call() -> types.CallToolResult:
            async with Client(gw.url, mode="legacy", cache=None) as client:
                assert client.protocol_version == VERSION
                return await client.call_tool("sleep", {"seconds": 0.5})

        result = gw.portal.call(call)
        resumes = [last for method, last in gw.requests if method == "GET" and last]
    assert not result.is_error and result_text(result) == "slept 0.5 s"
    assert resumes, f"the client never had to resume: {gw.requests}"


def test_a_client_of_an_older_protocol_gets_no_priming_event_and_its_stream_is_never_cut(umx: UltramaxEnv) -> None:
    with http_gateway(umx, SseOptions(retry_ms=10, poll_ms=50)) as gw:
        session = gw.initialize("2025-06-18")
        events = list(sse_events(gw.call_sleep(session, 0.3, version="2025-06-18")))
    assert all(e.get("data") for e in events)  # no empty-data event: such clients cannot parse one
    assert _messages(events)[-1]["id"] == 1  # held open until the answer, however long it takes


def test_an_unknown_last_event_id_is_refused_with_a_clear_error(umx: UltramaxEnv) -> None:
    with http_gateway(umx, SseOptions()) as gw:
        session = gw.initialize()
        resp = gw.resume(session, "not-an-event-id")
        body = json.loads(resp.read())
    assert resp.status == 400
    assert "'not-an-event-id' was not issued by this session" in body["error"]["message"]


def test_an_expired_last_event_id_is_refused_with_a_clear_error(umx: UltramaxEnv) -> None:
    with http_gateway(umx, SseOptions(limits=ReplayLimits(max_events=5))) as gw:
        session = gw.initialize()
        resp = gw.call_sleep(session, 0.1)
        priming = next(sse_events(resp))
        gw.drop(resp)
        wait_for(lambda: gw.finished("sleep-done"), 20, "the call to finish")  # 11 more events: the cursor went
        refused = gw.resume(session, priming["id"])
        body = json.loads(refused.read())
    assert refused.status == 400
    message = body["error"]["message"]
    assert "has expired" in message and "the last 5 events" in message and "send the request again" in message


# -- the store itself ---------------------------------------------------------------------------------------
def _note(n: int, size: int = 10) -> types.JSONRPCNotification:
    return types.JSONRPCNotification(jsonrpc="2.0", method="notifications/message", params={"n": n, "x": "x" * size})


def test_the_event_store_stays_bounded_in_events_bytes_and_age() -> None:
    now = [0.0]
    store = ReplayStore(ReplayLimits(max_events=50, max_bytes=8000, max_age_s=60), clock=lambda: now[0])
    ids = [store.add("1", _note(n)) for n in range(500)]
    assert store.count == 50 and store.size <= 8000
    with pytest.raises(EventReplayError) as expired:
        store.locate(ids[0])
    assert expired.value.kind == "expired"
    store.locate(ids[-1])
    big = [store.add("2", _note(n, size=1000)) for n in range(10)]
    assert store.size <= 8000 and store.count < 10  # bytes bind before the count does
    store.locate(big[-1])
    now[0] = 61.0  # everything is now older than max_age_s
    with pytest.raises(EventReplayError):
        store.locate(big[-1])
    assert store.count == 0 and store.size == 0


def test_a_replay_sends_only_events_of_the_cursors_own_stream() -> None:
    store = ReplayStore()
    cursor = store.add("a", None)
    for n in range(6):
        store.add("a" if n % 2 else "b", _note(n))
    store.add("a", types.JSONRPCResponse(jsonrpc="2.0", id="a", result={}))
    store.add("b", _note(99))
    sent: list[EventMessage] = []

    async def send(event: EventMessage) -> None:
        sent.append(event)

    assert anyio.run(store.replay_events_after, cursor, send) is None  # the stream ended with its response
    notes = [(m.message.params or {})["n"] for m in sent if isinstance(m.message, types.JSONRPCNotification)]
    assert notes == [1, 3, 5] and isinstance(sent[-1].message, types.JSONRPCResponse)


def test_an_event_id_from_another_session_is_unknown_there() -> None:
    mine, theirs = ReplayStore(), ReplayStore()
    event_id = theirs.add("1", None)
    with pytest.raises(EventReplayError) as refused:
        mine.locate(event_id)
    assert refused.value.kind == "unknown"


def test_the_standalone_stream_stays_open_after_a_replay_even_past_an_error_without_an_id() -> None:
    store = ReplayStore()
    cursor = store.add(GET_STREAM_KEY, _note(1))
    error = types.ErrorData(code=types.PARSE_ERROR, message="Parse error")
    store.add(GET_STREAM_KEY, types.JSONRPCError(jsonrpc="2.0", id=None, error=error))
    store.add(GET_STREAM_KEY, _note(2))
    sent: list[EventMessage] = []

    async def send(event: EventMessage) -> None:
        sent.append(event)

    assert anyio.run(store.replay_events_after, cursor, send) == GET_STREAM_KEY  # the SDK keeps it open
    assert len(sent) == 2
