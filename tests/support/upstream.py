"""A stand-in for the Anthropic Messages API that a proxy can be measured and checked against.

Unlike ``model_server`` (scripted conversations for the real CLI), this one answers any request at once and
deterministically -- the same request bytes get the same answer, byte for byte -- so a response through a
proxy can be compared with the response fetched directly. It speaks HTTP/1.1 with keep-alive on asyncio,
streams SSE the way the API does (chunked, ``message_start`` with cache usage, a ``ping``, text deltas,
``message_delta`` with the output tokens and server tool requests, ``message_stop``) and answers
``stream: false`` with one JSON message. Its usage reports the ``speed`` ("fast" when the request asked for it,
else "standard") and the ``inference_geo`` the request asked for ("" when it did not). Tests steer it with
request headers, which a faithful proxy forwards untouched:

- ``x-test-deltas: N`` and ``x-test-delta-bytes: B`` -- the size of the answer;
- ``x-test-web-searches: N`` and ``x-test-web-fetches: N`` -- server tool requests the answer reports (in
  ``message_delta``, cumulative; ``message_start`` says 0 of each);
- ``x-test-interval-ms: T`` -- a pause between stream events;
- ``x-test-overload: MODEL`` -- answer HTTP 529 ``overloaded_error`` when the request is for MODEL;
- ``x-test-overload-stream: MODEL`` -- for MODEL, a 200 stream that fails with an ``overloaded_error`` event
  before its first content block;
- ``x-test-status: CODE`` -- answer with that error status and an Anthropic error body.

Every request is recorded (method, target, headers in order, raw body). Standard library only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from tests.support.loop_server import LoopServer

__all__ = ["StandInUpstream", "UpstreamRequest", "answer_events", "run_upstream", "usage_for"]

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


@dataclass(frozen=True)
class UpstreamRequest:
    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


def usage_for(
    body: bytes, deltas: int, delta_bytes: int, *, web_searches: int = 0, web_fetches: int = 0
) -> dict[str, Any]:
    """The usage the stand-in reports for a request: derived from its size, with cache reads and writes, server
    tool requests, and the speed and geography the request asked for."""
    size = max(1, len(body) // 4)
    try:
        request = json.loads(body)
    except ValueError:
        request = None
    request = request if isinstance(request, dict) else {}
    geo = request.get("inference_geo")
    return {
        "input_tokens": size,
        "cache_creation_input_tokens": 120,
        "cache_read_input_tokens": 3 * size,
        "cache_creation": {"ephemeral_5m_input_tokens": 80, "ephemeral_1h_input_tokens": 40},
        "output_tokens": deltas * max(1, delta_bytes // 4),
        "server_tool_use": {"web_search_requests": web_searches, "web_fetch_requests": web_fetches},
        "speed": "fast" if request.get("speed") == "fast" else "standard",
        "inference_geo": geo if isinstance(geo, str) else "",
    }


def _text(seed: str, n: int) -> str:
    base = hashlib.sha256(seed.encode()).hexdigest()
    return (base * (n // len(base) + 1))[:n]


def answer_events(
    model: str, body: bytes, deltas: int, delta_bytes: int, *, web_searches: int = 0, web_fetches: int = 0
) -> list[tuple[str, dict[str, Any]]]:
    """The SSE events of the answer to ``body`` (deterministic)."""
    digest = hashlib.sha256(body).hexdigest()[:24]
    usage = usage_for(body, deltas, delta_bytes, web_searches=web_searches, web_fetches=web_fetches)
    start_usage = usage | {"output_tokens": 1, "server_tool_use": {"web_search_requests": 0, "web_fetch_requests": 0}}
    events: list[tuple[str, dict[str, Any]]] = [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": f"msg_{digest}",
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": start_usage,
                },
            },
        ),
        ("ping", {"type": "ping"}),
        (
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ),
    ]
    for i in range(deltas):
        events.append(
            (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": _text(f"{digest}{i}", delta_bytes)},
                },
            )
        )
    events += [
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": usage["output_tokens"], "server_tool_use": usage["server_tool_use"]},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    return events


def _message(model: str, body: bytes, deltas: int, delta_bytes: int, **tools: int) -> dict[str, Any]:
    digest = hashlib.sha256(body).hexdigest()[:24]
    text = "".join(_text(f"{digest}{i}", delta_bytes) for i in range(deltas))
    return {
        "id": f"msg_{digest}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": usage_for(body, deltas, delta_bytes, **tools),
    }


class StandInUpstream(LoopServer):
    """The server, on its own event loop in a background thread."""

    thread_name = "stand-in-upstream"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self.requests: list[UpstreamRequest] = []
        self._lock = threading.Lock()

    def recorded(self) -> list[UpstreamRequest]:
        with self._lock:
            return list(self.requests)

    # -- HTTP --------------------------------------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head[:-4].decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = tuple((n, v.strip()) for n, _, v in (line.partition(":") for line in lines[1:]))
                lower = {n.lower(): v for n, v in headers}
                body = await reader.readexactly(int(lower.get("content-length", "0")))
                request = UpstreamRequest(method, target, headers, body)
                with self._lock:
                    self.requests.append(request)
                await self._answer(request, lower, writer)
                await writer.drain()
                if lower.get("connection", "").lower() == "close":
                    return
        except (ConnectionError, asyncio.CancelledError):
            return
        finally:
            self._conns.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _json(self, writer: asyncio.StreamWriter, status: int, payload: Any, *, head: bool = False) -> None:
        data = json.dumps(payload).encode()
        reason = {200: "OK", 529: "Overloaded"}.get(status, "Error")
        writer.write(
            f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {len(data)}\r\n"
            f"request-id: req_standin\r\n\r\n".encode()
            + (b"" if head else data)
        )

    def _error(self, writer: asyncio.StreamWriter, status: int, message: str) -> None:
        kind = _ERROR_TYPES.get(status, "api_error")
        self._json(
            writer, status, {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_standin"}
        )

    async def _answer(self, request: UpstreamRequest, lower: dict[str, str], writer: asyncio.StreamWriter) -> None:
        path = request.target.split("?", 1)[0]
        if path == "/api/hello":
            self._json(writer, 200, {"message": "hello"}, head=request.method == "HEAD")
            return
        if path == "/v1/models":
            models = [
                {"type": "model", "id": m, "display_name": m, "created_at": "2026-01-01T00:00:00Z"}
                for m in ("claude-opus-5", "claude-sonnet-5", "claude-haiku-4-5")
            ]
            self._json(
                writer,
                200,
                {"data": models, "has_more": False, "first_id": models[0]["id"], "last_id": models[-1]["id"]},
            )
            return
        if path == "/v1/messages/count_tokens":
            self._json(writer, 200, {"input_tokens": max(1, len(request.body) // 4)})
            return
        if path != "/v1/messages" or request.method != "POST":
            self._error(writer, 404, f"no route {request.method} {request.target}")
            return
        body = request.json
        model = str(body.get("model", ""))
        if "x-test-status" in lower:
            self._error(writer, int(lower["x-test-status"]), f"stand-in error {lower['x-test-status']} for {model}")
            return
        if lower.get("x-test-overload") == model:
            self._error(writer, 529, "Overloaded")
            return
        deltas = int(lower.get("x-test-deltas", "8"))
        delta_bytes = int(lower.get("x-test-delta-bytes", "16"))
        interval = float(lower.get("x-test-interval-ms", "0")) / 1000
        tools = {
            "web_searches": int(lower.get("x-test-web-searches", "0")),
            "web_fetches": int(lower.get("x-test-web-fetches", "0")),
        }
        if not body.get("stream"):
            self._json(writer, 200, _message(model, request.body, deltas, delta_bytes, **tools))
            return
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\ncache-control: no-cache\r\n"
            b"request-id: req_standin\r\ntransfer-encoding: chunked\r\n\r\n"
        )
        events = answer_events(model, request.body, deltas, delta_bytes, **tools)
        if lower.get("x-test-overload-stream") == model:
            events = [
                *events[:2],
                ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
            ]
        for name, data in events:
            frame = f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()
            writer.writelines((b"%x\r\n" % len(frame), frame, b"\r\n"))
            await writer.drain()
            if interval:
                await asyncio.sleep(interval)
        writer.write(b"0\r\n\r\n")


@contextmanager
def run_upstream() -> Iterator[StandInUpstream]:
    server = StandInUpstream()
    server.start()
    try:
        yield server
    finally:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="serve the stand-in upstream until killed")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    server = StandInUpstream(port=args.port)
    server.start()
    print(server.base_url, flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        threading.Event().wait()


if __name__ == "__main__":
    main()
